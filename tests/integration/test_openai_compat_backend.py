"""The OpenAI-compatible backend against the fake chat-completions server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.support.model_events import collect as run
from tests.support.model_events import finish_of, text_of
from threadline.models import tokens
from threadline.models.base import (
    ChatMessage,
    Finish,
    FunctionTool,
    ModelError,
    ModelEvent,
    ModelRequest,
    NamedToolChoice,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from threadline.models.openai_compat import OpenAICompatBackend
from threadline.settings import Settings
from threadline.testing import FakeChatServer, free_port

HELLO = [ChatMessage("user", "hello")]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeChatServer]:
    with FakeChatServer() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeChatServer) -> FakeChatServer:
    """The shared fake server, reset to its defaults."""
    fake_server.reset()
    return fake_server


def make_backend(url: str, **settings: Any) -> OpenAICompatBackend:
    values: dict[str, Any] = {"openai_base_url": url, "openai_api_key": "sk-fake", **settings}
    return OpenAICompatBackend(Settings.model_validate(values))


@pytest.fixture
async def backend(fake: FakeChatServer) -> AsyncIterator[OpenAICompatBackend]:
    backend = make_backend(fake.url, openai_max_retries=2)
    yield backend
    await backend.aclose()


async def fails(backend: OpenAICompatBackend, request: ModelRequest) -> ModelError:
    with pytest.raises(ModelError) as caught:
        await run(backend, request)
    return caught.value


# ----------------------------------------------------------------------- success


async def test_streams_text_with_usage(fake: FakeChatServer, backend: OpenAICompatBackend) -> None:
    events = await run(backend, ModelRequest(model="gpt-4o", messages=HELLO))
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "Hello",
        " from",
        " the",
        " fake",
        " model.",
    ]
    assert finish_of(events) == Finish("stop", Usage(12, 7))
    [sent] = fake.requests
    assert sent == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert fake.headers[0]["authorization"] == "Bearer sk-fake"
    assert fake.completed_streams == 1


async def test_sends_the_whole_request(fake: FakeChatServer, backend: OpenAICompatBackend) -> None:
    call = ToolCall("call_abc", "get_weather", '{"city": "Paris"}')
    request = ModelRequest(
        model="gpt-4o",
        messages=[
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Weather?"),
            ChatMessage("assistant", None, tool_calls=(call,)),
            ChatMessage("tool", '{"temp": 21}', tool_call_id="call_abc"),
            ChatMessage("assistant", "It is 21."),
        ],
        tools=[
            FunctionTool("get_weather", "Weather now", {"type": "object"}, strict=True),
            FunctionTool("get_time"),
        ],
        tool_choice=NamedToolChoice("get_time"),
        parallel_tool_calls=False,
        temperature=0.2,
        top_p=0.9,
        max_tokens=64,
    )
    await run(backend, request)
    sent = fake.requests[0]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"temp": 21}'},
        {"role": "assistant", "content": "It is 21."},
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather now",
                "parameters": {"type": "object"},
                "strict": True,
            },
        },
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert sent["parallel_tool_calls"] is False
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.2, 0.9, 64)
    assert "max_completion_tokens" not in sent


@pytest.mark.parametrize("choice", ["none", "auto", "required"])
async def test_tool_choice_strings(
    fake: FakeChatServer, backend: OpenAICompatBackend, choice: ToolChoice
) -> None:
    request = ModelRequest(model="m", messages=HELLO, tools=[FunctionTool("f")], tool_choice=choice)
    await run(backend, request)
    assert fake.requests[0]["tool_choice"] == choice
    assert fake.requests[0]["parallel_tool_calls"] is True


async def test_parallel_tool_calls(fake: FakeChatServer, backend: OpenAICompatBackend) -> None:
    fake.reply = ""
    fake.tool_calls = [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_time", "arguments": {"zone": "CET"}},
    ]
    events = await run(backend, ModelRequest(model="m", messages=HELLO, tools=[FunctionTool("f")]))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    heads = [d for d in deltas if d.id is not None]
    assert [(d.index, d.name) for d in heads] == [(0, "get_weather"), (1, "get_time")]
    assert all(d.id and d.id.startswith("call_") for d in heads)
    assert len(deltas) == 6  # a head and two argument pieces per call
    assert all(d.name is None for d in deltas if d.id is None)
    arguments = ["".join(d.arguments for d in deltas if d.index == i) for i in (0, 1)]
    assert [json.loads(a) for a in arguments] == [{"city": "Paris"}, {"zone": "CET"}]
    assert text_of(events) == ""
    assert finish_of(events).reason == "tool_calls"


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    ],
)
async def test_json_mode_is_passed_through(
    fake: FakeChatServer, backend: OpenAICompatBackend, response_format: dict[str, Any]
) -> None:
    fake.reply = '{"ok": true}'
    request = ModelRequest(model="m", messages=HELLO, response_format=response_format)
    assert text_of(await run(backend, request)) == '{"ok": true}'
    assert fake.requests[0]["response_format"] == response_format


async def test_text_format_is_left_out(fake: FakeChatServer, backend: OpenAICompatBackend) -> None:
    await run(backend, ModelRequest(model="m", messages=HELLO, response_format={"type": "text"}))
    assert "response_format" not in fake.requests[0]


async def test_usage_is_estimated_when_the_server_sends_none(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    fake.usage = None
    events = await run(backend, ModelRequest(model="gpt-4o", messages=HELLO))
    assert finish_of(events).usage == Usage(
        tokens.count_messages("gpt-4o", HELLO), tokens.count_text("gpt-4o", fake.reply)
    )


@pytest.mark.parametrize(
    ("server_reason", "tool_calls", "expected"),
    [
        ("length", False, "length"),
        ("content_filter", False, "stop"),
        ("stop", True, "tool_calls"),  # some servers say "stop" after tool calls
    ],
)
async def test_finish_reasons(
    fake: FakeChatServer,
    backend: OpenAICompatBackend,
    server_reason: str,
    tool_calls: bool,
    expected: str,
) -> None:
    fake.finish_reason = server_reason
    fake.tool_calls = [{"name": "f", "arguments": {}}] if tool_calls else []
    events = await run(backend, ModelRequest(model="m", messages=HELLO))
    assert finish_of(events).reason == expected


async def test_model_mapping(fake: FakeChatServer) -> None:
    backend = make_backend(fake.url, model_map="gpt-4o=llama3", openai_context_window=8192)
    try:
        assert backend.resolve_model("gpt-4o") == "llama3"
        assert backend.resolve_model("gpt-4o-mini") == "gpt-4o-mini"
        assert backend.context_window("llama3") == 8192
        assert backend.count_tokens("gpt-4o", HELLO) == tokens.count_messages("gpt-4o", HELLO)
        await run(backend, ModelRequest(model="gpt-4o", messages=HELLO))
        assert fake.requests[0]["model"] == "llama3"
    finally:
        await backend.aclose()


# ----------------------------------------------------------------------- failures


async def test_retries_429_then_succeeds(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    fake.fail_with, fake.fail_times, fake.retry_after = 429, 2, 0.01
    events = await run(backend, ModelRequest(model="m", messages=HELLO))
    assert text_of(events) == fake.reply
    assert len(fake.requests) == 3
    assert fake.requests[0] == fake.requests[2]


async def test_retry_after_is_honoured(fake: FakeChatServer, backend: OpenAICompatBackend) -> None:
    fake.fail_with, fake.fail_times, fake.retry_after = 503, 1, 0.4
    start = time.monotonic()
    await run(backend, ModelRequest(model="m", messages=HELLO))
    assert time.monotonic() - start >= 0.4
    assert len(fake.requests) == 2


async def test_429_exhausted_is_rate_limit_exceeded(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    fake.fail_with, fake.fail_message, fake.retry_after = 429, "Rate limit reached", 0.01
    error = await fails(backend, ModelRequest(model="m", messages=HELLO))
    assert error.code == "rate_limit_exceeded"
    assert "Rate limit reached" in error.message
    assert len(fake.requests) == 3  # 1 + openai_max_retries


async def test_500_is_server_error_after_retries(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    fake.fail_with, fake.retry_after = 500, 0.01
    assert (await fails(backend, ModelRequest(model="m", messages=HELLO))).code == "server_error"
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("This model's maximum context length is 4096 tokens.", None),
        ("Too long.", "context_length_exceeded"),
        ("the request exceeds the available context size", None),
    ],
)
async def test_400_context_length_is_invalid_prompt(
    fake: FakeChatServer, backend: OpenAICompatBackend, message: str, code: str | None
) -> None:
    fake.fail_with, fake.fail_message, fake.fail_code = 400, message, code
    assert (await fails(backend, ModelRequest(model="m", messages=HELLO))).code == "invalid_prompt"
    assert len(fake.requests) == 1  # never retried


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_other_client_errors_are_server_errors_without_retry(
    fake: FakeChatServer, backend: OpenAICompatBackend, status: int
) -> None:
    fake.fail_with, fake.fail_message = status, "Unknown parameter: 'foo'."
    assert (await fails(backend, ModelRequest(model="m", messages=HELLO))).code == "server_error"
    assert len(fake.requests) == 1


async def test_connection_refused_is_server_error() -> None:
    backend = make_backend(f"http://127.0.0.1:{free_port()}/v1", openai_max_retries=1)
    try:
        error = await fails(backend, ModelRequest(model="m", messages=HELLO))
        assert error.code == "server_error"
    finally:
        await backend.aclose()


async def test_timeout_is_server_error(fake: FakeChatServer) -> None:
    fake.delay = 1.0
    backend = make_backend(fake.url, openai_timeout_seconds=0.2, openai_max_retries=0)
    try:
        error = await fails(backend, ModelRequest(model="m", messages=HELLO))
        assert error.code == "server_error"
        assert "timed out" in error.message.lower()
        await wait_for_disconnect(fake)  # the server gave up too: nothing left in flight
    finally:
        await backend.aclose()


@pytest.mark.parametrize("mode", ["error", "drop"])
async def test_failure_mid_stream_is_not_retried(
    fake: FakeChatServer, backend: OpenAICompatBackend, mode: Any
) -> None:
    fake.break_after, fake.break_mode = 2, mode
    seen: list[ModelEvent] = []

    async def consume() -> None:
        async for event in backend.stream(ModelRequest(model="m", messages=HELLO)):
            seen.append(event)

    with pytest.raises(ModelError) as caught:
        await consume()
    assert caught.value.code == "server_error"
    assert seen == [TextDelta("Hello"), TextDelta(" from")]
    assert len(fake.requests) == 1


async def test_a_chunk_that_is_not_json_fails_the_call(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    fake.break_after, fake.break_mode = 1, "garbage"
    error = await fails(backend, ModelRequest(model="m", messages=HELLO))
    assert error.code == "server_error"
    assert "invalid stream" in error.message
    assert len(fake.requests) == 1


async def test_usage_out_of_range_fails_the_call(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    fake.usage = (99999999999999999999, 7)
    error = await fails(backend, ModelRequest(model="m", messages=HELLO))
    assert error.code == "server_error"
    assert "usage counts out of range" in error.message


async def test_an_error_event_before_any_delta_is_not_retried(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    fake.break_after, fake.break_mode = 0, "error"
    fake.fail_message = "The model is overloaded."
    error = await fails(backend, ModelRequest(model="m", messages=HELLO))
    assert error.code == "server_error"
    assert "overloaded" in error.message
    assert len(fake.requests) == 1


async def test_a_drop_before_any_delta_is_not_retried(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    """The SDK retries until the response starts; a stream cut after that is a failure."""
    fake.break_after, fake.break_mode = 0, "drop"
    assert (await fails(backend, ModelRequest(model="m", messages=HELLO))).code == "server_error"
    assert len(fake.requests) == 1


# ----------------------------------------------------------------------- closing


async def wait_for_disconnect(fake: FakeChatServer) -> None:
    deadline = time.monotonic() + 5
    while fake.disconnects == 0:
        assert time.monotonic() < deadline, "the server never saw the client leave"
        await asyncio.sleep(0.01)
    assert fake.completed_streams == 0


async def test_cancellation_closes_the_stream(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    fake.reply = " ".join(["word"] * 200)
    fake.token_delay = 0.05
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in backend.stream(ModelRequest(model="m", messages=HELLO)):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for_disconnect(fake)


async def test_stopping_early_closes_the_stream(
    fake: FakeChatServer, backend: OpenAICompatBackend
) -> None:
    fake.reply = " ".join(["word"] * 200)
    fake.token_delay = 0.05
    stream = backend.stream(ModelRequest(model="m", messages=HELLO))
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for event in stream:
            assert event == TextDelta("word")
            break
    await wait_for_disconnect(fake)


def test_fake_server_answers_without_streaming(fake: FakeChatServer) -> None:
    import openai

    fake.tool_calls = [{"name": "f", "arguments": {"a": 1}}]
    client = openai.OpenAI(base_url=fake.url, api_key="k", max_retries=0)
    completion = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    message = completion.choices[0].message
    assert message.content == fake.reply
    assert message.tool_calls is not None
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 19
    client.close()
