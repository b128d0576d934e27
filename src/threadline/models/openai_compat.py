"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint.

vLLM, Ollama, llama.cpp's server, LiteLLM, Azure or OpenAI itself, through the
official SDK's ``AsyncOpenAI``. The SDK's own retries are off: this module retries
429, 408/409, 5xx and connection failures itself (exponential backoff with jitter,
``Retry-After`` honoured, at most ``openai_max_retries`` times), and only until the
first delta reached the caller: a failure after that is raised, never replayed.

Consumers should close the stream when they stop early
(``async with contextlib.aclosing(backend.stream(request))``); cancelling the
consuming task closes the HTTP stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

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
from threadline.models.scripted import new_call_id

if TYPE_CHECKING:
    from threadline.settings import Settings

_log = logging.getLogger(__name__)
OPENAI_URL = "https://api.openai.com/v1"
MAX_RETRY_AFTER_SECONDS = 60.0
_RETRYABLE_STATUS = frozenset({408, 409, 429})
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


def is_retryable(exc: openai.OpenAIError) -> bool:
    status = _status(exc)
    if status is not None:
        return status in _RETRYABLE_STATUS or status >= 500
    return isinstance(exc, openai.APIConnectionError)


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


def retry_after(exc: openai.OpenAIError) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms`` / ``retry-after``)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    raw = headers.get("retry-after")
    try:
        if raw_ms is not None:
            return max(float(raw_ms) / 1000, 0.0)
        if raw is not None:
            return max(float(raw), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
        if parsed is not None:
            return max(parsed.timestamp() - time.time(), 0.0)
    return None


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
        self._ids.append(call_id or new_call_id())
        name = function.get("name") or ""
        return ToolCallDelta(slot, id=self._ids[slot], name=name, arguments=arguments)


class OpenAICompatBackend(ModelBackend):
    """Runs models on an OpenAI-compatible server (``THREADLINE_OPENAI_*``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        self._settings = settings
        self._mapping = settings.model_mapping()
        self._max_retries = settings.openai_max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._client = AsyncOpenAI(
            base_url=settings.openai_base_url or OPENAI_URL,
            api_key=settings.openai_api_key,
            timeout=settings.openai_timeout_seconds,
            max_retries=0,
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

    def backoff(self, attempt: int, exc: openai.OpenAIError) -> float:
        """Seconds before retry ``attempt`` (0-based): ``Retry-After``, else jittered."""
        asked = retry_after(exc)
        if asked is not None:
            return min(asked, MAX_RETRY_AFTER_SECONDS)
        ceiling = min(self._backoff_max, self._backoff_base * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        attempt = 0
        while True:
            emitted = False
            try:
                async with contextlib.aclosing(self._attempt(request)) as events:
                    async for event in events:
                        emitted = emitted or not isinstance(event, Finish)
                        yield event
                return
            except openai.OpenAIError as exc:
                if emitted or attempt >= self._max_retries or not is_retryable(exc):
                    raise to_model_error(exc) from exc
                wait = self.backoff(attempt, exc)
                _log.warning(
                    "model call failed (%s); retry %d of %d in %.2fs",
                    to_model_error(exc).message,
                    attempt + 1,
                    self._max_retries,
                    wait,
                )
                await asyncio.sleep(wait)
                attempt += 1
            except ValueError as exc:  # a chunk that is not JSON
                raise ModelError(f"Model server sent an invalid stream: {exc}") from exc

    async def _attempt(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        model = self.resolve_model(request.model)
        # The SDK's call for a raw response, its body left unread: the body is built
        # here in wire form and the chunks read as plain JSON, without the typed
        # method's walk over its parameters or the models it would build of each
        # chunk (together a tenth of a run's CPU on a loopback model).
        response = cast(
            httpx2.Response,  # what ``cast_to`` asks for, whatever ``stream_cls`` says
            await self._client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                body=chat_body(model, request),
                stream=True,
                stream_cls=openai.AsyncStream[Any],
            ),
        )
        try:
            indexer = _ToolCallIndexer()
            usage: Usage | None = None
            reason: str | None = None
            produced: list[str] = []
            async for chunk in _chunks(response):
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
        finally:
            await response.aclose()
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


async def _events(response: httpx2.Response) -> AsyncGenerator[str, None]:
    """The ``data`` of each server-sent event, up to ``[DONE]``; a transport failure
    mid-stream becomes the SDK's ``APIConnectionError`` (retryable before output)."""
    lines = response.aiter_lines()
    data: list[str] = []
    try:
        async for line in lines:
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
            elif not line and data:
                payload = "\n".join(data)
                data = []
                if payload.startswith("[DONE]"):
                    return
                yield payload
        if data and not data[0].startswith("[DONE]"):
            yield "\n".join(data)
    except (openai.OpenAIError, asyncio.CancelledError, GeneratorExit):
        raise
    except Exception as exc:
        raise openai.APIConnectionError(
            message=f"The model stream broke off: {exc!r}", request=response.request
        ) from exc


async def _chunks(response: httpx2.Response) -> AsyncIterator[dict[str, Any]]:
    """Chat-completion chunks as dicts; an ``error`` object in the stream is raised
    as the SDK would raise it."""
    async with contextlib.aclosing(_events(response)) as events:
        async for payload in events:
            chunk = json.loads(payload)
            if not isinstance(chunk, dict):
                raise ValueError(f"a stream chunk is not an object: {payload[:200]}")
            error = chunk.get("error")
            if error:
                message = error.get("message") if isinstance(error, dict) else None
                raise openai.APIError(
                    message=message
                    if isinstance(message, str) and message
                    else "An error occurred during streaming",
                    request=response.request,
                    body=error,
                )
            yield chunk


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
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
