"""Recent ``/experience`` events per agent, in bounded memory, for that agent's next prompts.

The game reports hazard damage (scripts/hazards/base_hazard.gd) between decisions; the agent
remembers the last ``per_agent`` events of the ``max_agents`` agents heard from most recently,
so a game that renames agents forever cannot grow the service's memory.

Example::

    from arena_vllm.agent.experiences import ExperienceStore
    from arena_vllm.agent.schemas import Experience

    store = ExperienceStore(per_agent=2, max_agents=10)
    for tick in (1, 2, 3):
        store.add(Experience(agent_id="a1", tick=tick, event_type="damage"))
    assert [e.tick for e in store.recent("a1")] == [2, 3]
"""

from __future__ import annotations

from collections import OrderedDict, deque

from arena_vllm.agent.schemas import Experience


class ExperienceStore:
    """The last ``per_agent`` experiences of each of at most ``max_agents`` agents (least recent dropped)."""

    def __init__(self, per_agent: int, max_agents: int) -> None:
        self._per_agent = per_agent
        self._max_agents = max_agents
        self._events: OrderedDict[str, deque[Experience]] = OrderedDict()

    def add(self, experience: Experience) -> None:
        """Remember one event (nothing when ``per_agent`` is 0)."""
        if self._per_agent == 0:
            return
        events = self._events.pop(experience.agent_id, None) or deque(maxlen=self._per_agent)
        events.append(experience)
        self._events[experience.agent_id] = events
        while len(self._events) > self._max_agents:
            self._events.popitem(last=False)

    def recent(self, agent_id: str) -> list[Experience]:
        """The agent's remembered events, oldest first."""
        return list(self._events.get(agent_id, ()))
