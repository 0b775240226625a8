"""ReplicaPool: one backend over several vLLM servers (one per GPU, or per host), least in-flight first.

Past one GPU the bundle runs one vLLM per card and the agent spreads its calls. The pool
wraps one :class:`VLLMBackend` per ``api_base`` behind the same calls the policy makes, so
nothing above it knows there are several servers:

- each call goes to the replica with the fewest calls in flight (ties: round robin);
- a replica that cannot be reached (connection refused or reset, a 5xx) is marked down for
  ``down_for_s`` and the same call is sent to the next replica, so a dead server costs at
  most the calls that were inside it when it died;
- a down replica is tried again once ``down_for_s`` has passed, or as soon as a status
  probe (``/ready``) finds it healthy; when every replica is down the call still goes to the
  one that went down first, rather than failing without a try.

Timeouts are not retried elsewhere: the call may still be running there, and the tick's
deadline is better spent answering the agent with its fallback.

Example (two CPU servers on 8000 and 8001, see ``python -m ops replicas``)::

    from arena_vllm.backends.pool import ReplicaPool
    from arena_vllm.config import load_settings

    settings = load_settings(["backend.api_bases=[http://127.0.0.1:8000/v1,http://127.0.0.1:8001/v1]"])
    pool = ReplicaPool.from_settings(settings.backend)
    print([replica["up"] for replica in pool.status().replicas])
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arena_vllm.backends.base import BackendStatus, GenerationResult
from arena_vllm.backends.errors import BackendConnectionError, BackendError, ServerError
from arena_vllm.backends.vllm import VLLMBackend
from arena_vllm.backends.vllm_config import VLLMBackendConfig
from arena_vllm.config import BackendSettings
from arena_vllm.tool_shapes import ToolLike

__all__ = ["ReplicaPool", "backend_from_settings"]

logger = logging.getLogger(__name__)

#: How long a replica that failed stays out of rotation before it is tried again.
DOWN_FOR_S = 5.0
#: Failures that say "this server is gone or broken", not "this request was bad or slow".
FAILOVER_ERRORS: tuple[type[BackendError], ...] = (BackendConnectionError, ServerError)


@dataclass
class _Replica:
    backend: VLLMBackend
    in_flight: int = 0
    down_until: float = 0.0  # monotonic time before which the replica is skipped
    reason: str = "not probed yet"

    @property
    def api_base(self) -> str:
        return self.backend.config.api_base


class ReplicaPool:
    """Several vLLM servers behind the backend interface the agent's policy uses.

    Share one per process, like a :class:`VLLMBackend`. ``status()`` probes every replica and
    lists them in ``BackendStatus.replicas`` (``api_base``, ``up``, ``in_flight``, ``reason``).

    Example::

        configs = [VLLMBackendConfig(api_base=f"http://127.0.0.1:{port}/v1") for port in (8000, 8001)]
        with ReplicaPool([VLLMBackend(config) for config in configs]) as pool:
            if pool.is_available():
                print(pool.generate("Hello", max_tokens=8).text)
    """

    def __init__(
        self,
        backends: Sequence[VLLMBackend],
        down_for_s: float = DOWN_FOR_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not backends:
            raise ValueError("a ReplicaPool needs at least one backend (backend.api_bases is empty)")
        self._replicas = [_Replica(backend) for backend in backends]
        self._down_for_s = down_for_s
        self._clock = clock
        self._turn = itertools.count()  # round robin among equally loaded replicas
        self._lock = threading.Lock()  # sync callers may share the pool across threads

    @classmethod
    def from_settings(cls, backend: BackendSettings) -> ReplicaPool:
        """One :class:`VLLMBackend` per ``backend.api_bases`` entry, each with the group's other settings."""
        base = VLLMBackendConfig.from_settings(backend)
        bases = backend.api_bases or [backend.api_base]
        return cls([VLLMBackend(base.model_copy(update={"api_base": url})) for url in bases])

    @property
    def api_bases(self) -> list[str]:
        return [replica.api_base for replica in self._replicas]

    # -- availability ---------------------------------------------------------------------------

    def is_available(self) -> bool:
        """True when at least one replica is healthy and serves the model."""
        return self.status().available

    def status(self) -> BackendStatus:
        """Probe every replica (one after another); up ones rejoin the rotation at once."""
        return self._summary([replica.backend.status() for replica in self._replicas])

    async def astatus(self) -> BackendStatus:
        """:meth:`status`, probing the replicas concurrently."""
        statuses = await asyncio.gather(*(replica.backend.astatus() for replica in self._replicas))
        return self._summary(list(statuses))

    # -- generation: the calls of LLMBackend, each sent to one replica ------------------------------

    def generate(
        self,
        prompt: str,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult:
        """:meth:`VLLMBackend.generate` on the least busy replica."""
        return self._call(lambda backend: backend.generate(prompt, system_prompt, temperature, max_tokens))

    async def agenerate(
        self,
        prompt: str,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult:
        """:meth:`VLLMBackend.agenerate` on the least busy replica."""
        return await self._acall(lambda backend: backend.agenerate(prompt, system_prompt, temperature, max_tokens))

    def generate_with_tools(
        self,
        prompt: str,
        tools: Sequence[ToolLike],
        system_prompt: str | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult:
        """:meth:`VLLMBackend.generate_with_tools` on the least busy replica; ``metadata["replica"]`` names it."""
        return self._call(
            lambda backend: backend.generate_with_tools(
                prompt, tools, system_prompt, tool_choice, temperature, max_tokens
            )
        )

    async def agenerate_with_tools(
        self,
        prompt: str,
        tools: Sequence[ToolLike],
        system_prompt: str | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult:
        """:meth:`VLLMBackend.agenerate_with_tools` on the least busy replica."""
        return await self._acall(
            lambda backend: backend.agenerate_with_tools(
                prompt, tools, system_prompt, tool_choice, temperature, max_tokens
            )
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        for replica in self._replicas:
            replica.backend.close()

    async def aclose(self) -> None:
        for replica in self._replicas:
            await replica.backend.aclose()

    def __enter__(self) -> ReplicaPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> ReplicaPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- choosing and failing over: written once for sync and async -----------------------------

    def _call(self, send: Callable[[VLLMBackend], GenerationResult]) -> GenerationResult:
        tried: set[int] = set()
        while True:
            index = self._acquire(tried)
            try:
                result = send(self._replicas[index].backend)
            except FAILOVER_ERRORS as exc:
                self._release(index, failure=exc)
                if len(tried) == len(self._replicas):
                    raise
                continue
            self._release(index)
            return self._tagged(result, index)

    async def _acall(self, send: Callable[[VLLMBackend], Any]) -> GenerationResult:
        tried: set[int] = set()
        while True:
            index = self._acquire(tried)
            try:
                result = await send(self._replicas[index].backend)
            except FAILOVER_ERRORS as exc:
                self._release(index, failure=exc)
                if len(tried) == len(self._replicas):
                    raise
                continue
            except BaseException:  # a timeout or a cancelled tick: the replica is not to blame
                self._release(index)
                raise
            self._release(index)
            return self._tagged(result, index)

    def _acquire(self, tried: set[int]) -> int:
        """The replica for the next attempt: up ones first, least in flight, round robin on ties."""
        with self._lock:
            now = self._clock()
            untried = [i for i in range(len(self._replicas)) if i not in tried]
            up = [i for i in untried if self._replicas[i].down_until <= now]
            if up:
                turn = next(self._turn)
                count = len(self._replicas)
                index = min(up, key=lambda i: (self._replicas[i].in_flight, (i - turn) % count))
            else:  # every untried replica is down: try the one that has been down longest
                index = min(untried, key=lambda i: self._replicas[i].down_until)
            tried.add(index)
            self._replicas[index].in_flight += 1
            return index

    def _release(self, index: int, failure: BackendError | None = None) -> None:
        replica = self._replicas[index]
        with self._lock:
            replica.in_flight -= 1
            if failure is None:
                replica.down_until, replica.reason = 0.0, "answered"
                return
            was_up = replica.down_until <= self._clock()
            replica.down_until = self._clock() + self._down_for_s
            replica.reason = f"{type(failure).__name__}: {failure}"
        if was_up:  # once per outage, not once per call that hits it
            logger.warning(
                "replica %s is down for %g s, trying the others: %s",
                replica.api_base,
                self._down_for_s,
                replica.reason,
            )

    def _tagged(self, result: GenerationResult, index: int) -> GenerationResult:
        result.metadata["replica"] = self._replicas[index].api_base
        return result

    def _summary(self, statuses: list[BackendStatus]) -> BackendStatus:
        """One status for the pool: available when any replica is; each replica's state listed."""
        rows = []
        with self._lock:
            for replica, status in zip(self._replicas, statuses):
                replica.reason = status.reason
                if status.available:
                    replica.down_until = 0.0
                elif replica.down_until <= self._clock():
                    replica.down_until = self._clock() + self._down_for_s
                rows.append(
                    {
                        "api_base": replica.api_base,
                        "up": status.available,
                        "in_flight": replica.in_flight,
                        "reason": status.reason,
                    }
                )
        up = [status for status in statuses if status.available]
        models = sorted({model for status in up for model in status.models})
        if up:
            reason = f"{len(up)} of {len(statuses)} replicas up"
        else:
            reason = "no replica is up: " + "; ".join(status.reason for status in statuses)
        seen_in = sorted({status.tools_seen_in for status in up}) or ["unknown"]  # replicas serve one model
        return BackendStatus(
            bool(up), reason, models, replicas=rows, tools_seen_in=seen_in[0] if len(seen_in) == 1 else "mixed"
        )


def backend_from_settings(backend: BackendSettings) -> VLLMBackend | ReplicaPool:
    """A :class:`ReplicaPool` when ``backend.api_bases`` lists two or more servers, else one :class:`VLLMBackend`."""
    if len(backend.api_bases) > 1:
        return ReplicaPool.from_settings(backend)
    config = VLLMBackendConfig.from_settings(backend)
    if backend.api_bases:
        config = config.model_copy(update={"api_base": backend.api_bases[0]})
    return VLLMBackend(config)
