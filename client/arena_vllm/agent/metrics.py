"""Prometheus metrics of the agent service, in a registry of their own.

One registry per app instance (not the process-global default) so several apps in one test
process never collide, and ``/metrics`` shows only this service's series.

Example::

    from arena_vllm.agent.metrics import AgentMetrics

    metrics = AgentMetrics()
    metrics.decisions.labels(tool="idle", source="idle_after_failure").inc()
    print(metrics.render().decode())
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Label values of ``source``: how a decision was obtained (the model's native call, the model's
#: call written as text, the policy's fallback heuristic, idle because the fallback is off).
SOURCES = ("native", "prompt", "fallback", "idle_after_failure")
#: From a fast GPU call (~50 ms) to a tick deadline (10 s by default).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class AgentMetrics:
    """The service's counters, histogram and gauge, and their text exposition.

    Example::

        metrics = AgentMetrics()
        with metrics.in_flight.track_inprogress():
            pass
        assert b"arena_agent_backend_requests_in_flight" in metrics.render()
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "arena_agent_decisions",
            "Decisions returned to the game, by tool and by how they were obtained",
            ["tool", "source"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "arena_agent_decision_latency_seconds",
            "Time from an agent's observation to its decision, failures included",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "arena_agent_backend_errors",
            "Model calls that gave no usable decision (the agent got the fallback), by kind "
            "(error class, deadline, no_valid_call, not_executable)",
            ["kind"],
            registry=self.registry,
        )
        self.experiences = Counter(
            "arena_agent_experiences",
            "Experience events received from the game (POST /experience), by event type",
            ["event_type"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "arena_agent_requests_rejected",
            "Requests refused before any decision work, by reason (in_flight: over agent.max_requests_in_flight)",
            ["reason"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "arena_agent_backend_requests_in_flight",
            "Model calls in flight (bounded by agent.max_concurrency)",
            registry=self.registry,
        )

    content_type = CONTENT_TYPE_LATEST

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
