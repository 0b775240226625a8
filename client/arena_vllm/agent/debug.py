"""The decision inspector over HTTP: Agent Arena's ``/debug/*`` endpoints and our ``GET /debug`` page.

The SDK's server (``agent_arena_sdk/server/ipc_server.py``, ``_register_debug_endpoints``)
answers ``/debug/traces``, ``/debug/prompts``, ``/debug/observations``, ``/debug/changes``,
``/debug/agents``, ``/debug/episodes`` and ``POST /debug/reset``; these take the same query
parameters and answer in the same shapes (:mod:`~arena_vllm.agent.sdk_shapes`), from one stored trace per decision,
so its CLI (``tools/inspect_prompts.py``) and habits carry over. Each item carries a little
more than the SDK's (source, fallback reason, timings). Differences: ``reset`` forgets the
traces too (they are where observations come from), ``/debug/traces`` filters by ``tool``
before it applies ``limit``, and episodes are always empty (nothing is persisted).

``GET /debug`` is a page of its own (``static/debug.*``, no external assets): one row per
agent with its last decisions, a click for the prompt and the raw answer. It gets its data
from ``/debug/summary`` and ``/debug/trace/{id}``. The page's policy allows only its own
script and style, and the script writes game data with ``textContent`` only.

Example::

    app.include_router(debug_router(TraceStore(ticks_per_agent=50, max_bytes=16 << 20)))
"""

from __future__ import annotations

import ipaddress
import logging
import os
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response

from arena_vllm.agent.guard import read_token
from arena_vllm.agent.sdk_shapes import sdk_capture, sdk_observation, sdk_trace
from arena_vllm.agent.traces import Trace, TraceStore
from arena_vllm.config import AgentSettings, Settings

logger = logging.getLogger(__name__)

#: The page may load its own script and style and call this service; nothing else, nothing inline.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_STATIC = {"debug.js": "text/javascript", "debug.css": "text/css"}
#: Tokens that are never in the agent's environment by design; blanked from traces should one be.
_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def trace_store(settings: Settings) -> TraceStore | None:
    """The inspector's store when ``/debug`` is on (see :func:`inspector_enabled`), else None.

    The vLLM API key, the agent's own bearer token (and an HF token, should one be in the
    environment) are blanked from every trace.
    """
    debug = settings.agent.debug
    if not inspector_enabled(settings.agent):
        logger.info(
            "decision inspector off (agent.debug.enabled=%s, published on %s)",
            debug.enabled,
            settings.agent.published_host or settings.agent.host,
        )
        return None
    logger.info(
        "decision inspector on at /debug (last %d decisions per agent, %d bytes at most)",
        debug.ticks_per_agent,
        debug.max_bytes,
    )
    secrets = [
        settings.backend.api_key.get_secret_value(),
        read_token(settings.agent.api_key_file) or "",
        *(os.environ.get(key, "") for key in _TOKEN_ENV),
    ]
    return TraceStore(debug.ticks_per_agent, debug.max_bytes, secrets=[s for s in secrets if s and s != "EMPTY"])


def inspector_enabled(agent: AgentSettings) -> bool:
    """``agent.debug.enabled``; ``auto`` is on only where the service is reachable from loopback alone.

    Inside a container the service binds 0.0.0.0 and compose publishes it on ARENA_BIND_ADDRESS,
    which it passes in as ``agent.published_host``: that address, not the bind, says who can reach it.
    """
    if agent.debug.enabled != "auto":
        return bool(agent.debug.enabled)
    return is_loopback(agent.published_host or agent.host)


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (``0.0.0.0`` and names other than localhost are not)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def debug_router(store: TraceStore) -> APIRouter:
    """The ``/debug`` routes over ``store``."""
    router = APIRouter(prefix="/debug", tags=["debug"])
    limit_query = Query(50, ge=1, le=1000)

    @router.get("", include_in_schema=False)
    async def page() -> Response:
        """The inspector page."""
        return _static("debug.html", "text/html; charset=utf-8")

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        """The page's script and style (package data, no external assets)."""
        if name not in _STATIC:
            raise HTTPException(status_code=404, detail=f"no static file {name!r}")
        return _static(name, _STATIC[name])

    @router.get("/summary")
    async def summary(per_agent: int = Query(8, ge=1, le=100)) -> dict[str, Any]:
        """The page's rows: each agent's last ``per_agent`` decisions (newest first) and the store's size."""
        rows = store.latest(per_agent)
        return {
            "agents": [
                {"agent_id": agent, "decisions": [_row(t) for t in reversed(traces)]} for agent, traces in rows.items()
            ],
            "store": store.stats(),
        }

    @router.get("/trace/{trace_id}")
    async def trace(trace_id: str) -> dict[str, Any]:
        """One whole trace: observation, prompt, tools offered, raw answer, decision, timings."""
        found = store.get(trace_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no trace {trace_id!r} (dropped or never recorded)")
        return found

    @router.get("/stats")
    async def stats() -> dict[str, int]:
        """How full the trace store is (bytes against agent.debug.max_bytes)."""
        return store.stats()

    @router.get("/observations")
    async def observations(limit: int = limit_query, agent_id: str | None = Query(None)) -> dict[str, Any]:
        """Recent observations with what came into and went out of view (the SDK's ObservationTracker)."""
        found = [sdk_observation(t) for t in store.traces(agent_id=agent_id)][-limit:]
        return {"observations": found, "count": len(found)}

    @router.get("/changes")
    async def changes(limit: int = limit_query, agent_id: str | None = Query(None)) -> dict[str, Any]:
        """Only the observations whose visible resources or hazards changed."""
        found = [sdk_observation(t) for t in store.traces(agent_id=agent_id, changed_only=True)][-limit:]
        return {"changes": found, "count": len(found)}

    @router.post("/reset")
    async def reset() -> dict[str, str]:
        """Forget every trace and observation."""
        store.clear()
        return {"status": "reset"}

    @router.get("/traces")
    async def traces(
        limit: int = limit_query,
        agent_id: str | None = Query(None),
        tick_start: int | None = Query(None),
        tick_end: int | None = Query(None),
        tool: str | None = Query(None, description="Filter by decision tool name"),
    ) -> dict[str, Any]:
        """Recent reasoning traces, by tick: observation, prompt, llm_response, parse, decision steps."""
        found = store.traces(agent_id=agent_id, tick_start=tick_start, tick_end=tick_end, tool=tool or None)
        found.sort(key=lambda t: t["tick"])
        shaped = [sdk_trace(t) for t in found[-limit:]]
        return {"traces": shaped, "count": len(shaped)}

    @router.get("/prompts")
    async def prompts(
        agent_id: str | None = Query(None),
        tick: int | None = Query(None),
        tick_start: int | None = Query(None),
        tick_end: int | None = Query(None),
    ) -> dict[str, Any]:
        """Prompt/response captures (the SDK's PromptInspector): one per agent and tick, the latest."""
        if tick is not None and agent_id:
            tick_start = tick_end = tick
        latest = {
            (t["agent_id"], t["tick"]): t
            for t in store.traces(agent_id=agent_id or None, tick_start=tick_start, tick_end=tick_end)
        }
        captures = [sdk_capture(latest[key]) for key in sorted(latest, key=lambda k: (k[1], k[0]))]
        return {"captures": captures, "count": len(captures)}

    @router.get("/agents")
    async def agents() -> dict[str, Any]:
        """Agents with stored traces."""
        return {"agents": store.agents()}

    @router.get("/episodes")
    async def episodes(agent_id: str = Query(..., description="Agent ID")) -> dict[str, Any]:
        """Always empty: traces are not persisted, so there are no past episodes."""
        return {"agent_id": agent_id, "episodes": []}

    return router


def _static(name: str, media_type: str) -> Response:
    body = resources.files("arena_vllm.agent").joinpath("static", name).read_bytes()
    headers = {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    return Response(body, media_type=media_type, headers=headers)


def _row(trace: Trace) -> dict[str, Any]:
    """One decision as the page's row shows it."""
    decision = trace.get("decision") or {}
    return {
        "trace_id": trace["trace_id"],
        "tick": trace["tick"],
        "time": trace["start_time"],
        "tool": decision.get("tool", ""),
        "target": target_of(decision.get("params") or {}),
        "reasoning": decision.get("reasoning", ""),
        "source": trace.get("source", ""),
        "fallback_reason": trace.get("fallback_reason"),
        "timings_ms": trace.get("timings_ms", {}),
    }


def target_of(params: dict[str, Any]) -> str:
    """What a decision aims at, short: the first parameter naming a target, else all of them.

    >>> target_of({"target_position": [3.0, 0.0, 4.0]})
    '[3.0, 0.0, 4.0]'
    >>> target_of({"target_name": "berry_1", "speed": 2})
    'berry_1'
    """
    for key, value in params.items():
        if "target" in key or key in ("name", "item", "resource", "recipe"):
            return str(value)
    return ", ".join(f"{key}={value}" for key, value in params.items())
