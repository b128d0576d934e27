"""Reading a model's stream ahead of the turn: what arrived together goes as one
text delta, the first is not held back, errors and cancellation still reach."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from threadline.engine.readahead import ReadAhead
from threadline.models.base import Finish, ModelError, ModelEvent, TextDelta, ToolCallDelta


async def _events(
    *items: ModelEvent | BaseException,
    gate: asyncio.Event | None = None,
    closed: list[str] | None = None,
) -> AsyncIterator[ModelEvent]:
    try:
        for position, item in enumerate(items):
            if position == 1 and gate is not None:
                await gate.wait()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if closed is not None:
            closed.append("closed")


async def test_deltas_that_arrive_while_the_turn_is_busy_go_as_one() -> None:
    gate = asyncio.Event()
    stream = ReadAhead(
        _events(TextDelta("Hel"), TextDelta("lo "), TextDelta("there"), Finish("stop"), gate=gate)
    )
    got: list[ModelEvent] = []
    async for event in stream:
        got.append(event)
        gate.set()
        await asyncio.sleep(0.01)  # the turn publishing: the rest arrives meanwhile
    await stream.aclose()
    assert got == [TextDelta("Hel"), TextDelta("lo there"), Finish("stop")]


async def test_the_first_delta_is_handed_over_before_the_rest_arrives() -> None:
    gate = asyncio.Event()
    stream = ReadAhead(_events(TextDelta("first"), TextDelta("second"), Finish("stop"), gate=gate))
    events = aiter(stream)
    assert await asyncio.wait_for(anext(events), 1) == TextDelta("first")
    gate.set()
    assert [event async for event in events] == [TextDelta("second"), Finish("stop")]
    await stream.aclose()


async def test_only_text_is_merged_and_order_is_kept() -> None:
    call = ToolCallDelta(index=0, id="call_1", name="f", arguments="{}")
    stream = ReadAhead(
        _events(TextDelta("a"), call, TextDelta("b"), TextDelta("c"), Finish("stop"))
    )
    await asyncio.sleep(0.01)  # everything read before the turn looks
    got = [event async for event in stream]
    await stream.aclose()
    assert got == [TextDelta("a"), call, TextDelta("bc"), Finish("stop")]


async def test_a_model_error_reaches_the_turn_after_what_came_before_it() -> None:
    stream = ReadAhead(_events(TextDelta("partial"), ModelError("the model went away")))
    events = aiter(stream)
    assert await anext(events) == TextDelta("partial")
    with pytest.raises(ModelError, match="went away"):
        await anext(events)
    await stream.aclose()


async def test_closing_stops_reading_and_closes_the_models_stream() -> None:
    gate = asyncio.Event()  # never set: the model is still thinking
    closed: list[str] = []
    stream = ReadAhead(_events(TextDelta("x"), TextDelta("y"), gate=gate, closed=closed))
    events = aiter(stream)
    assert await anext(events) == TextDelta("x")
    await asyncio.wait_for(stream.aclose(), 1)
    assert closed == ["closed"]
