"""Smoke tests: the real 0.5B model through ``LocalBackend`` (slow; ``-m smoke``).

The weights are assembled once into ``$THREADLINE_DATA_DIR/models`` (default: the
repository's ``data/``) and reused by later runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from tests.support.model_events import collect, finish_of, text_of
from threadline.models.base import (
    ChatMessage,
    FunctionTool,
    ModelRequest,
    NamedToolChoice,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from threadline.models.local import LocalBackend
from threadline.settings import Settings

pytestmark = pytest.mark.smoke

DATA_DIR = Path(os.environ.get("THREADLINE_DATA_DIR", Path(__file__).resolve().parents[2] / "data"))
WEATHER = FunctionTool(
    name="get_weather",
    description="Get the current weather for a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


@pytest.fixture(scope="session")
async def backend() -> AsyncIterator[LocalBackend]:
    local = LocalBackend(Settings(data_dir=DATA_DIR, local_model="qwen2.5-coder-0.5b"))
    await local.warm_up()
    yield local
    await local.aclose()


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]


async def test_names_and_sizes(backend: LocalBackend) -> None:
    assert backend.resolve_model("gpt-4o-mini") == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert backend.context_window("gpt-4o") == 8192
    messages = user("Hello there")
    events = await collect(backend, ModelRequest("gpt-4o", messages, max_tokens=1))
    assert finish_of(events).usage.prompt_tokens == backend.count_tokens("gpt-4o", messages)


async def test_plain_answer_streams(backend: LocalBackend) -> None:
    events = await collect(
        backend,
        ModelRequest(
            "gpt-4o",
            user("What is the capital of France? Explain in two sentences."),
            temperature=0,
        ),
    )
    finish = finish_of(events)
    assert finish.reason == "stop"
    assert "Paris" in text_of(events)
    assert sum(isinstance(e, TextDelta) for e in events) > 1
    assert finish.usage.prompt_tokens > 10
    assert finish.usage.completion_tokens > 1


async def test_forced_function_call(backend: LocalBackend) -> None:
    request = ModelRequest(
        "gpt-4o",
        user("I'm going to Rome tomorrow."),
        tools=[WEATHER],
        tool_choice=NamedToolChoice("get_weather"),
    )
    events = await collect(backend, request)
    assert finish_of(events).reason == "tool_calls"
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0].index == 0
    assert deltas[0].name == "get_weather"
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", deltas[0].id or "")
    arguments = json.loads("".join(d.arguments for d in deltas))
    assert isinstance(arguments["city"], str)
    assert arguments["city"]


async def test_answer_after_tool_result(backend: LocalBackend) -> None:
    call = ToolCall("call_000000000000000000000001", "get_weather", '{"city": "Paris"}')
    messages = [
        ChatMessage("user", "What's the weather in Paris?"),
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage("tool", '{"temp_c": 18, "condition": "sunny"}', tool_call_id=call.id),
    ]
    events = await collect(
        backend, ModelRequest("gpt-4o", messages, tools=[WEATHER], temperature=0)
    )
    assert finish_of(events).reason == "stop"
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    assert "18" in text_of(events)


async def test_json_mode(backend: LocalBackend) -> None:
    request = ModelRequest(
        "gpt-4o",
        user("Describe a cat with the keys name and color."),
        response_format={"type": "json_object"},
    )
    events = await collect(backend, request)
    assert finish_of(events).reason == "stop"
    assert isinstance(json.loads(text_of(events)), dict)


async def test_max_tokens_finishes_with_length(backend: LocalBackend) -> None:
    request = ModelRequest(
        "gpt-4o",
        user("Write a long essay about the history of the printing press."),
        max_tokens=48,
        temperature=0,
    )
    events = await collect(backend, request)
    finish = finish_of(events)
    assert finish.reason == "length"
    assert finish.usage.completion_tokens == 48
    assert len(text_of(events)) > 100


async def test_cancel_stops_generation_and_frees_the_model(backend: LocalBackend) -> None:
    request = ModelRequest("gpt-4o", user("Count from 1 to 500, one number per line."))
    seen = 0
    stream = backend.stream(request)
    async for event in stream:
        seen += isinstance(event, TextDelta)
        if seen == 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    follow_up = ModelRequest("gpt-4o", user("Say OK."), max_tokens=5)
    events = await asyncio.wait_for(collect(backend, follow_up), timeout=60)
    assert finish_of(events).reason in ("stop", "length")
