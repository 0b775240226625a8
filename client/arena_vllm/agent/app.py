"""The HTTP service the game talks to: Agent Arena's ``/observe``, ``/tick``, ``/experience`` and
``/tools/execute``, plus probes and metrics.

``/tick`` takes the SDK's ``agents`` shape and the C++ ``IPCClient``'s ``perceptions`` shape;
``/experience`` events are kept per agent and shown in its next prompts; ``/tools/execute``
is acknowledged as the SDK does (the game executes its tools itself).

With ``agent.api_key_file`` holding a token, every route but ``/health`` needs
``Authorization: Bearer <token>`` (401 otherwise); more than ``agent.max_requests_in_flight``
requests at once get 503 with ``Retry-After`` (see :mod:`arena_vllm.agent.guard`).
Bad requests are the caller's fault and get 4xx naming the field (413 over
``agent.max_body_bytes`` or ``agent.max_agents_per_tick``, 422 for a missing or ill-typed
field, a non-finite number or one past ``agent.input.*``, a string with a control or line
separator character, or a body that is not JSON, 400 naming why ``json`` could not
decode the body: not UTF-8, nested too deeply, an integer of thousands of digits). Model and
engine failures are not: those agents get the fallback decision with a generic reason, with
HTTP 200 (the details go to the log and ``/metrics``).

Example::

    import uvicorn
    from arena_vllm.agent.app import create_app
    from arena_vllm.config import load_settings

    settings = load_settings(["backend.api_base=http://127.0.0.1:8000/v1"])
    uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.agent.port)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from arena_vllm import __version__
from arena_vllm.agent.bounds import InputBounds, InputLimits
from arena_vllm.agent.debug import debug_router, trace_store
from arena_vllm.agent.experiences import ExperienceStore
from arena_vllm.agent.guard import InFlightLimit, bearer_auth, read_token
from arena_vllm.agent.metrics import AgentMetrics
from arena_vllm.agent.policy import DecisionPolicy
from arena_vllm.agent.recorder import TraceRecorder
from arena_vllm.agent.schemas import (
    ActionMessage,
    Experience,
    Observation,
    ObserveResponse,
    PerceptionsTickResponse,
    TickAction,
    TickRequest,
    TickResponse,
    ToolExecuteRequest,
    ToolExecuteResponse,
)
from arena_vllm.backends import LLMBackend
from arena_vllm.backends.pool import backend_from_settings
from arena_vllm.config import Settings

logger = logging.getLogger(__name__)
#: Event types kept as metric labels (others count as "other": labels must stay few). The game POSTs
#: damage (scripts/hazards/base_hazard.gd), trapped (pit.gd) and collision (simple_agent.gd).
KNOWN_EVENTS = frozenset({"damage", "trapped", "collision", "resource_collected", "item_crafted", "death"})


def create_app(settings: Settings, backend: LLMBackend | None = None) -> FastAPI:
    """The agent service; it owns ``backend`` (built from ``settings.backend`` when omitted) and closes it on shutdown.

    Example::

        app = create_app(load_settings(), backend=VLLMBackend(VLLMBackendConfig(api_base=url)))
    """
    backend = backend or backend_from_settings(settings.backend)  # a ReplicaPool for several api_bases
    metrics = AgentMetrics()
    experiences = ExperienceStore(settings.agent.experiences_per_agent, settings.agent.experience_agents)
    traces = trace_store(settings)  # None when the /debug inspector is off
    policy = DecisionPolicy(backend, settings, metrics, experiences, recorder=TraceRecorder(traces))
    max_agents = settings.agent.max_agents_per_tick
    max_body = settings.agent.max_body_bytes
    token = read_token(settings.agent.api_key_file)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # One request at start-up opens the async client's connection outside any tick's deadline
        # and logs whether vLLM is ready; the probe answers in 5 s at most, even if vLLM is down.
        logger.info("backend: %s", (await backend.astatus()).reason)
        yield
        await backend.aclose()

    app = FastAPI(
        title="arena-vllm agent service",
        version=__version__,
        description="Agent Arena's agent protocol; every decision comes from an LLM served by vLLM.",
        lifespan=lifespan,
        # Starlette's limiter: checks Content-Length up front and counts the bytes actually read.
        max_body_size=max_body,
        exception_handlers={RequestValidationError: _validation_error, StarletteHTTPException: _body_errors(max_body)},
        dependencies=[Depends(bearer_auth(token))],  # every route but /health, when agent.api_key_file holds a token
    )
    app.add_middleware(InputBounds, limits=InputLimits.from_settings(settings))  # agent.input.* for every body
    app.add_middleware(
        InFlightLimit,
        limit=settings.agent.max_requests_in_flight,
        retry_after_s=settings.agent.retry_after_s,
        on_reject=metrics.rejected.labels(reason="in_flight").inc,
    )

    # The SDK's own counters, answered by GET / as its IPC server does (python/sdk .../ipc_server.py).
    sdk_metrics = {"total_ticks": 0, "total_observations": 0}

    @app.get("/")
    async def root() -> dict[str, Any]:
        """What the SDK's server answers: running, whether /debug is on, ticks and observations served."""
        return {"status": "running", "debug": traces is not None, "metrics": dict(sdk_metrics)}

    @app.post("/observe")
    async def observe(observation: Observation) -> ObserveResponse:
        """Decide for one agent."""
        [decision] = await policy.decide_tick([observation])
        sdk_metrics["total_ticks"] += 1
        sdk_metrics["total_observations"] += 1
        return ObserveResponse(agent_id=observation.agent_id, **decision.model_dump())

    @app.post("/tick", responses={413: {"description": "too many agents or too large"}})
    async def tick(request: TickRequest) -> TickResponse | PerceptionsTickResponse:
        """Decide for every agent of a tick at once; actions come back in request order.

        ``agents`` gets ``{tick, actions: [{agent_id, action}]}`` (the SDK's answer),
        ``perceptions`` gets ``{tick, actions: [{agent_id, tick, tool, params, reasoning}]}``.
        """
        observations = request.observations()
        if len(observations) > max_agents:
            field = "agents" if request.agents is not None else "perceptions"
            raise HTTPException(
                status_code=413,
                detail=[
                    {
                        "loc": ["body", field],
                        "msg": f"{len(observations)} agents in one tick; at most {max_agents} (agent.max_agents_per_tick)",
                        "type": "too_many_agents",
                    }
                ],
            )
        decisions = await policy.decide_tick(observations)
        sdk_metrics["total_ticks"] += 1
        sdk_metrics["total_observations"] += len(observations)
        if request.agents is None:
            return PerceptionsTickResponse(
                tick=request.tick,
                actions=[
                    ActionMessage(agent_id=o.agent_id, tick=o.tick, **d.model_dump())
                    for o, d in zip(observations, decisions)
                ],
            )
        actions = [TickAction(agent_id=a.agent_id, action=d) for a, d in zip(request.agents, decisions)]
        return TickResponse(tick=request.tick, actions=actions)

    @app.post("/experience")
    async def experience(event: Experience) -> dict[str, bool]:
        """Remember an event (hazard damage...) for the agent's next prompts; the SDK's answer."""
        experiences.add(event)
        metrics.experiences.labels(event_type=event.event_type if event.event_type in KNOWN_EVENTS else "other").inc()
        return {"success": True}

    @app.post("/tools/execute")
    async def tools_execute(_: ToolExecuteRequest) -> ToolExecuteResponse:
        """Acknowledged, as the SDK does: the game executes its tools itself."""
        return ToolExecuteResponse()

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The process is alive (no backend call: liveness must not depend on the engine)."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"description": "the backend is unreachable or the model is not served"}})
    async def ready() -> JSONResponse:
        """The backend is reachable and serves the model; 503 with the reason otherwise.

        ``tools_seen_in`` says where the offered tools reach the model: ``template`` (its chat
        template renders them) or ``system_prompt`` (it drops them, so the agent writes them there).
        With several replicas: ready while any is up, and ``replicas`` says which are."""
        status = await backend.astatus()
        replicas = {"replicas": status.replicas} if status.replicas else {}
        if status.available:
            return JSONResponse(
                {"ready": True, "models": status.models, "tools_seen_in": status.tools_seen_in, **replicas}
            )
        return JSONResponse({"ready": False, "reason": status.reason, **replicas}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        """Prometheus text exposition of this app's registry."""
        return Response(metrics.render(), media_type=metrics.content_type)

    if traces is not None:
        app.include_router(debug_router(traces))
    return app


def _body_errors(max_body: int) -> Callable[[Request, Any], Coroutine[Any, Any, Response]]:
    """A handler naming what is wrong with an unreadable body, in the 422 shape (loc, msg, type).

    Starlette says only "Content Too Large" and FastAPI "There was an error parsing the body"
    (its cause, e.g. a UnicodeDecodeError, is chained); every other HTTP error keeps FastAPI's answer.
    A body whose Content-Length is over the limit still gets Starlette's plain-text 413: its
    limiter replaces whatever response the app starts for such a request.
    """

    async def handler(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 413 and exc.detail == "Content Too Large":
            problem = ("body_too_large", f"the body is larger than {max_body} bytes (agent.max_body_bytes)")
        elif exc.status_code == 400 and exc.__cause__ is not None:
            problem = _unparseable(exc.__cause__)
        else:
            return await http_exception_handler(request, exc)
        kind, message = problem
        return JSONResponse({"detail": [{"loc": ["body"], "msg": message, "type": kind}]}, status_code=exc.status_code)

    return handler


def _unparseable(cause: BaseException) -> tuple[str, str]:
    """The error type and message for a body ``json.loads`` raised ``cause`` on (decode errors are 422s already)."""
    if isinstance(cause, UnicodeDecodeError):
        return "body_not_utf8", f"the body is not UTF-8 JSON: {cause.reason} at byte {cause.start}"
    if isinstance(cause, RecursionError):
        return "json_too_deep", "the JSON is nested too deeply to parse"
    # e.g. "Exceeds the limit (4300 digits) for integer string conversion: ...; use sys.set_int_max_str_digits()"
    return "body_unparseable", f"the body cannot be parsed as JSON: {str(cause).split(';')[0]}"


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 shape (loc, msg, type) without echoing ``input``: it may be NaN, which JSON
    cannot carry (the default handler would fail with a 500), or a whole 1 MB observation."""
    errors = [{key: value for key, value in error.items() if key != "input"} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
