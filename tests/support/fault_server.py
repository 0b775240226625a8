"""A loopback HTTP server that imitates the parts of vLLM's OpenAI server we use, and breaks on demand.

Unit tests point real clients (the OpenAI SDK, the agent service) at it instead of mocking:
the bytes on the wire, the status codes and the timeouts are real. Set ``mode`` at any time
to inject a fault; every chat request body is kept in ``requests``.

Example::

    from openai import OpenAI
    from tests.support.fault_server import FaultServer

    with FaultServer(model="tiny") as server:
        client = OpenAI(base_url=server.api_base, api_key="EMPTY", max_retries=0)
        server.mode = "text"
        reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

MODES = (
    "tool_call",  # a valid call: the named tool_choice, else the first tool, with `tool_args`
    "text",  # plain text, no tool call
    "reject_tools",  # 400 when the body has tools, as vLLM without --enable-auto-tool-choice
    "error_500",
    "hang",  # chat completions sleep `hang_s`, then answer in text
    "malformed_args",  # tool_calls whose arguments are not JSON
    "invalid_args",  # JSON arguments that violate the tool's schema
    "text_call",  # no tool_calls; the content holds the call in <tool_call> tags
    # (a JSON-schema request, backend format "schema", gets the call as JSON content in every call mode)
    "health_down",  # /health answers 503
)
TEXT_ANSWER = "I would walk north and look for berries."
#: vLLM's message when a request has tools but auto tool choice is not enabled.
REJECT_TOOLS_MESSAGE = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'


class FaultServer:
    """A vLLM look-alike on 127.0.0.1 and a free port, run by uvicorn in a background thread."""

    def __init__(self, model: str = "tiny", mode: str = "tool_call", tool_args: dict | None = None, hang_s: float = 30):
        self.model = model
        self.mode = mode
        self.tool_args = tool_args
        self.hang_s = hang_s
        self.text = TEXT_ANSWER  # the plain-text answer; set it to a written call to test prompt-based parsing
        #: vLLM's /tokenize: None = not served (404, as a server without it); True = the chat template counts the
        #: tools (Qwen, Hermes); False = it drops them (SmolLM2's ChatML)
        self.template_renders_tools: bool | None = None
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []  # each chat request's Authorization header
        self.client_ports: list[int] = []  # each chat request's client port: a new port, a new connection
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.api_base = self.url + "/v1"
        config = uvicorn.Config(self._app(), log_level="warning", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fault server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        async def health() -> Response:
            return Response(status_code=503 if self.mode == "health_down" else 200)

        @app.get("/v1/models")
        async def models() -> dict:
            return {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "vllm"}]}

        @app.post("/tokenize")
        async def tokenize(request: Request) -> Response:
            if self.template_renders_tools is None:
                return _error(404, "Not Found", "NotFoundError")
            body = await request.json()
            count = 20 + (15 * len(body.get("tools") or []) if self.template_renders_tools else 0)
            return JSONResponse({"count": count, "max_model_len": 2048, "tokens": list(range(count))})

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            self.authorizations.append(request.headers.get("authorization"))
            self.client_ports.append(request.client.port if request.client else 0)
            if self.mode == "hang":
                await self._hang()
            if body.get("model") != self.model:
                return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
            if self.mode == "error_500":
                return _error(500, "injected server error", "InternalServerError")
            if self.mode == "reject_tools" and body.get("tools"):
                return _error(400, REJECT_TOOLS_MESSAGE, "BadRequestError")
            content, tool_calls = self._answer(body)
            if body.get("stream"):
                return StreamingResponse(self._chunks(content or ""), media_type="text/event-stream")
            return JSONResponse(self._completion(body, content, tool_calls))

        return app

    async def _hang(self) -> None:
        """Sleep ``hang_s``, but wake when the server stops so shutdown never waits on a hung request."""
        deadline = time.monotonic() + self.hang_s
        while time.monotonic() < deadline and not self._server.should_exit:
            await asyncio.sleep(0.05)

    def _answer(self, body: dict) -> tuple[str | None, list[dict] | None]:
        """The content and tool_calls for this mode: text unless the request has tools and the mode makes a call."""
        tools = [tool["function"] for tool in body.get("tools") or []]
        if not tools and (schema_tools := _tools_of_schema(body)):
            return self._schema_answer(schema_tools), None
        if not tools or self.mode in ("text", "hang", "health_down", "reject_tools"):
            return self.text, None
        choice = body.get("tool_choice")
        named = choice["function"]["name"] if isinstance(choice, dict) else None
        tool = next((t for t in tools if t["name"] == named), tools[0])
        arguments: Any = self.tool_args or {}
        if self.mode == "invalid_args":
            properties = tool.get("parameters", {}).get("properties") or {"unexpected_argument": None}
            arguments = {name: None for name in properties}  # null matches no declared type
        if self.mode == "text_call":
            return f"<tool_call>\n{json.dumps({'name': tool['name'], 'arguments': arguments})}\n</tool_call>", None
        encoded = '{"target_position": [1, 2,' if self.mode == "malformed_args" else json.dumps(arguments)
        call = {
            "id": f"chatcmpl-tool-{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {"name": tool["name"], "arguments": encoded},
        }
        return None, [call]

    def _schema_answer(self, tools: list[dict]) -> str:
        """The answer to a JSON-schema request (format schema): the call as JSON, as vLLM constrains it."""
        if self.mode in ("text", "hang", "health_down", "reject_tools"):
            return self.text
        tool = tools[0]
        arguments: Any = self.tool_args or {}
        if self.mode == "invalid_args":
            properties = tool.get("parameters", {}).get("properties") or {"unexpected_argument": None}
            arguments = {name: None for name in properties}
        if self.mode == "malformed_args":
            return '{"' + tool["name"] + '": {"target_position": [1, 2,'
        if self.mode == "text_call":
            return f"<tool_call>\n{json.dumps({'name': tool['name'], 'arguments': arguments})}\n</tool_call>"
        return json.dumps({tool["name"]: arguments}, separators=(",", ":"))

    def _completion(self, body: dict, content: str | None, tool_calls: list[dict] | None) -> dict:
        completion_tokens = len((content or json.dumps(tool_calls)).split())
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        message = {"role": "assistant", "content": content, "tool_calls": tool_calls or []}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def _chunks(self, text: str) -> AsyncIterator[str]:
        """Server-sent events, one word per chunk, then [DONE], as vLLM streams."""
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            finish = "stop" if i == len(words) - 1 else None
            choice = {"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": finish}
            yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"
        yield "data: [DONE]\n\n"


def _tools_of_schema(body: dict) -> list[dict]:
    """The tools a ``response_format`` one-call schema offers (``tool_shapes.one_call_schema``), else []."""
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    return [
        {"name": name, "parameters": parameters}
        for branch in schema.get("anyOf") or []
        for name, parameters in branch.get("properties", {}).items()
    ]


def _error(status: int, message: str, kind: str) -> JSONResponse:
    """An error body in the shape vLLM's OpenAI server returns."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)
