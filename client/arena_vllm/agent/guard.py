"""What stands between the network and the decision code: a bearer token and a cap on requests in flight.

Both are cheap checks that run before a body is parsed. The cap answers 503 with
``Retry-After`` instead of queueing: a game that sends faster than the engine decides learns
it at once, and the service's memory stays bounded (without it every waiting request holds
its parsed body and its coroutine). Probes (``/health``, ``/ready``, ``/metrics``) are never
capped, so an overloaded service still reports its state; ``/health`` needs no token, so
Docker's healthcheck works with auth on.

Example::

    from fastapi import Depends, FastAPI
    from arena_vllm.agent.guard import InFlightLimit, bearer_auth, read_token

    app = FastAPI(dependencies=[Depends(bearer_auth(read_token("/run/secrets/agent_api_key")))])
    app.add_middleware(InFlightLimit, limit=32, retry_after_s=1)
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from arena_vllm.config import read_secret_file

#: Answered whatever the load, and (``/health``) without a token.
PROBES = frozenset({"/health", "/ready", "/metrics"})
NO_TOKEN_NEEDED = frozenset({"/health"})


def read_token(path: str | None) -> str | None:
    """The agent's bearer token (``agent.api_key_file``): see :func:`arena_vllm.config.read_secret_file`."""
    return read_secret_file(path, "agent.api_key_file")


def bearer_auth(token: str | None) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency: ``Authorization: Bearer <token>`` on every route but ``/health``; a no-op without a token."""
    scheme = HTTPBearer(auto_error=False, description="the token in agent.api_key_file (AGENT_API_KEY_FILE)")

    async def check(request: Request) -> None:
        if token is None or request.url.path in NO_TOKEN_NEEDED:
            return
        credentials: HTTPAuthorizationCredentials | None = await scheme(request)
        sent = credentials.credentials if credentials else ""
        if not secrets.compare_digest(sent.encode(), token.encode()):
            raise HTTPException(
                status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    async def open_check() -> None:
        return None

    return check if token is not None else open_check


class InFlightLimit:
    """ASGI middleware: at most ``limit`` requests in progress (probes excepted); the rest get 503 + Retry-After.

    The counter needs no lock: one event loop runs every request, and it is read and changed
    with no ``await`` in between. ``on_reject`` (e.g. a metrics counter) is called per refusal.
    """

    def __init__(
        self, app: ASGIApp, limit: int, retry_after_s: int = 1, on_reject: Callable[[], None] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.on_reject = on_reject
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            if self.on_reject:
                self.on_reject()
            await self._busy(send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1

    async def _busy(self, send: Send) -> None:
        body = json.dumps(
            {
                "detail": [
                    {
                        "loc": [],
                        "type": "overloaded",
                        "msg": f"{self.limit} requests already in progress (agent.max_requests_in_flight); retry later",
                    }
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after_s).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
