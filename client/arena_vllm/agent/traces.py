"""A bounded, in-memory store of decision traces: what each agent saw, was offered, and did.

One trace per decision: the observation, the rendered prompt (with the prompt's token count
when the response's usage gave it), the tools offered, the model's raw answer, the decision
and its source (and why, for a fallback), timings, tick and agent id. Traces are kept as
compact JSON bytes, so the cap is on what is actually held: at most ``ticks_per_agent``
per agent and ``max_bytes`` in all (the JSON plus ``ENTRY_OVERHEAD`` per trace), the
oldest trace of any agent dropped first. Known
secrets (the vLLM API key) are blanked before a trace is stored.

Example::

    from arena_vllm.agent.traces import TraceStore

    store = TraceStore(ticks_per_agent=2, max_bytes=1 << 20)
    for tick in range(3):
        store.add({"agent_id": "a1", "tick": tick, "decision": {"tool": "idle"}})
    assert [t["tick"] for t in store.traces(agent_id="a1")] == [1, 2]
    print(store.stats())  # {'agents': 1, 'traces': 2, 'bytes': ..., 'max_bytes': 1048576, ...}
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

from arena_vllm.backends.base import ResultMetadata

REDACTED = "<redacted>"
#: What one entry costs beside its JSON (the object, its ids, the visible names); counted against the cap.
ENTRY_OVERHEAD = 1024
_CHANGE_KEYS = ("gained_resources", "lost_resources", "gained_hazards", "lost_hazards")


class ResponseRecord(ResultMetadata, total=False):
    """What the model answered: the result's metadata (less ``latency_s``; the call is timed) and its text."""

    raw_text: str
    finish_reason: str
    tokens_used: int


class CallRecord(TypedDict):
    """One model call as the backend was asked it (the tools flat, as offered) and what came of it."""

    system_prompt: str
    user_prompt: str
    tools: list[dict[str, Any]]
    tool_choice: str | None
    temperature: float | None
    max_tokens: int | None
    queue_ms: float
    model_ms: float | None
    response: ResponseRecord | None
    error: str | None


class PromptRecord(TypedDict):
    system_prompt: str
    user_prompt: str
    chars: int
    prompt_tokens: int | None


class Timings(TypedDict):
    queue: float | None
    model: float | None
    total: float


class Trace(TypedDict):
    """One decision as stored: the contract between the recorder (which writes it) and the inspector (which reads it).

    ``source`` is the decision's (``native``, ``prompt``, ``fallback``, ``idle_after_failure``);
    ``fallback_reason`` says why the model's decision was not used (None when it was).
    """

    trace_id: str
    agent_id: str
    tick: int
    start_time: float
    observation: dict[str, Any]
    prompt: PromptRecord | None
    calls: list[CallRecord]
    decision: dict[str, Any] | None
    source: str
    fallback_reason: str | None
    timings_ms: Timings


class ReadTrace(Trace):
    """A stored trace as read back: with what the agent saw, gained and lost since its previous one."""

    visibility: dict[str, list[str]]


@dataclass(eq=False, slots=True)
class _Entry:
    """One stored trace and what the queries filter on, without decoding it."""

    trace_id: str
    agent_id: str
    tick: int
    tool: str
    data: bytes
    visible: tuple[frozenset[str], frozenset[str]]
    changes: tuple[tuple[str, ...], ...] = ()
    dropped: bool = False

    @property
    def size(self) -> int:
        return len(self.data) + ENTRY_OVERHEAD


class TraceStore:
    """The last ``ticks_per_agent`` traces of each agent, ``max_bytes`` of JSON in all; thread-safe.

    Example::

        store = TraceStore(ticks_per_agent=50, max_bytes=16 << 20, secrets=["sk-the-api-key"])
        store.add(trace)             # a JSON-able dict with agent_id, tick, observation, decision, ...
        store.traces(agent_id="a1")  # oldest first
    """

    def __init__(self, ticks_per_agent: int, max_bytes: int, secrets: Iterable[str] = ()) -> None:
        self.ticks_per_agent = ticks_per_agent
        self.max_bytes = max_bytes
        self._secrets = [s for s in secrets if len(s) >= 4]  # "" or "EMPTY"-like placeholders blank nothing real
        self._lock = threading.Lock()
        self._order: deque[_Entry] = deque()  # every kept entry, oldest first (dropped ones skipped lazily)
        self._by_agent: dict[str, deque[_Entry]] = {}
        self._bytes = 0
        self._kept = 0
        self._dropped = 0

    def add(self, trace: Trace) -> None:
        """Store one trace; drop the agent's oldest past ``ticks_per_agent`` and anyone's oldest past ``max_bytes``."""
        data = self._encode(trace)
        if (
            len(data) + ENTRY_OVERHEAD > self.max_bytes
        ):  # one trace larger than the whole store: keep it, without the observation
            data = self._encode({**trace, "observation": {"omitted": f"{len(data)} bytes, over agent.debug.max_bytes"}})
        observation = trace.get("observation") or {}
        entry = _Entry(
            trace_id=str(trace.get("trace_id", "")),
            agent_id=str(trace["agent_id"]),
            tick=int(trace.get("tick", 0)),
            tool=str((trace.get("decision") or {}).get("tool", "")),
            data=data,
            visible=(self._names(observation.get("nearby_resources")), self._names(observation.get("nearby_hazards"))),
        )
        with self._lock:
            kept = self._by_agent.setdefault(entry.agent_id, deque())
            entry.changes = _changes(kept[-1].visible if kept else (frozenset(), frozenset()), entry.visible)
            kept.append(entry)
            self._order.append(entry)
            self._bytes += entry.size
            self._kept += 1
            if len(kept) > self.ticks_per_agent:
                self._drop(kept[0])
            while self._bytes > self.max_bytes:
                oldest = self._order[0]
                if oldest.dropped:
                    self._order.popleft()
                else:
                    self._drop(oldest)
            while self._order and self._order[0].dropped:
                self._order.popleft()
            if len(self._order) > 2 * self._kept + 64:  # ghosts of per-agent drops behind an old trace: compact
                self._order = deque(entry for entry in self._order if not entry.dropped)

    def traces(
        self,
        agent_id: str | None = None,
        tick_start: int | None = None,
        tick_end: int | None = None,
        tool: str | None = None,
        changed_only: bool = False,
    ) -> list[ReadTrace]:
        """Stored traces, oldest first, each with ``visibility`` (what it saw, gained and lost since the last)."""
        with self._lock:
            entries = list(self._by_agent.get(agent_id, ())) if agent_id is not None else list(self._order)
        chosen = [
            entry
            for entry in entries
            if not entry.dropped
            and (tick_start is None or entry.tick >= tick_start)
            and (tick_end is None or entry.tick <= tick_end)
            and (tool is None or entry.tool == tool)
            and (not changed_only or any(entry.changes))
        ]
        return [{**json.loads(entry.data), "visibility": _visibility(entry)} for entry in chosen]

    def latest(self, per_agent: int) -> dict[str, list[Trace]]:
        """Each agent's last ``per_agent`` traces, oldest first, by agent id (the page's rows)."""
        with self._lock:
            rows = {agent: list(kept)[-per_agent:] for agent, kept in sorted(self._by_agent.items())}
        return {agent: [json.loads(entry.data) for entry in entries] for agent, entries in rows.items()}

    def get(self, trace_id: str) -> ReadTrace | None:
        """One stored trace by its id, or None once it was dropped."""
        with self._lock:
            entry = next((e for e in reversed(self._order) if e.trace_id == trace_id and not e.dropped), None)
        return None if entry is None else {**json.loads(entry.data), "visibility": _visibility(entry)}

    def agents(self) -> list[str]:
        """Ids of the agents with stored traces, sorted."""
        with self._lock:
            return sorted(self._by_agent)

    def clear(self) -> None:
        """Forget every trace (``POST /debug/reset``)."""
        with self._lock:
            self._order.clear()
            self._by_agent.clear()
            self._bytes = 0
            self._kept = 0

    def stats(self) -> dict[str, int]:
        """How full the store is: agents, traces, bytes held against ``max_bytes``, traces dropped so far."""
        with self._lock:
            return {
                "agents": len(self._by_agent),
                "traces": self._kept,
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "ticks_per_agent": self.ticks_per_agent,
                "dropped": self._dropped,
            }

    def _drop(self, entry: _Entry) -> None:
        """Forget ``entry``, the oldest of its agent (the caller holds the lock)."""
        kept = self._by_agent[entry.agent_id]
        kept.popleft()
        if not kept:
            del self._by_agent[entry.agent_id]
        entry.dropped = True
        self._bytes -= entry.size
        self._kept -= 1
        self._dropped += 1
        entry.data = b""  # a dropped entry may wait in the global order a while: hold nothing

    def _encode(self, trace: dict[str, Any]) -> bytes:
        return self._redact(json.dumps(trace, separators=(",", ":"), default=str, allow_nan=False)).encode()

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _names(self, entities: Any) -> frozenset[str]:
        return frozenset(self._redact(str(e.get("name", e)) if isinstance(e, dict) else str(e)) for e in entities or ())


def _changes(
    before: tuple[frozenset[str], frozenset[str]], now: tuple[frozenset[str], frozenset[str]]
) -> tuple[tuple[str, ...], ...]:
    """What came into and went out of view since the agent's previous trace (Agent Arena's ObservationTracker)."""
    return (
        tuple(sorted(now[0] - before[0])),
        tuple(sorted(before[0] - now[0])),
        tuple(sorted(now[1] - before[1])),
        tuple(sorted(before[1] - now[1])),
    )


def _visibility(entry: _Entry) -> dict[str, list[str]]:
    changes = {key: list(names) for key, names in zip(_CHANGE_KEYS, entry.changes)}
    return {"visible_resources": sorted(entry.visible[0]), "visible_hazards": sorted(entry.visible[1]), **changes}
