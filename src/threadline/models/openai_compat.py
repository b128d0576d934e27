"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint.

vLLM, Ollama, llama.cpp's server, LiteLLM, Azure or OpenAI itself, through the
official SDK's ``AsyncOpenAI``. The SDK does the transport work:

- its retries: ``openai_max_retries`` of them, on 408, 409, 429, 5xx, timeouts and
  connection failures, with exponential backoff and jitter; a ``Retry-After`` of up
  to two minutes is waited for, a longer one fails the call at once; each retry is
  logged on the SDK's ``openai`` logger. Retries happen before the response starts:
  a failure once the stream is under way (a dropped connection, an error event) ends
  the call and is never replayed.
- its server-sent-events decoding, error events raised as ``APIError``.

For speed the call goes through the SDK's raw ``post`` with the request body built
here in wire form and each chunk kept as the plain JSON object the SDK decoded: the
typed ``chat.completions.create`` walks its parameters and builds a model of every
chunk, together a tenth of a run's CPU on a loopback model. (The SDK's decoder costs
about 10 µs of CPU per chunk more than a line splitter did: little next to a model's
time per token.)

Consumers should close the stream when they stop early
(``async with contextlib.aclosing(backend.stream(request))``); cancelling the
consuming task closes the HTTP stream.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from threadline.domain.ids import new_id
from threadline.models import tokens
from threadline.models.base import (
    ChatMessage,
    ErrorCode,
    Finish,
    FinishReason,
    FunctionTool,
    ModelBackend,
    ModelError,
    ModelEvent,
    ModelRequest,
    NamedToolChoice,
    TextDelta,
    ToolCallDelta,
    ToolChoice,
    Usage,
)

if TYPE_CHECKING:
    from threadline.settings import Settings

OPENAI_URL = "https://api.openai.com/v1"
_INVALID_PROMPT = re.compile(
    r"context.?(length|window|size)|maximum context|too many tokens|prompt is too long"
    r"|too long|exceeds? the (available|maximum)|invalid.?prompt|invalid.*messages?\b",
    re.IGNORECASE,
)
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
}
MAX_USAGE_TOKENS = 1_000_000_000
"""Usage counts a server reports above this are refused, as nonsense."""


# ----------------------------------------------------------------------- request


def _message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content or "",
        }
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    elif message.content is None:
        wire["content"] = ""
    return wire


def _tool(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if isinstance(choice, NamedToolChoice):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


# ----------------------------------------------------------------------- errors


def _status(exc: openai.OpenAIError) -> int | None:
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


def to_model_error(exc: openai.OpenAIError) -> ModelError:
    """The ``ModelError`` (with its run ``last_error.code``) for an SDK failure."""
    status = _status(exc)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    body = getattr(exc, "body", None)
    details = body if isinstance(body, dict) else {}
    hint = " ".join(str(details.get(key) or "") for key in ("code", "param", "type"))
    code: ErrorCode = "server_error"
    prompt_status = status in (400, 413, 422) or status is None
    bad_messages = status == 400 and str(details.get("param") or "").startswith("messages")
    if status == 429:
        code = "rate_limit_exceeded"
    elif bad_messages or (prompt_status and _INVALID_PROMPT.search(f"{message} {hint}")):
        code = "invalid_prompt"
    prefix = f"Model server error {status}: " if status else "Model server error: "
    return ModelError(prefix + message, code)


# ----------------------------------------------------------------------- stream


class _ToolCallIndexer:
    """Stable indexes and one id/name per call, whatever the server sends.

    Some servers start at index 1, repeat the id on every delta, leave the id out,
    or reuse index 0 for parallel calls with new ids: all become OpenAI's shape.
    """

    def __init__(self) -> None:
        self._slots: dict[int, int] = {}
        self._ids: list[str] = []

    @property
    def count(self) -> int:
        return len(self._ids)

    def delta(self, position: int, call: dict[str, Any]) -> ToolCallDelta:
        server_index = call.get("index")
        if not isinstance(server_index, int):
            server_index = position
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        call_id = call.get("id")
        slot = self._slots.get(server_index)
        if slot is not None and (not call_id or call_id == self._ids[slot]):
            return ToolCallDelta(slot, arguments=arguments)
        slot = self._slots[server_index] = len(self._ids)
        self._ids.append(call_id or new_id("tool_call"))
        name = function.get("name") or ""
        return ToolCallDelta(slot, id=self._ids[slot], name=name, arguments=arguments)


class OpenAICompatBackend(ModelBackend):
    """Runs models on an OpenAI-compatible server (``THREADLINE_OPENAI_*``)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mapping = settings.model_mapping()
        self._client = AsyncOpenAI(
            base_url=settings.openai_base_url or OPENAI_URL,
            api_key=settings.openai_api_key,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
            # aiohttp's C HTTP parser: the SDK's default transport spent as much CPU
            # on a loopback model call as the rest of the run's request handling.
            http_client=DefaultAioHttpClient(timeout=settings.openai_timeout_seconds),
        )

    def resolve_model(self, requested: str) -> str:
        return self._mapping.get(requested, requested)

    def context_window(self, model: str) -> int:
        return self._settings.openai_context_window

    def count_tokens(self, model: str, messages: Sequence[ChatMessage]) -> int:
        return tokens.count_messages(model, messages)

    async def warm_up(self) -> None:
        await tokens.load_encoding("gpt-4o")  # o200k_base, the one most names use

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        model = self.resolve_model(request.model)
        indexer = _ToolCallIndexer()
        usage: Usage | None = None
        reason: str | None = None
        produced: list[str] = []
        try:
            # ``object`` chunks: the SDK hands each decoded JSON value over as it is.
            chunks = await self._client.post(
                "/chat/completions",
                cast_to=object,
                body=chat_body(model, request),
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            async with chunks:
                async for chunk in chunks:
                    if not isinstance(chunk, dict):
                        raise ValueError(f"a stream chunk is not an object: {str(chunk)[:200]}")
                    usage = _usage(chunk) or usage
                    for choice in (chunk.get("choices") or ())[:1]:
                        delta = choice.get("delta") or {}
                        content = delta.get("content")
                        if content:
                            produced.append(content)
                            yield TextDelta(content)
                        for position, call in enumerate(delta.get("tool_calls") or ()):
                            event = indexer.delta(position, call)
                            produced.append((event.name or "") + event.arguments)
                            yield event
                        reason = choice.get("finish_reason") or reason
        except openai.OpenAIError as exc:
            raise to_model_error(exc) from exc
        except (ValueError, TypeError, AttributeError) as exc:  # not JSON, or not a chunk
            raise ModelError(f"Model server sent an invalid stream: {exc}") from exc
        if usage is None:
            await tokens.load_encoding(model)
            usage = Usage(
                tokens.count_messages(model, request.messages),
                tokens.count_text(model, "".join(produced)),
            )
        finish = _FINISH.get(reason or "", "stop")
        if indexer.count and finish != "length":
            finish = "tool_calls"  # some servers say "stop" after tool calls
        yield Finish(finish, usage)


def chat_body(model: str, request: ModelRequest) -> dict[str, Any]:
    """The chat-completions request body for ``request``, in wire form."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(message) for message in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
        body["tool_choice"] = _tool_choice(request.tool_choice)
        body["parallel_tool_calls"] = request.parallel_tool_calls
    response_format = request.response_format
    if response_format is not None and response_format.get("type") != "text":
        body["response_format"] = response_format  # "text" is the default; some reject it
    for key in ("temperature", "top_p", "max_tokens"):
        value = getattr(request, key)
        if value is not None:
            body[key] = value
    return body


def _usage(chunk: dict[str, Any]) -> Usage | None:
    usage = chunk.get("usage")
    if not isinstance(usage, dict):
        return None
    counts = [usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0]
    if not all(isinstance(n, int | float) and 0 <= n <= MAX_USAGE_TOKENS for n in counts):
        raise ValueError(f"usage counts out of range: {str(usage)[:200]}")
    return Usage(int(counts[0]), int(counts[1]))
