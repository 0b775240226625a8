"""Malformed requests and bad settings: each gets a clear 4xx or a start-up error naming the problem.

``REQUESTS`` is one corpus of malformed requests sent to the real agent service (uvicorn on
loopback; its backend is a FaultServer, so valid requests get real decisions). Every case
states its status and, for 422, the ``loc`` of the field at fault; after each one a valid
``/observe`` must still get the model's decision: the service keeps serving.

``SETTINGS`` is one corpus of bad configurations, each refused by the start command with
exit code 2 and a message naming the key. Schema-driven fuzzing of the API is in
test_agent_requests.py.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from arena_vllm.agent.__main__ import main
from arena_vllm.agent.app import create_app
from arena_vllm.config import load_settings
from tests.support.fault_server import FaultServer
from tests.support.service import COORDINATES, serving

pytestmark = pytest.mark.usefixtures("clean_environment")  # no VLLM_* or ARENA_* from the shell

MAX_AGENTS = 4
MAX_BODY = 65_536
VALID = {"agent_id": "a1", "tick": 1, "position": [0.0, 0.0, 0.0]}
MOVE = {"target_position": [1.0, 2.0, 3.0]}


def observe(**change: Any) -> bytes:
    """A valid observation with ``change`` applied; a value of ``...`` removes the key."""
    body = {key: value for key, value in {**VALID, **change}.items() if value is not ...}
    return json.dumps(body).encode()


def tick(*observations: dict, number: Any = 1) -> bytes:
    """A ``/tick`` body with one agent per observation (agent ids a0, a1, ...)."""
    agents = [{"agent_id": f"a{n}", "observations": obs} for n, obs in enumerate(observations)]
    return json.dumps({"tick": number, "agents": agents}).encode()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@dataclass(frozen=True)
class Bad:
    """One malformed request and the answer it must get."""

    id: str
    body: bytes
    status: int
    loc: tuple[Any, ...] = ()  # 422: the loc of one of the errors in ``detail``
    says: str = ""  # a part of the answer's text
    path: str = "/observe"
    content_type: str | None = "application/json"  # None: no Content-Type header at all
    chunked: bool = False  # sent without Content-Length


ORIGIN = {"position": [0, 0, 0]}
OVERSIZED = observe(custom={"pad": "x" * (MAX_BODY + 1)})
TRUNCATED = b'{"agent_id": "a1", "position": [0, 0'

REQUESTS = [
    # Not a JSON object.
    Bad("empty-body", b"", 422, ("body",), "Field required"),
    Bad("not-json", b"agent_id=a1", 422, ("body", 0), "JSON decode error"),
    Bad("truncated-json", TRUNCATED, 422, ("body", len(TRUNCATED)), "JSON decode error"),
    Bad("json-array", b"[1, 2, 3]", 422, ("body",), "valid dictionary"),
    Bad("json-null", b"null", 422, ("body",), "valid dictionary"),
    Bad("json-string", b'"a1"', 422, ("body",), "valid dictionary"),
    Bad("content-type-text-plain", observe(), 422, ("body",), content_type="text/plain"),
    Bad("content-type-form", observe(), 422, ("body",), content_type="application/x-www-form-urlencoded"),
    Bad("content-type-missing", observe(), 422, ("body",), content_type=None),
    Bad("tick-not-json", b"tick=1", 422, ("body", 0), "JSON decode error", path="/tick"),
    # Bytes the JSON decoder cannot read: 400, no field to name.
    Bad("not-utf8-latin1", '{"agent_id": "café", "position": [0, 0, 0]}'.encode("latin-1"), 400, says="not UTF-8"),
    Bad("not-utf8-ff-byte", b"\xff\xfe\xfd", 400, says="not UTF-8"),
    Bad(
        "nesting-10k-arrays",
        observe(custom={}).replace(b"{}", b'{"x": ' + nested(10_000) + b"}"),
        400,
        says="nested too deeply",
    ),
    Bad("nesting-10k-objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, says="nested too deeply"),
    Bad(
        "integer-5000-digits", observe(tick=0).replace(b'"tick": 0', b'"tick": ' + b"9" * 5000), 400, says="4300 digits"
    ),
    Bad(
        "lone-surrogate-escape",
        b'{"agent_id": "a\\ud800", "position": [0, 0, 0]}',
        422,
        ("body", "agent_id"),
        "unicode",
    ),
    # Too large.
    Bad("oversized-content-length", OVERSIZED, 413, says="Content Too Large"),  # Starlette's own answer
    Bad("oversized-chunked", OVERSIZED, 413, says=f"larger than {MAX_BODY} bytes (agent.max_body_bytes)", chunked=True),
    Bad(
        "tick-oversized-chunked",
        tick({**ORIGIN, "custom": {"pad": "x" * MAX_BODY}}),
        413,
        says="agent.max_body_bytes",
        path="/tick",
        chunked=True,
    ),
    Bad(
        "tick-too-many-agents",
        tick(*[ORIGIN] * (MAX_AGENTS + 1)),
        413,
        says=f"at most {MAX_AGENTS} (agent.max_agents_per_tick)",
        path="/tick",
    ),
    Bad(
        "nearby-resources-513",
        observe(nearby_resources=[{"name": f"r{n}", **ORIGIN} for n in range(513)]),
        422,
        ("body", "nearby_resources"),
        "at most 512 items",
    ),
    Bad(
        "visible-entities-513",
        observe(visible_entities=[{"id": f"e{n}", **ORIGIN} for n in range(513)]),
        422,
        ("body", "visible_entities"),
        "at most 512 items",
    ),
    Bad("custom-65-keys", observe(custom={f"k{n}": n for n in range(65)}), 422, ("body", "custom"), "at most 64"),
    Bad("agent-id-129-chars", observe(agent_id="a" * 129), 422, ("body", "agent_id"), "at most 128 characters"),
    Bad(
        "description-2001-chars",
        observe(objective={"description": "x" * 2001}),
        422,
        ("body", "objective", "description"),
        "at most 2000 characters",
    ),
    # Not finite (Python's json reads these words; JSON has no such numbers).
    *(
        Bad(
            f"position-{word}",
            observe().replace(b"[0.0, 0.0,", f"[0.0, {word},".encode()),
            422,
            ("body", "position", 1),
            "finite number",
        )
        for word in ("NaN", "Infinity", "-Infinity", "1e999")
    ),
    Bad("health-NaN", observe(health=0).replace(b'"health": 0', b'"health": NaN'), 422, ("body", "health"), "finite"),
    Bad(
        "hazard-damage-Infinity",
        observe(nearby_hazards=[{"name": "f", **ORIGIN, "damage": 0}]).replace(b'"damage": 0', b'"damage": Infinity'),
        422,
        ("body", "nearby_hazards", 0, "damage"),
        "finite",
    ),
    Bad(
        "tick-observation-NaN",
        tick({"position": [0, 0, 0]}).replace(b"[0, 0, 0]", b"[0, NaN, 0]"),
        422,
        ("body", "agents", 0, "observations", "position", 1),
        "finite",
        path="/tick",
    ),
    # Missing required fields.
    Bad("missing-agent-id", observe(agent_id=...), 422, ("body", "agent_id"), "Field required"),
    Bad("missing-position", observe(position=...), 422, ("body", "position"), "Field required"),
    Bad(
        "resource-missing-name",
        observe(nearby_resources=[ORIGIN]),
        422,
        ("body", "nearby_resources", 0, "name"),
        "Field required",
    ),
    Bad("tick-missing-agents", b'{"tick": 1}', 422, ("body",), "give exactly one of 'agents'", path="/tick"),
    Bad(
        "tick-agents-and-perceptions",
        b'{"tick": 1, "agents": [], "perceptions": []}',
        422,
        ("body",),
        "give exactly one of 'agents' (SDK shape) or 'perceptions'",
        path="/tick",
    ),
    Bad(
        "tick-perception-missing-position",
        b'{"tick": 1, "perceptions": [{"agent_id": "a"}]}',
        422,
        ("body", "perceptions", 0, "position"),
        "Field required",
        path="/tick",
    ),
    Bad(
        "experience-missing-agent-id",
        b'{"tick": 1, "event_type": "damage"}',
        422,
        ("body", "agent_id"),
        "Field required",
        path="/experience",
    ),
    Bad(
        "experience-damage-NaN",
        b'{"agent_id": "a", "damage_taken": NaN}',
        422,
        ("body", "damage_taken"),
        path="/experience",
    ),
    Bad(
        "tools-execute-params-list",
        b'{"tool": "move_to", "params": [1]}',
        422,
        ("body", "params"),
        path="/tools/execute",
    ),
    Bad("tick-missing-tick", b'{"agents": []}', 422, ("body", "tick"), "Field required", path="/tick"),
    Bad(
        "tick-entry-missing-agent-id",
        b'{"tick": 1, "agents": [{"observations": {"position": [0, 0, 0]}}]}',
        422,
        ("body", "agents", 0, "agent_id"),
        "Field required",
        path="/tick",
    ),
    Bad(
        "tick-second-agent-missing-position",
        tick(ORIGIN, {"tick": 3}),
        422,
        ("body", "agents", 1, "observations", "position"),
        "Field required",
        path="/tick",
    ),
    # Wrong types.
    Bad("agent-id-number", observe(agent_id=5), 422, ("body", "agent_id"), "valid string"),
    Bad("position-string", observe(position="north"), 422, ("body", "position"), "valid list"),
    Bad("position-item-string", observe(position=[1, "x", 2]), 422, ("body", "position", 1), "valid number"),
    Bad("health-string", observe(health="full"), 422, ("body", "health"), "valid number"),
    Bad("tick-fraction", observe(tick=1.5), 422, ("body", "tick"), "valid integer"),
    Bad(
        "visible-entities-object",
        observe(visible_entities={"e": ORIGIN}),
        422,
        ("body", "visible_entities"),
        "valid list",
    ),
    Bad("objective-string", observe(objective="win"), 422, ("body", "objective"), "valid dictionary"),
    Bad("custom-list", observe(custom=[1, 2]), 422, ("body", "custom"), "valid dictionary"),
    Bad("tick-agents-object", b'{"tick": 1, "agents": {"a": {}}}', 422, ("body", "agents"), "valid list", path="/tick"),
    Bad(
        "tick-observations-list",
        tick(ORIGIN).replace(b'{"position": [0, 0, 0]}', b"[0, 0, 0]"),
        422,
        ("body", "agents", 0, "observations"),
        path="/tick",
    ),
    # Out of range.
    Bad("position-2-items", observe(position=[1, 2]), 422, ("body", "position"), "at least 3 items"),
    Bad("position-4-items", observe(position=[1, 2, 3, 4]), 422, ("body", "position"), "at most 3 items"),
    Bad("agent-id-empty", observe(agent_id=""), 422, ("body", "agent_id"), "at least 1 character"),
    Bad("tick-negative", observe(tick=-1), 422, ("body", "tick"), "greater than or equal to 0"),
    Bad(
        "tick-request-negative",
        tick(ORIGIN, number=-1),
        422,
        ("body", "tick"),
        "greater than or equal to 0",
        path="/tick",
    ),
    Bad(
        "hazard-distance-negative",
        observe(nearby_hazards=[{"name": "f", **ORIGIN, "distance": -1}]),
        422,
        ("body", "nearby_hazards", 0, "distance"),
        "greater than or equal to 0",
    ),
    Bad(
        "inventory-quantity-negative",
        observe(inventory=[{"name": "wood", "quantity": -1}]),
        422,
        ("body", "inventory", "list[InventoryItem]", 0, "quantity"),
        "greater than or equal to 0",
    ),
    # Control characters in ids: they would forge log lines and leak into prompts.
    Bad("agent-id-nul", observe(agent_id="a\x00b"), 422, ("body", "agent_id"), "printable and on one line"),
    Bad(
        "agent-id-newline",
        observe(agent_id="a1\nWARNING forged log line"),
        422,
        ("body", "agent_id"),
        "printable and on one line",
    ),
    Bad(
        "tick-agent-id-escape",
        tick(ORIGIN).replace(b'"a0"', b'"a0\\u001b[31m"'),
        422,
        ("body", "agents", 0, "agent_id"),
        "printable and on one line",
        path="/tick",
    ),
    Bad(
        "resource-name-tab",
        observe(nearby_resources=[{"name": "berry\t1", **ORIGIN}]),
        422,
        ("body", "nearby_resources", 0, "name"),
        "printable and on one line",
    ),
]


@pytest.fixture(scope="module")
def fault() -> Iterator[FaultServer]:
    with FaultServer(model="tiny", tool_args=MOVE) as server:
        yield server


@pytest.fixture(scope="module")
def agent(fault: FaultServer) -> Iterator[httpx.Client]:
    """One agent service for the whole corpus, so a case that broke it would fail the next ones."""
    settings = load_settings(
        [
            f"backend.api_base={fault.api_base}",
            "backend.model=tiny",
            "backend.max_retries=0",
            "agent.tick_deadline_s=5",
            f"agent.max_agents_per_tick={MAX_AGENTS}",
            f"agent.max_body_bytes={MAX_BODY}",
            COORDINATES,
        ]
    )
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_the_corpus_is_large_and_named_uniquely() -> None:
    assert len(REQUESTS) >= 30
    assert len({case.id for case in REQUESTS}) == len(REQUESTS)


@pytest.mark.parametrize("case", REQUESTS, ids=[case.id for case in REQUESTS])
def test_a_malformed_request_gets_a_clear_4xx_and_the_service_keeps_serving(
    agent: httpx.Client, fault: FaultServer, case: Bad
) -> None:
    calls = len(fault.requests)
    headers = {"content-type": case.content_type} if case.content_type else {}
    content = iter([case.body]) if case.chunked else case.body  # an iterator goes out chunked
    response = agent.post(case.path, content=content, headers=headers)

    assert response.status_code == case.status, response.text
    assert case.says in response.text
    if case.status == 422:
        errors = response.json()["detail"]
        assert list(case.loc) in [error["loc"] for error in errors], errors
        assert all("input" not in error for error in errors)  # never echoed: it may be NaN or a megabyte
    assert len(fault.requests) == calls, "a rejected request reached the model"

    after = agent.post("/observe", json=VALID)
    assert after.status_code == 200
    assert after.json() | {"reasoning": ""} == {
        "agent_id": "a1",
        "tool": "move_to",
        "params": MOVE,
        "reasoning": "",
        "source": "native",
    }


@dataclass(frozen=True)
class BadSetting:
    """Hydra overrides the start command must refuse, and what its message says (naming the key)."""

    id: str
    overrides: tuple[str, ...]
    says: str  # parts of the message, in order, separated by " ... "


SETTINGS = [
    BadSetting(
        "unknown-profile",
        ("profile=gpu-3gb",),
        "unknown profile 'gpu-3gb'; available in ... profile: cpu, gpu- ... gpu-8gb",
    ),
    BadSetting("unknown-tool-set", ("tools=nope",), "unknown tools 'nope'; available in "),
    BadSetting(
        "gpu-utilization-0",
        ("profile.gpu_memory_utilization=0",),
        "profile.gpu_memory_utilization = 0: Input should be greater than 0",
    ),
    BadSetting(
        "gpu-utilization-1.5",
        ("profile.gpu_memory_utilization=1.5",),
        "profile.gpu_memory_utilization = 1.5: Input should be less than or equal to 1",
    ),
    BadSetting(
        "backend-engine-key",
        ("+backend.gpu_memory_utilization=0.5",),  # the profile's value, not the client's
        "backend.gpu_memory_utilization = 0.5: Extra inputs are not permitted",
    ),
    BadSetting("gpu-profile-without-vram", ("profile=gpu-8gb", "profile.min_vram_gib=null"), "needs min_vram_gib"),
    BadSetting(
        "kv-cache-size-not-a-size",
        ("profile.kv_cache_memory_bytes=lots",),
        "profile.kv_cache_memory_bytes = 'lots': String should match pattern",
    ),
    BadSetting("empty-tool-list", ("tools.tools=[]",), "tools.tools = []: List should have at least 1 item"),
    BadSetting(
        "tool-schema-invalid",
        ("tools.tools=[{name:a,description:'',parameters:{type:objekt}}]",),
        "tools.tools = [...]: Value error, tool 'a' has an invalid parameters schema",
    ),
    BadSetting(
        "tool-schema-not-object",
        ("tools.tools=[{name:a,description:'',parameters:{type:string}}]",),
        "tools.tools = [...]: Value error, tool 'a': parameters must be a JSON schema of type 'object'",
    ),
    BadSetting("tool-name-invalid", ("tools.tools=[{name:'move to'}]",), "tools.tools.0.name = 'move to'"),
    BadSetting(
        "tool-without-parameters", ("tools.tools=[{name:a}]",), "tools.tools.0.parameters = {...}: Field required"
    ),
    BadSetting(
        "tool-names-duplicate",
        (
            "tools.tools=[{name:a,description:'',parameters:{type:object}},"
            "{name:a,description:'',parameters:{type:object}}]",
        ),
        "tools.tools = [...]: Value error, tool names must be unique; repeated: ['a']",
    ),
    BadSetting(
        "scene-tool-unknown", ("scene.tools=[move_to,jump]",), "scene.tools names ['jump'], not in the tool set 'sdk'"
    ),
    BadSetting(
        "backend-tool-choice-unknown",
        ("backend.function_calling.tool_choice=fly",),
        "backend.function_calling.tool_choice: tool_choice 'fly' is neither auto, required nor one of",
    ),
    BadSetting(
        "backend-tool-choice-none",
        ("backend.function_calling.tool_choice=none",),
        "backend.function_calling.tool_choice = 'none': Value error, tool_choice 'none' asks for no tool call",
    ),
    BadSetting("scene-without-tools", ("scene.tools=[]",), "scene.tools = []: List should have at least 1 item"),
    BadSetting(
        "function-calling-format",
        ("backend.function_calling.format=xml",),
        "backend.function_calling.format = 'xml': Input should be 'openai', 'schema' or 'prompt'",
    ),
    BadSetting(
        "backend-temperature-5",
        ("backend.temperature=5",),
        "backend.temperature = 5: Input should be less than or equal to 2",
    ),
    BadSetting(
        "fallback-flee-distance-negative",
        ("agent.fallback.flee_distance=-1",),
        "agent.fallback.flee_distance = -1: Input should be greater than or equal to 0",
    ),
    BadSetting(
        "api-base-no-scheme",
        ("backend.api_base=localhost:8000",),
        "backend.api_base = 'localhost:8000': Value error, must be an http:// or https:// URL",
    ),
    BadSetting("api-base-ftp", ("backend.api_base=ftp://vllm/v1",), "backend.api_base = 'ftp://vllm/v1': Value error"),
    BadSetting(
        "backend-port-70000",
        ("backend.port=70000",),
        "backend.port = 70000: Input should be less than or equal to 65535",
    ),
    BadSetting("agent-port-0", ("agent.port=0",), "agent.port = 0: Input should be greater than or equal to 1"),
    BadSetting(
        "max-body-bytes-too-small",
        ("agent.max_body_bytes=100",),
        "agent.max_body_bytes = 100: Input should be greater than or equal to 1024",
    ),
    BadSetting("max-agents-per-tick-0", ("agent.max_agents_per_tick=0",), "agent.max_agents_per_tick = 0"),
    BadSetting("tick-deadline-0", ("agent.tick_deadline_s=0",), "agent.tick_deadline_s = 0: Input should be greater"),
    BadSetting("unknown-key-added", ("+backend.bogus=1",), "backend.bogus = 1: Extra inputs are not permitted"),
    BadSetting("unknown-key", ("agent.nope=1",), "cannot compose the configuration from ... agent.nope"),
]


@pytest.mark.parametrize("case", SETTINGS, ids=[case.id for case in SETTINGS])
def test_a_bad_setting_stops_the_start_command_with_exit_2_naming_it(
    case: BadSetting, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def serve(*args: object, **kwargs: object) -> None:
        pytest.fail(f"the start command accepted {case.overrides} and would serve")

    monkeypatch.setattr("arena_vllm.agent.__main__.uvicorn.run", serve)
    assert main(list(case.overrides)) == 2  # main returns 2 only for a ConfigError
    err = capsys.readouterr().err
    assert re.search(".*".join(map(re.escape, case.says.split(" ... "))), err), err
    assert err.startswith("arena_vllm.agent: ")
    assert "Traceback" not in err


def test_an_unreachable_api_base_starts_and_says_why_on_ready_and_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """Not a configuration error: vLLM may start later. The service serves, and says why it cannot decide."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        api_base = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
        settings = load_settings([f"backend.api_base={api_base}", "backend.model=tiny", "backend.max_retries=0"])
        with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/health").json() == {"status": "ok"}
            ready = client.get("/ready")
            assert ready.status_code == 503 and ready.json()["ready"] is False
            assert f"cannot reach GET {api_base.removesuffix('/v1')}/health" in ready.json()["reason"]
            decision = client.post("/observe", json=VALID)
            assert decision.status_code == 200
            assert decision.json()["reasoning"] == "fallback: idle, nothing in sight to move to (model call failed)"
            assert api_base not in decision.json()["reasoning"]  # the game gets no internal address ...
            assert "is the vLLM server running and api_base right?" in caplog.text  # ... the log has why
