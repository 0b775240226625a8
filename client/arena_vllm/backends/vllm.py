"""VLLMBackend: chat completions and tool calls against vLLM's OpenAI server, sync and async.

Each operation is written once, as an *exchange*: a generator that yields the request it
wants sent, receives the answer (or has the typed error thrown into it) and returns the
:class:`GenerationResult`. ``_run`` sends with the sync client and ``_arun`` with the async
one; that is the only place the two differ.

Example (a vLLM server on localhost:8000, see ops/run_vllm_server.py)::

    from arena_vllm.backends import VLLMBackend, VLLMBackendConfig

    move_to = {"name": "move_to", "description": "Move toward a position",
               "parameters": {"type": "object", "required": ["target_position"],
                              "properties": {"target_position": {"type": "array", "items": {"type": "number"}}}}}
    with VLLMBackend(VLLMBackendConfig(api_base="http://localhost:8000/v1", max_tokens=64)) as backend:
        print(backend.status().reason)
        print(backend.generate("Say hi").text)
        result = backend.generate_with_tools("Go to the tree at 1, 0, 5", [move_to], tool_choice="required")
        print(result.metadata.get("tool_call") or result.metadata["tool_call_error"])
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from dataclasses import replace
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletion

from arena_vllm.backends import chat
from arena_vllm.backends.base import BackendStatus, GenerationResult
from arena_vllm.backends.errors import (
    BackendConnectionError,
    BackendError,
    ModelNotServedError,
    RequestRejectedError,
    map_openai_error,
)
from arena_vllm.backends.vllm_config import VLLMBackendConfig
from arena_vllm.tool_shapes import ToolLike, normalize_tools, tools_text

__all__ = ["CONNECTION_LIMITS", "VLLMBackend", "VLLMBackendConfig"]

logger = logging.getLogger(__name__)

#: status() backs readiness probes: it must answer quickly even when requests may wait longer.
PROBE_TIMEOUT_S = 5.0

#: Requests go to this path through the SDK's generic ``post`` (its retries, timeouts, auth and
#: typed errors), not ``chat.completions.create``: ``create`` walks every request through its
#: TypedDict transform, recursively into each tool's JSON schema (~1 ms of CPU per call), for
#: requests that are plain JSON already (built in ``chat``).
CHAT_PATH = "/chat/completions"

#: vLLM (uvicorn) closes a connection idle for 5 s (``VLLM_HTTP_TIMEOUT_KEEP_ALIVE``); the SDK's
#: pools keep one for 5 s too, so a request sent as the server closes fails with "Server
#: disconnected without sending a response" (seen mid-benchmark). Dropping idle connections a
#: second earlier means the client never reuses one the server may be closing.
CONNECTION_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=4.0)

#: Words of a 400 that refuses a ``response_format`` JSON schema (a server without structured output):
#: the call falls back to the prompt-based form, as for a server that refuses tools.
SCHEMA_REFUSALS = ("response_format", "json_schema", "structured", "guided")

Exchange = Generator[chat.Request, ChatCompletion, GenerationResult]

#: Where the tools a request offers reach the model: its chat template renders them (``template``),
#: or it drops them and the backend writes them into the system prompt (``system_prompt``, e.g.
#: SmolLM2's ChatML template); ``unknown`` until the server has answered the probe.
TOOLS_IN_TEMPLATE, TOOLS_IN_SYSTEM_PROMPT, TOOLS_UNKNOWN = "template", "system_prompt", "unknown"
#: ``tool_call_source`` of a call the model wrote as text (the tools described in the prompt, not sent natively).
PROMPT_PATH = "prompt"
#: The probe: the same one-message chat tokenized with and without this tool (vLLM's ``/tokenize``).
_PROBE_TOOLS = (None, [{"type": "function", "function": {"name": "probe_tool", "parameters": {"type": "object"}}}])


def _tokenize_body(model: str, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **({"tools": tools} if tools else {})}


class VLLMBackend:
    """A client of one vLLM OpenAI server; share one per process (threads, or tasks of one event loop).

    Server failures raise :class:`~arena_vllm.backends.errors.BackendError` subclasses; a tool
    call that is missing or invalid is not a failure and is reported in ``metadata``. Timeouts
    and retries are read from ``config`` once, when the clients are made.

    Example::

        backend = VLLMBackend(VLLMBackendConfig(model_path="tiny", api_base="http://127.0.0.1:8000/v1"))
        if backend.is_available():
            print(backend.generate("Hello", max_tokens=16).text)
        backend.close()
    """

    def __init__(self, config: VLLMBackendConfig):
        self.config = config
        client_options: dict[str, Any] = {
            "base_url": config.api_base,
            "api_key": config.api_key.get_secret_value(),
            "timeout": config.timeout_s,
            "max_retries": config.max_retries,
        }
        self._client = openai.OpenAI(
            **client_options, http_client=openai.DefaultHttpxClient(timeout=config.timeout_s, limits=CONNECTION_LIMITS)
        )
        # aiohttp's pool hands out a connection in O(1); httpcore's looks at every pooled
        # connection on each request (getpeername, poll), so its cost per call grew with the
        # agents in flight (issue 14: 3.7 ms at 64 concurrent calls, 6 ms at 128).
        http_client = openai.DefaultAioHttpClient(timeout=config.timeout_s, limits=CONNECTION_LIMITS)
        self._aclient = openai.AsyncOpenAI(**client_options, http_client=http_client)
        probe_options = {"max_retries": 0, "timeout": min(config.timeout_s, PROBE_TIMEOUT_S)}
        self._probe = self._client.with_options(**probe_options)
        self._aprobe = self._aclient.with_options(**probe_options)
        # The SDK imports its resources lazily on first attribute access (~1-2 s, blocking the
        # event loop): pay that here, not inside the first tick's deadline.
        _ = (self._client.chat.completions, self._aclient.chat.completions)
        self._served_model = config.model_path
        self._tools_rejected = ""  # the server's 400 message once it refused native tools
        self._tools_seen_in = TOOLS_UNKNOWN  # where tools reach the model: asked once, on first use
        self._tools_probe_failed = False  # the server answered the probe without an answer to it

    # -- availability ---------------------------------------------------------------------------

    def is_available(self) -> bool:
        """True when ``/health`` answers 200 and the configured model is served."""
        return self.status().available

    def status(self) -> BackendStatus:
        """Both checks, with the reason the first failing one gives; never raises for a server failure."""
        try:
            self._probe.get(self._health_url, cast_to=httpx.Response)
            served = [model.id for model in self._probe.models.list()]
        except openai.OpenAIError as exc:
            return BackendStatus(False, str(map_openai_error(exc, self.config.api_base)))
        status = self._judge_served(served)
        return replace(status, tools_seen_in=self.tools_seen_in()) if status.available else status

    async def astatus(self) -> BackendStatus:
        """:meth:`status` without blocking the event loop."""
        try:
            await self._aprobe.get(self._health_url, cast_to=httpx.Response)
            served = [model.id async for model in self._aprobe.models.list()]
        except openai.OpenAIError as exc:
            return BackendStatus(False, str(map_openai_error(exc, self.config.api_base)))
        status = self._judge_served(served)
        return replace(status, tools_seen_in=await self.atools_seen_in()) if status.available else status

    def tools_seen_in(self) -> str:
        """Where offered tools reach the model (:data:`TOOLS_IN_TEMPLATE` or :data:`TOOLS_IN_SYSTEM_PROMPT`), asked
        of the server once: vLLM's ``/tokenize`` of one chat with and without a tool. A template that renders
        tools makes the second longer; one that drops them (SmolLM2's) does not, and the model would never
        see them. :data:`TOOLS_UNKNOWN` where the server cannot say (no ``/tokenize``): tools then go only
        where the template puts them; an unreachable server is asked again on the next call. Only the
        ``openai`` format sends a ``tools`` field: ``schema`` and ``prompt`` write them into the system prompt."""
        if self.config.function_calling_format != "openai":  # schema and prompt calls carry no tools field
            return TOOLS_IN_SYSTEM_PROMPT
        if self._tools_seen_in == TOOLS_UNKNOWN and not self._tools_probe_failed:
            try:
                model = self._model()
                counts = [
                    self._probe.post(
                        self._tokenize_url, body=_tokenize_body(model, tools), cast_to=httpx.Response
                    ).json()["count"]
                    for tools in _PROBE_TOOLS
                ]
            except (openai.OpenAIError, BackendError, KeyError, ValueError) as exc:
                self._probe_failed(exc)
            else:
                self._tools_seen_in = self._judge_template(*counts)
        return self._tools_seen_in

    async def atools_seen_in(self) -> str:
        """:meth:`tools_seen_in` for asyncio."""
        if self.config.function_calling_format != "openai":  # schema and prompt calls carry no tools field
            return TOOLS_IN_SYSTEM_PROMPT
        if self._tools_seen_in == TOOLS_UNKNOWN and not self._tools_probe_failed:
            try:
                model = await self._amodel()
                counts = [
                    (
                        await self._aprobe.post(
                            self._tokenize_url, body=_tokenize_body(model, tools), cast_to=httpx.Response
                        )
                    ).json()["count"]
                    for tools in _PROBE_TOOLS
                ]
            except (openai.OpenAIError, BackendError, KeyError, ValueError) as exc:
                self._probe_failed(exc)
            else:
                self._tools_seen_in = self._judge_template(*counts)
        return self._tools_seen_in

    # -- generation -----------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult:
        """Plain text from the chat endpoint (so the model's chat template applies)."""
        request = self._text_request(self._model(), prompt, system_prompt, temperature, max_tokens)
        return self._run(self._text_exchange(request))

    async def agenerate(
        self,
        prompt: str,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult:
        """:meth:`generate` for asyncio, so many agents share the server's batching."""
        request = self._text_request(await self._amodel(), prompt, system_prompt, temperature, max_tokens)
        return await self._arun(self._text_exchange(request))

    def generate_with_tools(
        self,
        prompt: str,
        tools: Sequence[ToolLike],
        system_prompt: str | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult:
        """One tool call: native first, prompt-based when the server refuses tools or the model writes text.

        ``tools`` are flat (``{name, description, parameters}``), OpenAI-shaped or ``ToolSpec``s;
        ``tool_choice`` is auto, required or a tool name (default: the config's). ``metadata`` has
        ``tool_call`` (``{"name", "arguments"}``, schema-valid) or ``tool_call_error`` (why not),
        ``tool_call_source`` ("native" or "prompt": the call written as text), for the prompt path ``prompt_reason``,
        and ``tools_seen_in`` (where the tools reached the model: ``template`` or ``system_prompt``).
        Raises ``ValueError`` for a bad tool set or tool_choice, ``BackendError`` when the server fails.
        """
        self.tools_seen_in()
        exchange = self._tool_exchange(
            self._model(), prompt, tools, system_prompt, tool_choice, self._sampling(temperature, max_tokens)
        )
        return self._run(exchange)

    async def agenerate_with_tools(
        self,
        prompt: str,
        tools: Sequence[ToolLike],
        system_prompt: str | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult:
        """:meth:`generate_with_tools` for asyncio."""
        await self.atools_seen_in()
        exchange = self._tool_exchange(
            await self._amodel(), prompt, tools, system_prompt, tool_choice, self._sampling(temperature, max_tokens)
        )
        return await self._arun(exchange)

    def stream(
        self,
        prompt: str,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[str]:
        """Text chunks as the server produces them."""
        request = self._text_request(self._model(), prompt, system_prompt, temperature, max_tokens)
        try:
            with self._client.chat.completions.create(**request, stream=True) as chunks:
                for chunk in chunks:
                    if text := chat.chunk_text(chunk):
                        yield text
        except openai.OpenAIError as exc:
            raise map_openai_error(exc, self.config.api_base) from exc

    async def astream(
        self,
        prompt: str,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> AsyncIterator[str]:
        """:meth:`stream` for asyncio."""
        request = self._text_request(await self._amodel(), prompt, system_prompt, temperature, max_tokens)
        try:
            async with await self._aclient.chat.completions.create(**request, stream=True) as chunks:
                async for chunk in chunks:
                    if text := chat.chunk_text(chunk):
                        yield text
        except openai.OpenAIError as exc:
            raise map_openai_error(exc, self.config.api_base) from exc

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client's connections."""
        self._client.close()

    async def aclose(self) -> None:
        """Close both clients' connections."""
        self._client.close()
        await self._aclient.close()

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> VLLMBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- exchanges: what to send and how to read the answer, written once -------------------------

    def _text_exchange(self, request: chat.Request) -> Exchange:
        tally = chat.Tally(request["model"])
        response = yield request
        tally.add(response)
        return tally.result(response)

    def _tool_exchange(
        self,
        model: str,
        prompt: str,
        tools: Sequence[ToolLike],
        system_prompt: str | None,
        tool_choice: str | None,
        sampling: dict[str, Any],
    ) -> Exchange:
        """Native call; on a tools 400, or text without a call, the prompt-based call. Arguments checked on both.

        With ``function_calling_format="schema"`` the native call is one JSON-constrained answer
        (:func:`chat.schema_tools_request`): the engine bounds it, so a failed one is not retried as text.
        """
        specs = normalize_tools(tools)
        choice = tool_choice or self.config.tool_choice
        allowed = chat.tools_for_choice(specs, choice)
        tally = chat.Tally(model)
        prompt_reason = self._prompt_reason()
        if not prompt_reason and self.config.function_calling_format == "schema":
            try:
                response = yield chat.schema_tools_request(model, prompt, system_prompt, allowed, sampling)
            except RequestRejectedError as exc:
                if exc.status_code != 400 or not any(word in str(exc).lower() for word in SCHEMA_REFUSALS):
                    raise
                self._tools_rejected = str(exc)
                logger.warning("JSON-schema answers rejected; using the prompt path from now on: %s", exc)
                prompt_reason = f"server rejected response_format: {exc}"
            else:
                message = tally.add(response)
                return tally.result(
                    response,
                    text="",
                    **chat.judge_call(*chat.schema_call(message), allowed, "native"),
                    tools_seen_in=TOOLS_IN_SYSTEM_PROMPT,
                )
        seen_in = self._tools_seen_in
        if not prompt_reason and seen_in == TOOLS_IN_SYSTEM_PROMPT:
            # A template that drops tools: the model sees them only where they are written into the system prompt.
            system_prompt = chat.with_tools_text(system_prompt, tools_text(allowed))
        if not prompt_reason:
            try:
                response = yield chat.native_tools_request(model, prompt, system_prompt, specs, choice, sampling)
            except RequestRejectedError as exc:
                if exc.status_code != 400 or "tool" not in str(exc).lower():
                    raise  # e.g. a prompt too long: the prompt path would fail the same way, and tools stay on
                self._tools_rejected = str(exc)
                logger.warning("native tool calls rejected; using the prompt path from now on: %s", exc)
                prompt_reason = f"server rejected tools: {exc}"
            else:
                message = tally.add(response)
                call, error = chat.native_call(message)
                if call or error:
                    return tally.result(
                        response, **chat.judge_call(call, error, allowed, "native"), tools_seen_in=seen_in
                    )
                written = chat.written_call(message)
                if written:
                    judged = chat.judge_call(written, None, allowed, PROMPT_PATH)
                    return tally.result(
                        response, **judged, prompt_reason="the model wrote the call as text", tools_seen_in=seen_in
                    )
                prompt_reason = "the model answered in text without a tool call"
        response = yield chat.prompt_tools_request(model, prompt, system_prompt, allowed, sampling)
        message = tally.add(response)
        judged = chat.judge_call(chat.written_call(message), None, allowed, PROMPT_PATH, message.content or "")
        return tally.result(response, **judged, prompt_reason=prompt_reason, tools_seen_in=TOOLS_IN_SYSTEM_PROMPT)

    def _prompt_reason(self) -> str:
        """Why this call goes straight to the prompt-based path, or "" to try native tools first."""
        if self.config.function_calling_format == "prompt":
            return "function_calling_format is 'prompt'"
        if self._tools_rejected:
            return f"server rejected tools earlier: {self._tools_rejected}"
        return ""

    # -- sending: the only sync/async difference ------------------------------------------------

    def _run(self, exchange: Exchange) -> GenerationResult:
        try:
            request = next(exchange)
            while True:
                try:
                    response = self._client.post(CHAT_PATH, body=request, cast_to=ChatCompletion)
                except openai.OpenAIError as exc:
                    request = exchange.throw(map_openai_error(exc, self.config.api_base))
                else:
                    request = exchange.send(response)
        except StopIteration as done:
            return done.value

    async def _arun(self, exchange: Exchange) -> GenerationResult:
        try:
            request = next(exchange)
            while True:
                try:
                    response = await self._aclient.post(CHAT_PATH, body=request, cast_to=ChatCompletion)
                except openai.OpenAIError as exc:
                    request = exchange.throw(map_openai_error(exc, self.config.api_base))
                else:
                    request = exchange.send(response)
        except StopIteration as done:
            return done.value

    def _model(self) -> str:
        """The configured model name, else the first one the server serves (asked once)."""
        if not self._served_model:
            try:
                served = [model.id for model in self._client.models.list()]
            except openai.OpenAIError as exc:
                raise map_openai_error(exc, self.config.api_base) from exc
            self._served_model = self._first_served(served)
        return self._served_model

    async def _amodel(self) -> str:
        """:meth:`_model` for asyncio."""
        if not self._served_model:
            try:
                served = [model.id async for model in self._aclient.models.list()]
            except openai.OpenAIError as exc:
                raise map_openai_error(exc, self.config.api_base) from exc
            self._served_model = self._first_served(served)
        return self._served_model

    # -- helpers --------------------------------------------------------------------------------

    @property
    def _health_url(self) -> str:
        return f"{self.config.server_root}/health"

    @property
    def _tokenize_url(self) -> str:
        """vLLM's tokenizer endpoint, at the server's root (not under /v1); it applies the chat template."""
        return f"{self.config.server_root}/tokenize"

    def _probe_failed(self, exc: Exception) -> None:
        """A server that answered but cannot say is not asked again; an unreachable one is, on the next call."""
        if isinstance(exc, (openai.APIConnectionError, BackendConnectionError)):
            return
        self._tools_probe_failed = True
        logger.warning(
            "cannot tell whether the chat template of %s renders tools (%s): tools go where it puts them",
            self._served_model or self.config.api_base,
            exc,
        )

    def _judge_template(self, without_tools: int, with_tools: int) -> str:
        seen_in = TOOLS_IN_TEMPLATE if with_tools > without_tools else TOOLS_IN_SYSTEM_PROMPT
        if seen_in == TOOLS_IN_SYSTEM_PROMPT:
            logger.info(
                "the chat template of %s drops tools (%d tokens with and without one): they go into the system prompt",
                self._served_model,
                with_tools,
            )
        return seen_in

    def _first_served(self, served: list[str]) -> str:
        if not served:
            raise ModelNotServedError(f"{self.config.api_base}/models lists no model", api_base=self.config.api_base)
        return served[0]

    def _judge_served(self, served: list[str]) -> BackendStatus:
        wanted = self.config.model_path
        base = self.config.api_base
        if not served:
            return BackendStatus(False, f"{base} is healthy but serves no model", served)
        if wanted and wanted not in served:
            return BackendStatus(False, f"model {wanted!r} not served by {base}; served: {served}", served)
        return BackendStatus(True, f"{base} is healthy and serves {wanted or served[0]!r}", served)

    def _text_request(
        self, model: str, prompt: str, system_prompt: str | None, temperature: float | None, max_tokens: int | None
    ) -> chat.Request:
        return chat.text_request(model, prompt, system_prompt, self._sampling(temperature, max_tokens))

    def _sampling(self, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        return {
            "temperature": self.config.temperature if temperature is None else temperature,
            "top_p": self.config.top_p,
            "max_tokens": self.config.max_tokens if max_tokens is None else max_tokens,
        }
