"""Executor: turns of runs with the scripted model, no HTTP, on both engines."""

from __future__ import annotations

import asyncio
from typing import Any

from threadline.schemas.run import SubmitToolOutputsRequest


async def test_a_text_turn_completes_with_its_message_and_step(kit: Any) -> None:
    run = await kit.new_run({"text": "It is sunny.", "chunks": 3, "token_delay": 0.02})
    await kit.executor.execute(run["id"])
    row = await kit.row(run["id"])
    assert row.status == "completed"
    assert row.lease_owner is None
    assert row.data["usage"]["completion_tokens"] > 0
    [message] = await kit.messages(run["id"])
    assert message["status"] == "completed"
    assert message["content"][0]["text"]["value"] == "It is sunny."
    [step] = await kit.steps(run["id"])
    assert (step["type"], step["status"]) == ("message_creation", "completed")
    names = await kit.event_names(run["id"])
    assert names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert names.count("thread.message.delta") == 3
    assert names[-1] == "thread.run.completed"


async def test_pieces_the_model_sent_together_go_out_as_fewer_deltas(kit: Any) -> None:
    # The whole reply at once: what the turn had not handled yet is merged, and the
    # deltas still add up to the message.
    run = await kit.new_run({"text": "One two three four five six.", "chunks": 6})
    await kit.executor.execute(run["id"])
    events = await kit.events(run["id"])
    deltas = [data for name, data in events if name == "thread.message.delta"]
    assert 1 <= len(deltas) < 6
    text = "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas)
    assert text == "One two three four five six."
    assert [d["delta"]["content"][0]["index"] for d in deltas] == [0] * len(deltas)


async def test_function_calls_wait_for_outputs_then_the_run_goes_on(kit: Any) -> None:
    run = await kit.new_run(
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        "Sunny in Paris.",
        tools=[{"type": "function", "function": {"name": "get_weather"}}],
    )
    await kit.executor.execute(run["id"])
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner) == ("requires_action", None)
    [call] = row.data["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}

    req = SubmitToolOutputsRequest.model_validate(
        {"tool_outputs": [{"tool_call_id": call["id"], "output": "18C"}]}
    )
    resumed = await kit.runs.submit_tool_outputs(kit.project, run["thread_id"], run["id"], req)
    assert resumed["status"] == "queued"
    assert kit.queue.enqueued[-1] == run["id"]

    await kit.executor.execute(run["id"])
    assert await kit.status(run["id"]) == "completed"
    steps = await kit.steps(run["id"])
    assert [s["type"] for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0]["step_details"]["tool_calls"][0]["function"]["output"] == "18C"
    assert steps[0]["usage"] is not None


async def test_a_model_error_fails_the_run_with_its_code(kit: Any) -> None:
    run = await kit.new_run({"error": "rate_limit_exceeded", "message": "Slow down."})
    await kit.executor.execute(run["id"])
    row = await kit.row(run["id"])
    assert row.status == "failed"
    assert row.data["last_error"] == {"code": "rate_limit_exceeded", "message": "Slow down."}
    assert (await kit.event_names(run["id"]))[-2:] == ["thread.run.failed", "error"]


async def test_a_spent_completion_budget_ends_incomplete(kit: Any) -> None:
    run = await kit.new_run(
        {"text": " ".join(["word"] * 400), "chunks": 4},
        max_completion_tokens=256,
    )
    await kit.executor.execute(run["id"])
    row = await kit.row(run["id"])
    assert row.status == "incomplete"
    assert row.data["incomplete_details"] == {"reason": "max_completion_tokens"}
    assert row.data["usage"]["completion_tokens"] == 256
    [message] = await kit.messages(run["id"])
    assert message["status"] == "incomplete"


async def test_a_run_that_expired_in_the_queue_never_starts(kit: Any) -> None:
    run = await kit.new_run("never said")
    kit.clock.advance(kit.settings.run_expires_seconds)
    await kit.executor.execute(run["id"])
    row = await kit.row(run["id"])
    assert row.status == "expired"
    assert row.data["started_at"] is None
    assert await kit.messages(run["id"]) == []


async def test_only_a_queued_run_is_executed(kit: Any) -> None:
    run = await kit.new_run("hi")
    await kit.lifecycle.cancel(run["id"])
    await kit.executor.execute(run["id"])  # refused quietly
    assert await kit.status(run["id"]) == "cancelling"


async def test_cancelling_a_turn_finishes_the_cancel(kit: Any) -> None:
    run = await kit.new_run({"hang": True})
    turn = asyncio.create_task(kit.executor.execute(run["id"]))
    async for event in kit.bus.subscribe(run["id"]):
        if event.name == "thread.run.in_progress":
            break
    await kit.runs.cancel(kit.project, run["thread_id"], run["id"])
    assert await kit.status(run["id"]) == "cancelling"
    turn.cancel()  # what the queue's abort does
    await asyncio.gather(turn, return_exceptions=True)
    row = await kit.row(run["id"])
    assert row.status == "cancelled"
    assert row.lease_owner is None


async def test_an_aborted_turn_hands_its_run_back(kit: Any) -> None:
    run = await kit.new_run({"text": "slow", "delay": 30})
    turn = asyncio.create_task(kit.executor.execute(run["id"]))
    async for event in kit.bus.subscribe(run["id"]):
        if event.name == "thread.run.in_progress":
            break
    turn.cancel()  # a shutdown, say
    await asyncio.gather(turn, return_exceptions=True)
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner) == ("queued", None)
    assert await kit.messages(run["id"]) == []
