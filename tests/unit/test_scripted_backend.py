"""The scripted backend: directives, the Python handler, defaults and limits."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.model_events import collect as run
from tests.support.model_events import finish_of, text_of
from threadline.models import tokens
from threadline.models.base import (
    ChatMessage,
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
from threadline.models.scripted import (
    MAX_CHUNKS,
    MAX_DELAY_SECONDS,
    MAX_TOKENS,
    ErrorStep,
    HangStep,
    ScriptedBackend,
    ScriptedCall,
    TextStep,
    ToolCallsStep,
    directive,
    parse_step,
    split_text,
)
from threadline.settings import Settings

TOOLS = (FunctionTool("get_weather"), FunctionTool("get_time"))
CALL_ID = re.compile(r"^call_[A-Za-z0-9]{24}$")


def request(
    *messages: ChatMessage,
    tools: Sequence[FunctionTool] = (),
    tool_choice: ToolChoice = "auto",
    parallel_tool_calls: bool = True,
    max_tokens: int | None = None,
) -> ModelRequest:
    return ModelRequest(
        model="gpt-4o",
        messages=list(messages),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel_tool_calls,
        max_tokens=max_tokens,
    )


def user(content: str) -> ChatMessage:
    return ChatMessage("user", content)


def scripted(*steps: Any) -> ChatMessage:
    return user(directive(*steps))


def assistant_calls(*names: str) -> list[ChatMessage]:
    calls = tuple(ToolCall(f"call_{i}", name, "{}") for i, name in enumerate(names))
    results = [ChatMessage("tool", "ok", tool_call_id=call.id) for call in calls]
    return [ChatMessage("assistant", None, tool_calls=calls), *results]


def calls_of(events: list[ModelEvent]) -> list[tuple[str, str, str]]:
    """(id, name, arguments) per call, checking the delta protocol on the way."""
    calls: dict[int, list[str]] = {}
    for event in events:
        if not isinstance(event, ToolCallDelta):
            continue
        if event.index not in calls:
            assert event.id is not None
            assert event.name is not None
            calls[event.index] = [event.id, event.name, event.arguments]
        else:
            assert event.id is None
            assert event.name is None
            calls[event.index][2] += event.arguments
    assert sorted(calls) == list(range(len(calls)))
    return [(c[0], c[1], c[2]) for _, c in sorted(calls.items())]


# ----------------------------------------------------------------------- defaults


async def test_default_reply_echoes_the_last_user_message() -> None:
    backend = ScriptedBackend()
    req = request(user("first"), ChatMessage("assistant", "ok"), user("hi there  friend"))
    events = await run(backend, req)
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "You",
        " said:",
        " hi",
        " there",
        "  friend",
    ]
    finish = finish_of(events)
    assert finish.reason == "stop"
    assert finish.usage == Usage(
        tokens.count_messages("gpt-4o", req.messages),
        tokens.count_text("gpt-4o", "You said: hi there  friend"),
    )
    assert list(backend.requests) == [req]


async def test_default_with_tool_choice_required_calls_the_first_function() -> None:
    events = await run(ScriptedBackend(), request(user("x"), tools=TOOLS, tool_choice="required"))
    [(call_id, name, arguments)] = calls_of(events)
    assert CALL_ID.match(call_id)
    assert (name, arguments) == ("get_weather", "{}")
    assert finish_of(events).reason == "tool_calls"


async def test_default_with_a_named_tool_choice_calls_that_function() -> None:
    choice = NamedToolChoice("get_time")
    events = await run(ScriptedBackend(), request(user("x"), tools=TOOLS, tool_choice=choice))
    assert [(n, a) for _, n, a in calls_of(events)] == [("get_time", "{}")]


async def test_default_with_tools_on_auto_replies_text() -> None:
    events = await run(ScriptedBackend(), request(user("x"), tools=TOOLS))
    assert text_of(events) == "You said: x"
    assert await run(ScriptedBackend(), request()) != []  # no user message at all


async def test_json_that_is_not_a_directive_is_echoed() -> None:
    events = await run(ScriptedBackend(), request(user('{"question": 1}')))
    assert text_of(events) == 'You said: {"question": 1}'


# ----------------------------------------------------------------------- directives


async def test_directive_plays_steps_by_assistant_messages_since_it() -> None:
    backend = ScriptedBackend()
    directive_message = scripted(
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"text": "It is sunny.", "chunks": 3},
    )
    first = await run(backend, request(directive_message, tools=TOOLS))
    [(_, name, arguments)] = calls_of(first)
    assert (name, json.loads(arguments)) == ("get_weather", {"city": "Paris"})
    # the engine sends the call and its result back: step 1 plays
    convo = [directive_message, *assistant_calls("get_weather")]
    second = await run(backend, request(*convo, tools=TOOLS))
    assert [e.text for e in second if isinstance(e, TextDelta)] == ["It i", "s su", "nny."]
    assert finish_of(second).reason == "stop"
    # stateless: the same conversation plays the same step again (a fresh backend too)
    assert text_of(await run(ScriptedBackend(), request(*convo, tools=TOOLS))) == "It is sunny."


async def test_empty_assistant_messages_do_not_count() -> None:
    convo = [scripted("one", "two"), ChatMessage("assistant", ""), ChatMessage("assistant", None)]
    assert text_of(await run(ScriptedBackend(), request(*convo))) == "one"


async def test_only_the_latest_user_message_directs() -> None:
    convo = [scripted("scripted reply"), ChatMessage("assistant", "scripted reply"), user("plain")]
    assert text_of(await run(ScriptedBackend(), request(*convo))) == "You said: plain"
    convo = [user("plain"), ChatMessage("assistant", "You said: plain"), scripted("again")]
    assert text_of(await run(ScriptedBackend(), request(*convo))) == "again"


async def test_past_the_end_a_text_step_repeats() -> None:
    convo = [scripted({"text": "last"}), ChatMessage("assistant", "last")]
    assert text_of(await run(ScriptedBackend(), request(*convo))) == "last"


async def test_past_the_end_anything_else_says_done() -> None:
    convo = [scripted({"tool_calls": [{"name": "get_time"}]}), *assistant_calls("get_time")]
    events = await run(ScriptedBackend(), request(*convo, tools=TOOLS))
    assert text_of(events) == "done"
    assert finish_of(events).reason == "stop"
    assert text_of(await run(ScriptedBackend(), request(scripted()))) == "done"


async def test_parallel_calls_raw_arguments_and_unknown_names() -> None:
    step = {
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "no_such_function", "arguments": "{not json"},
            {"name": "get_time"},
        ]
    }
    events = await run(ScriptedBackend(), request(scripted(step), tools=TOOLS))
    calls = calls_of(events)
    assert [(n, a) for _, n, a in calls] == [
        ("get_weather", '{"city": "Paris"}'),
        ("no_such_function", "{not json"),
        ("get_time", "{}"),
    ]
    assert len({call_id for call_id, _, _ in calls}) == 3
    assert all(CALL_ID.match(call_id) for call_id, _, _ in calls)
    for index in range(3):  # the first delta (id, name), then arguments in >= 2 pieces
        pieces = [e for e in events if isinstance(e, ToolCallDelta) and e.index == index]
        assert pieces[0].arguments == ""
        assert len(pieces) >= 3


async def test_parallel_tool_calls_false_keeps_the_first_call() -> None:
    step = {"tool_calls": [{"name": "get_weather"}, {"name": "get_time"}]}
    req = request(scripted(step), tools=TOOLS, parallel_tool_calls=False)
    assert [n for _, n, _ in calls_of(await run(ScriptedBackend(), req))] == ["get_weather"]


async def test_tool_choice_none_never_calls_tools() -> None:
    step = {"tool_calls": [{"name": "get_weather"}]}
    events = await run(ScriptedBackend(), request(scripted(step), tools=TOOLS, tool_choice="none"))
    assert text_of(events) == "done"
    assert not calls_of(events)


@pytest.mark.parametrize("code", ["rate_limit_exceeded", "server_error", "invalid_prompt"])
async def test_error_steps_raise(code: str) -> None:
    req = request(scripted({"error": code, "message": "boom"}))
    with pytest.raises(ModelError) as caught:
        await run(ScriptedBackend(), req)
    assert (caught.value.code, caught.value.message) == (code, "boom")


async def test_hang_waits_until_cancelled() -> None:
    task = asyncio.ensure_future(run(ScriptedBackend(), request(scripted({"hang": True}))))
    done, _ = await asyncio.wait([task], timeout=0.2)
    assert not done
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_delay_and_token_delay() -> None:
    step = {"text": "a b c d", "delay": 0.15, "token_delay": 0.05}
    stamps: list[float] = []
    start = time.monotonic()
    async for event in ScriptedBackend().stream(request(scripted(step))):
        if isinstance(event, TextDelta):
            stamps.append(time.monotonic() - start)
    assert len(stamps) == 4
    assert stamps[0] >= 0.15
    assert stamps[-1] - stamps[0] >= 3 * 0.05 * 0.9


async def test_usage_overrides() -> None:
    step = {"text": "hi", "prompt_tokens": 1000, "completion_tokens": 42}
    assert finish_of(await run(ScriptedBackend(), request(scripted(step)))).usage == Usage(1000, 42)
    step = {"tool_calls": [{"name": "f"}], "prompt_tokens": 5, "completion_tokens": 6}
    assert finish_of(await run(ScriptedBackend(), request(scripted(step)))).usage == Usage(5, 6)


async def test_max_tokens_cuts_the_reply() -> None:
    step = {"text": "one two three four five six seven"}
    events = await run(ScriptedBackend(), request(scripted(step), max_tokens=3))
    assert text_of(events) == "one two three"
    finish = finish_of(events)
    assert (finish.reason, finish.usage.completion_tokens) == ("length", 3)
    events = await run(ScriptedBackend(), request(scripted(step), max_tokens=7))
    assert finish_of(events).reason == "stop"


@pytest.mark.parametrize(
    "content",
    [
        '{"scripted": "not a list"}',
        directive({"txt": "typo"}),
        directive({"text": "x", "chunk": 2}),
        directive({"text": "x", "tool_calls": []}),
        directive({"tool_calls": []}),
        directive({"tool_calls": [{"arguments": {}}]}),
        directive({"error": "teapot"}),
        directive({"hang": "yes"}),
        directive({"text": "x", "delay": -1}),
        directive({"text": "x", "chunks": 0}),
        directive(42),  # type: ignore[arg-type]
    ],
)
async def test_malformed_directives_fail_as_invalid_prompt(content: str) -> None:
    with pytest.raises(ModelError) as caught:
        await run(ScriptedBackend(), request(user(content)))
    assert caught.value.code == "invalid_prompt"
    assert "scripted" in caught.value.message


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"text": "x", "prompt_tokens": 99999999999999999999}, "prompt_tokens"),
        ({"text": "x", "prompt_tokens": MAX_TOKENS + 1}, "prompt_tokens"),
        ({"hang": True, "completion_tokens": 2**63}, "completion_tokens"),
        ({"text": "x", "chunks": MAX_CHUNKS + 1}, "chunks"),
        ({"text": "x", "delay": MAX_DELAY_SECONDS + 0.5}, "delay"),
        ({"error": "server_error", "token_delay": 1e308 * 10}, "token_delay"),
        ({"text": "x", "delay": float("nan")}, "delay"),
    ],
)
async def test_out_of_range_numbers_name_the_field(step: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError) as caught:
        await run(ScriptedBackend(), request(user(directive(step))))
    assert caught.value.code == "invalid_prompt"
    assert f"'{field}'" in caught.value.message


async def test_the_bounds_themselves_are_accepted() -> None:
    step = {"text": "x", "prompt_tokens": MAX_TOKENS, "completion_tokens": MAX_TOKENS}
    events = await run(ScriptedBackend(), request(user(directive(step | {"chunks": MAX_CHUNKS}))))
    assert finish_of(events).usage == Usage(MAX_TOKENS, MAX_TOKENS)
    assert parse_step({"hang": True, "delay": MAX_DELAY_SECONDS}).delay == MAX_DELAY_SECONDS


def test_dataclass_steps_are_bounded_too() -> None:
    with pytest.raises(
        ValueError, match="'prompt_tokens' must be between 0 and 1,000,000,000, got 1000000001"
    ):
        TextStep("x", prompt_tokens=MAX_TOKENS + 1)
    with pytest.raises(ValueError, match="'chunks'"):
        TextStep("x", chunks=0)
    with pytest.raises(ValueError, match="'delay'"):
        HangStep(delay=-1.0)


# ----------------------------------------------------------------------- Python API


async def test_a_sync_handler_with_dataclass_steps() -> None:
    def handler(req: ModelRequest) -> TextStep | ToolCallsStep:
        if req.messages[-1].role == "tool":
            return TextStep("Sunny.", chunks=1)
        return ToolCallsStep([ScriptedCall("get_weather", {"city": "Paris"})])

    backend = ScriptedBackend(handler)
    first = await run(backend, request(user("weather?"), tools=TOOLS))
    assert [n for _, n, _ in calls_of(first)] == ["get_weather"]
    second = await run(backend, request(user("weather?"), *assistant_calls("get_weather")))
    assert [e for e in second if isinstance(e, TextDelta)] == [TextDelta("Sunny.")]


async def test_an_async_handler_with_json_steps() -> None:
    async def handler(req: ModelRequest) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"error": "rate_limit_exceeded", "message": "slow down"}

    with pytest.raises(ModelError, match="slow down") as caught:
        await run(ScriptedBackend(handler), request(user("x")))
    assert caught.value.code == "rate_limit_exceeded"
    assert text_of(await run(ScriptedBackend(lambda req: "plain"), request())) == "plain"


async def test_a_handler_returning_a_bad_step() -> None:
    with pytest.raises(ModelError) as caught:
        await run(ScriptedBackend(lambda req: {"nope": 1}), request())
    assert caught.value.code == "invalid_prompt"


def test_parse_step_round_trip() -> None:
    assert parse_step("hi") == TextStep("hi")
    assert parse_step({"text": "hi", "chunks": 2, "delay": 1}) == TextStep("hi", 2, delay=1.0)
    assert parse_step({"error": "server_error"}) == ErrorStep("server_error")
    assert parse_step({"hang": True, "delay": 0.5}) == HangStep(delay=0.5)
    step = parse_step({"tool_calls": [{"name": "f", "arguments": "{}"}], "token_delay": 0.1})
    assert step == ToolCallsStep([ScriptedCall("f", "{}")], token_delay=0.1)
    assert json.loads(directive("a", {"hang": True})) == {"scripted": ["a", {"hang": True}]}


def test_split_text() -> None:
    assert split_text("", None) == []
    assert split_text("  lead and trail  ", None) == ["  lead", " and", " trail  "]
    assert split_text("   ", None) == ["   "]
    assert split_text("abcdefg", 3) == ["abc", "de", "fg"]
    assert split_text("ab", 5) == ["a", "b"]


async def test_backend_settings(tmp_path: Path) -> None:
    backend = ScriptedBackend(model_mapping={"gpt-4o": "llama3"}, context_window=4096)
    assert backend.resolve_model("gpt-4o") == "llama3"
    assert backend.resolve_model("other") == "other"
    assert backend.context_window("llama3") == 4096
    messages = [user("hello world")]
    assert backend.count_tokens("gpt-4o", messages) == tokens.count_messages("gpt-4o", messages)
    settings = Settings(data_dir=tmp_path, model_map="gpt-4o=qwen")
    from_settings = ScriptedBackend.from_settings(settings)
    assert from_settings.resolve_model("gpt-4o") == "qwen"
    assert from_settings.context_window("qwen") == 128_000
    await from_settings.warm_up()
    await from_settings.aclose()
