"""Bounds on what the game sends: magnitudes from the settings, and printable single-line strings.

Finite is not enough: ``1e308`` is five bytes of JSON and a tick of ``10**18`` a number no game
reaches. Each number field of :mod:`~arena_vllm.agent.schemas` has a kind (coordinate,
distance, count, other number) whose bound is a setting (``agent.input.*``); past it the
request is a 422 naming the field and the setting. The settings are per app, while pydantic
models are global, so the service puts its bounds in force for each request
(:class:`InputBounds`, a context variable); outside a request (a model validated in a test or
a script) only finiteness and the fixed bounds of the schemas apply.

Every string the game sends that reaches a prompt or a log line is printable and one line:
no Unicode control (Cc: C0, DEL, C1), format (Cf: bidi overrides, zero-width characters),
line separator (Zl, U+2028) or paragraph separator (Zp, U+2029). A newline in a name would
forge a log line; a U+2028 starts a new line for many tokenizers and viewers.

Example::

    from arena_vllm.agent.bounds import InputLimits, limits_in_force
    from arena_vllm.agent.schemas import Observation

    with limits_in_force(InputLimits(max_coordinate=100, max_distance=200, max_number=1e6, max_count=10**6)):
        Observation.model_validate({"agent_id": "a1", "position": [1, 2, 3]})  # fine; [1e308, 0, 0] is a 422
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

#: Unicode general categories refused in game strings (see the module docstring).
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


@dataclass(frozen=True)
class InputLimits:
    """The magnitudes allowed per kind of number (``agent.input.*``)."""

    max_coordinate: float
    max_distance: float
    max_number: float
    max_count: int

    @classmethod
    def from_settings(cls, settings: object) -> InputLimits:
        """From ``settings.agent.input`` (an ``InputSettings``)."""
        given = settings.agent.input  # type: ignore[attr-defined]
        return cls(given.max_coordinate, given.max_distance, given.max_number, given.max_count)


_LIMITS: ContextVar[InputLimits | None] = ContextVar("arena_input_limits", default=None)


@contextmanager
def limits_in_force(limits: InputLimits) -> Iterator[None]:
    """Validate with ``limits`` inside the block (the service wraps each request in it)."""
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


class InputBounds:
    """Pure ASGI middleware: each request is validated with this app's :class:`InputLimits`.

    Example::

        app.add_middleware(InputBounds, limits=InputLimits.from_settings(settings))
    """

    def __init__(self, app: ASGIApp, limits: InputLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with limits_in_force(self.limits):
            await self.app(scope, receive, send)


def _within(value: float, setting: str) -> float:
    """``value`` if its magnitude is within ``agent.input.<setting>`` of the request's limits (none in force: any)."""
    limits = _LIMITS.get()
    bound = getattr(limits, setting) if limits is not None else None
    if bound is not None and abs(value) > bound:
        raise ValueError(f"{value:g} is beyond +-{bound:g} (agent.input.{setting})")
    return value


def coordinate(value: float) -> float:
    """A position, rotation or velocity component."""
    return _within(value, "max_coordinate")


def distance(value: float) -> float:
    """A distance or radius (>= 0 is the schema's)."""
    return _within(value, "max_distance")


def number(value: float) -> float:
    """Any other number: health, energy, damage, counts held, progress, weights."""
    return _within(value, "max_number")


def count(value: int) -> int:
    """A tick, quantity, time limit or cell count (>= 0 is the schema's)."""
    limits = _LIMITS.get()
    if limits is not None and value > limits.max_count:
        raise ValueError(f"{value} is over {limits.max_count} (agent.input.max_count)")
    return value


def printable(text: str) -> str:
    """``text`` unchanged when it has no character of :data:`REFUSED_CATEGORIES`, else a ValueError naming it."""
    if text.isprintable():  # fast path: isprintable refuses a superset (also Zs other than space, Co, Cn)
        return text
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category in REFUSED_CATEGORIES:
            raise ValueError(
                f"character U+{ord(char):04X} ({category}) at index {index}: game strings must be printable and "
                "on one line (no control, format or line/paragraph separator characters)"
            )
    return text
