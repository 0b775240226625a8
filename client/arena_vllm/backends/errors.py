"""One error tree for every way a call to the vLLM server can fail.

Each error carries the ``api_base`` it was talking to, the HTTP status when there was one,
and the SDK exception as ``cause`` (also its ``__cause__``), and its message says what to
check next. Callers catch :class:`BackendError` for "the model gave no answer" and the
subclasses when they react differently (e.g. count timeouts apart).

Example::

    from arena_vllm.backends import BackendError, VLLMBackend, VLLMBackendConfig

    backend = VLLMBackend(VLLMBackendConfig(api_base="http://127.0.0.1:9/v1", max_retries=0))
    try:
        backend.generate("hello")
    except BackendError as error:
        print(type(error).__name__, error.api_base, error)
"""

from __future__ import annotations

import openai


class BackendError(Exception):
    """The server could not give an answer; the base of the tree."""

    def __init__(
        self, message: str, *, api_base: str, cause: BaseException | None = None, status_code: int | None = None
    ):
        super().__init__(message)
        self.api_base = api_base
        self.cause = cause
        self.status_code = status_code
        self.__cause__ = cause


class BackendConnectionError(BackendError):
    """Nothing answered at the address (refused, DNS, reset): the server is down or api_base is wrong."""


class BackendTimeoutError(BackendError):
    """The server took longer than ``timeout_s`` to answer."""


class ModelNotServedError(BackendError):
    """The server is up but does not serve the requested model name."""


class RequestRejectedError(BackendError):
    """The server refused the request (4xx): a bad parameter, a prompt too long, tools not enabled."""


class ServerError(BackendError):
    """The server failed while answering (5xx)."""


def map_openai_error(error: openai.OpenAIError, api_base: str) -> BackendError:
    """The :class:`BackendError` for an OpenAI SDK exception: the one place that maps them."""
    where = _where(error)
    refused = _connect_failure(error)
    if refused is not None:  # before the timeout: aiohttp's transport reports a refused connect as a timeout
        return BackendConnectionError(
            f"cannot reach {where}: {refused}; is the vLLM server running and api_base right?",
            api_base=api_base,
            cause=error,
        )
    if isinstance(error, openai.APITimeoutError):
        return BackendTimeoutError(
            f"{where} timed out; raise backend.timeout_s or check the server's load", api_base=api_base, cause=error
        )
    if isinstance(error, openai.APIConnectionError):
        return BackendConnectionError(
            f"cannot reach {where}: {error.message.rstrip('.')}; is the vLLM server running and api_base right?",
            api_base=api_base,
            cause=error,
        )
    if isinstance(error, openai.APIStatusError):
        status, detail = error.status_code, _detail(error)
        if status == 404 and "model" in detail.lower():
            return ModelNotServedError(
                f"{where}: {detail.rstrip('.')}; the served names are listed at {api_base}/models",
                api_base=api_base,
                cause=error,
                status_code=status,
            )
        kind = ServerError if status >= 500 else RequestRejectedError
        return kind(f"{where} answered {status}: {detail}", api_base=api_base, cause=error, status_code=status)
    return BackendError(f"{where}: {error}", api_base=api_base, cause=error)


def _connect_failure(error: BaseException) -> OSError | None:
    """The OS error (refused, unreachable, unknown host) behind ``error``, if a connect failed; None for a timeout.

    httpx_aiohttp maps every aiohttp connection error to ``httpx.ConnectTimeout``, so the SDK
    raises ``APITimeoutError`` for a refused connection; the chained aiohttp error says what it was.
    """
    seen: BaseException | None = error.__cause__ or error.__context__
    for _ in range(8):  # a short chain: SDK error <- httpx error <- aiohttp error <- OS error
        if seen is None:
            return None
        if isinstance(seen, OSError) and not isinstance(seen, TimeoutError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _where(error: openai.OpenAIError) -> str:
    """``POST http://host/v1/chat/completions``, from the request the SDK kept on the error."""
    request = getattr(error, "request", None)
    return f"{request.method} {request.url}" if request is not None else "the vLLM server"


def _detail(error: openai.APIStatusError) -> str:
    """The server's own message (vLLM's ``error.message``, a plain ASGI ``detail``), else the SDK's summary."""
    body = error.body if isinstance(error.body, dict) else {}
    message = body.get("message") or body.get("detail")
    return message if isinstance(message, str) else error.message
