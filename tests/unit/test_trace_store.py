"""The trace store's bounds: per agent, in bytes, under a soak-like load; and what it blanks."""

from __future__ import annotations

import gc
import json
import tracemalloc

from arena_vllm.agent.traces import ENTRY_OVERHEAD, REDACTED, TraceStore
from tests.support.observations import OBSERVATION


def trace(
    agent: str, tick: int, tool: str = "move_to", resources: tuple[str, ...] = ("berry_1",), pad: int = 0
) -> dict:
    """A trace shaped like the recorder's, ~2.5 KB (the sample observation, a prompt, one call)."""
    return {
        "trace_id": f"{agent}-{tick}",
        "agent_id": agent,
        "tick": tick,
        "start_time": 1.0,
        "observation": {
            **OBSERVATION,
            "agent_id": agent,
            "tick": tick,
            "nearby_resources": [{"name": r, "position": [1.0, 0.0, 1.0]} for r in resources],
        },
        "prompt": {"system_prompt": "You control one agent." * 5, "user_prompt": f"Tick {tick}." + "x" * pad},
        "calls": [{"tools": [{"name": "move_to"}, {"name": "collect"}], "response": {"raw_text": "ok"}}],
        "decision": {"tool": tool, "params": {"target_position": [1.0, 0.0, 1.0]}, "reasoning": "nearest"},
        "source": "native",
        "fallback_reason": None,
        "timings_ms": {"queue": 0.1, "model": 20.0, "total": 20.5},
    }


def test_keeps_the_last_ticks_of_each_agent() -> None:
    store = TraceStore(ticks_per_agent=3, max_bytes=1 << 20)
    for tick in range(10):
        for agent in ("a", "b"):
            store.add(trace(agent, tick))
    assert [t["tick"] for t in store.traces(agent_id="a")] == [7, 8, 9]
    assert store.stats()["traces"] == 6 and store.stats()["dropped"] == 14
    assert [t["agent_id"] for t in store.traces()][:2] == ["a", "b"]  # all agents, oldest first


def test_the_byte_cap_drops_the_oldest_trace_of_any_agent() -> None:
    size = len(json.dumps(trace("a", 0), separators=(",", ":"))) + ENTRY_OVERHEAD
    store = TraceStore(ticks_per_agent=100, max_bytes=5 * size + size // 2)
    for tick in range(4):
        store.add(trace("old", tick))
    for tick in range(4):
        store.add(trace("new", tick))
    assert store.stats()["bytes"] <= store.max_bytes
    assert [t["tick"] for t in store.traces(agent_id="new")] == [0, 1, 2, 3]
    assert [t["tick"] for t in store.traces(agent_id="old")] == [3]
    store.add(trace("new", 4))
    assert store.agents() == ["new"]  # "old" lost its last trace and its row


def test_a_trace_larger_than_the_store_is_kept_without_its_observation() -> None:
    store = TraceStore(ticks_per_agent=5, max_bytes=64 * 1024)
    big = trace("a", 1)
    big["observation"]["custom"] = {"blob": "x" * 100_000}
    store.add(big)
    [kept] = store.traces()
    assert "over agent.debug.max_bytes" in kept["observation"]["omitted"] and kept["decision"]["tool"] == "move_to"
    assert store.stats()["bytes"] <= store.max_bytes


def test_filters_latest_get_and_clear() -> None:
    store = TraceStore(ticks_per_agent=10, max_bytes=1 << 20)
    for tick in range(5):
        store.add(trace("a", tick, tool="collect" if tick % 2 else "move_to"))
    assert [t["tick"] for t in store.traces(tool="collect")] == [1, 3]
    assert [t["tick"] for t in store.traces(tick_start=1, tick_end=2)] == [1, 2]
    assert [t["tick"] for t in store.latest(2)["a"]] == [3, 4]
    assert store.get("a-2")["tick"] == 2 and store.get("nope") is None
    store.clear()
    assert store.traces() == [] and store.stats()["bytes"] == 0 and store.get("a-2") is None


def test_visibility_changes_against_the_previous_trace_of_the_same_agent() -> None:
    store = TraceStore(ticks_per_agent=10, max_bytes=1 << 20)
    store.add(trace("a", 1, resources=("berry_1",)))
    store.add(trace("b", 1, resources=()))
    store.add(trace("a", 2, resources=("berry_1",)))
    store.add(trace("a", 3, resources=("berry_2",)))
    changed = store.traces(agent_id="a", changed_only=True)
    assert [(t["tick"], t["visibility"]["gained_resources"], t["visibility"]["lost_resources"]) for t in changed] == [
        (1, ["berry_1"], []),
        (3, ["berry_2"], ["berry_1"]),
    ]


def test_secrets_are_blanked_everywhere() -> None:
    store = TraceStore(ticks_per_agent=10, max_bytes=1 << 20, secrets=["sk-secret-value", ""])
    store.add(trace("a", 1, resources=("sk-secret-value",)))
    [kept] = store.traces()
    assert "sk-secret-value" not in json.dumps(kept) and kept["visibility"]["visible_resources"] == [REDACTED]


def test_memory_stays_within_the_cap_under_a_soak_like_load(capsys) -> None:
    """128 agents x 120 ticks of ~2.5-6 KB traces (~35 MiB offered) into a 4 MiB store: Python's own count
    of what the store holds stays near the cap, not near what was offered."""
    cap = 4 * 1024 * 1024
    store = TraceStore(ticks_per_agent=50, max_bytes=cap)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        offered = 0
        for tick in range(120):
            for agent in range(128):
                one = trace(f"agent_{agent}", tick, pad=(agent * 13 + tick) % 3500)
                offered += len(json.dumps(one))
                store.add(one)
            assert store.stats()["bytes"] <= cap
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    stats = store.stats()
    with capsys.disabled():
        print(
            f"\n[trace store] offered {offered / 2**20:.0f} MiB; holds {stats['traces']} traces, "
            f"{stats['bytes'] / 2**20:.2f} MiB counted (cap {cap / 2**20:.0f} MiB), "
            f"{held / 2**20:.2f} MiB of Python memory in all; {stats['dropped']} dropped"
        )
    assert stats["bytes"] <= cap and stats["traces"] > 0
    assert held < 1.25 * cap  # the count includes each entry's bookkeeping (ENTRY_OVERHEAD)


def test_per_agent_drops_behind_an_old_trace_do_not_pile_up() -> None:
    store = TraceStore(ticks_per_agent=2, max_bytes=1 << 30)
    store.add(trace("quiet", 0))  # stays at the head of the global order
    for tick in range(1000):
        store.add(trace("busy", tick))
    assert store.stats()["traces"] == 3
    assert len(store._order) <= 2 * 3 + 64  # dropped entries were compacted away, not kept behind "quiet"
