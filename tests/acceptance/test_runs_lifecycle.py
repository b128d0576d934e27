"""The run's statuses through the official SDK: queued → in_progress → completed,
incomplete (both token budgets), failed (every error code), cancelling →
cancelled from in_progress and requires_action; its steps and its message."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.support.runs import (
    POLL_MS,
    check_times,
    get_json,
    message_text,
    new_assistant,
    poll,
    run_json,
    run_messages_json,
    say,
    scripted_thread,
    steps_json,
    wait_for,
    weather_call,
)
from tests.support.spec_schema import assert_run, assert_schema

WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit " * 60  # ~480 tokens


def _wait_for_message(client: openai.OpenAI, thread_id: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while not (found := run_messages_json(client, thread_id, run_id)):
        assert time.monotonic() < deadline, "the run made no message"
        time.sleep(0.01)
    return found[0]


def test_queued_then_in_progress_then_completed(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(
        client,
        {
            "text": "Hello from the model",
            "chunks": 3,
            "token_delay": 1.0,  # 2 s while the text streams: room for a cold start
            "prompt_tokens": 11,
            "completion_tokens": 7,
        },
    )
    raw = client.beta.threads.runs.with_raw_response.create(thread_id, assistant_id=assistant)
    created = raw.http_response.json()
    run_id = created["id"]
    assert created["status"] == "queued"
    assert created["started_at"] is None
    assert created["usage"] is None
    assert created["assistant_id"] == assistant
    assert created["thread_id"] == thread_id
    assert created["model"] == "gpt-4o"
    assert created["parallel_tool_calls"] is True
    check_times(created)

    # While the text streams: run, step and message are all in progress.
    message = _wait_for_message(client, thread_id, run_id)
    running = run_json(client, thread_id, run_id)
    assert running["status"] == "in_progress"
    check_times(running)
    assert running["usage"] is None
    assert running["expires_at"] == created["expires_at"]
    assert message["status"] == "in_progress"
    assert message["completed_at"] is None
    assert message["incomplete_at"] is None
    assert message["assistant_id"] == assistant
    assert message["run_id"] == run_id
    (step,) = steps_json(client, thread_id, run_id)
    assert step["type"] == "message_creation"
    assert step["status"] == "in_progress"
    assert step["usage"] is None
    assert step["completed_at"] is None
    assert step["step_details"]["message_creation"]["message_id"] == message["id"]

    assert poll(client, thread_id, run_id).status == "completed"
    done = run_json(client, thread_id, run_id)
    check_times(done)
    assert done["started_at"] == running["started_at"]
    assert done["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    (step,) = steps_json(client, thread_id, run_id)
    assert step["status"] == "completed"
    assert step["completed_at"] is not None
    assert step["usage"] == done["usage"]
    (message,) = run_messages_json(client, thread_id, run_id)
    assert message["status"] == "completed"
    assert message["completed_at"] is not None
    assert message["incomplete_details"] is None
    assert message["incomplete_at"] is None
    assert message_text(message) == "Hello from the model"
    everything = client.beta.threads.messages.list(thread_id, order="asc").data
    assert [m.role for m in everything] == ["user", "assistant"]
    assert everything[0].run_id is None


@pytest.mark.parametrize("code", ["server_error", "rate_limit_exceeded", "invalid_prompt"])
def test_model_error_fails_the_run(client: openai.OpenAI, code: str) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"error": code, "message": f"scripted {code}"})
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, poll_interval_ms=POLL_MS
    )
    assert run.status == "failed"
    assert run.last_error is not None
    assert (run.last_error.code, run.last_error.message) == (code, f"scripted {code}")
    failed = run_json(client, thread_id, run.id)
    check_times(failed)
    assert failed["failed_at"] >= failed["started_at"]
    assert failed["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert run_messages_json(client, thread_id, run.id) == []


def test_failure_after_tool_outputs_keeps_the_finished_steps(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(
        client, {"tool_calls": [weather_call("Oslo")]}, {"error": "server_error"}
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "cold"}],
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.code == "server_error"
    check_times(run_json(client, thread_id, run.id))
    (step,) = steps_json(client, thread_id, run.id)
    assert step["status"] == "completed"
    assert step["step_details"]["tool_calls"][0]["function"]["output"] == "cold"


def test_max_completion_tokens_makes_it_incomplete(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"text": WORDS})
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant,
        max_completion_tokens=256,
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    stored = run_json(client, thread_id, run.id)
    check_times(stored)
    assert stored["usage"]["completion_tokens"] == 256
    (message,) = run_messages_json(client, thread_id, run.id)
    assert message["status"] == "incomplete"
    assert message["incomplete_at"] is not None
    assert message["completed_at"] is None
    assert message["incomplete_details"] == {"reason": "max_tokens"}
    assert WORDS.startswith(message_text(message))
    assert len(message_text(message)) < len(WORDS)
    (step,) = steps_json(client, thread_id, run.id)
    assert step["usage"] == stored["usage"]


@pytest.mark.parametrize("budget", [127_990, 128_000, 200_000])
def test_a_completion_budget_larger_than_the_context_is_for_the_whole_run(
    client: openai.OpenAI, budget: int
) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, "short answer")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant,
        max_completion_tokens=budget,
        poll_interval_ms=POLL_MS,
    )
    assert (run.status, run.last_error) == ("completed", None)
    (message,) = run_messages_json(client, thread_id, run.id)
    assert message_text(message) == "short answer"


def test_a_huge_message_over_max_prompt_tokens_makes_it_incomplete(
    client: openai.OpenAI,
) -> None:
    assistant = new_assistant(client)
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": WORDS}]).id
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, max_prompt_tokens=256, poll_interval_ms=POLL_MS
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_prompt_tokens"
    check_times(run_json(client, thread_id, run.id))
    assert run_messages_json(client, thread_id, run.id) == []


def test_last_messages_is_kept_whole_within_max_prompt_tokens(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    filler = [{"role": "user", "content": WORDS[:600]} for _ in range(4)]
    thread_id = client.beta.threads.create(messages=filler).id  # type: ignore[arg-type]
    say(client, thread_id, "short answer")
    budget: dict[str, Any] = {"max_prompt_tokens": 256, "poll_interval_ms": POLL_MS}

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant,
        truncation_strategy={"type": "last_messages", "last_messages": 3},
        **budget,
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_prompt_tokens"
    assert run.truncation_strategy is not None
    assert run.truncation_strategy.last_messages == 3

    for strategy in ({"type": "last_messages", "last_messages": 1}, {"type": "auto"}):
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread_id,
            assistant_id=assistant,
            truncation_strategy=strategy,  # type: ignore[arg-type]
            **budget,
        )
        assert run.status == "completed", strategy
        assert run.usage is not None
        assert run.usage.prompt_tokens <= 256
        say(client, thread_id, "short answer")


def test_cancel_in_progress_stops_the_model_call(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"hang": True})
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant)
    wait_for(client, thread_id, run.id, "in_progress")
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert cancelling.status == "cancelling"
    assert poll(client, thread_id, run.id).status == "cancelled"
    cancelled = run_json(client, thread_id, run.id)
    check_times(cancelled)
    assert cancelled["cancelled_at"] >= cancelled["started_at"]
    assert cancelled["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    # The hanging call is gone: the thread takes a new run, which completes.
    say(client, thread_id, "after the cancel")
    after = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, poll_interval_ms=POLL_MS
    )
    assert after.status == "completed"


def test_cancel_while_text_streams_leaves_the_message_incomplete(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"text": "one two three four five", "token_delay": 0.3})
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant)
    _wait_for_message(client, thread_id, run.id)
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert poll(client, thread_id, run.id).status == "cancelled"
    check_times(run_json(client, thread_id, run.id))
    (message,) = run_messages_json(client, thread_id, run.id)
    assert message["status"] == "incomplete"
    assert message["incomplete_at"] is not None
    assert message["incomplete_details"] == {"reason": "run_cancelled"}
    (step,) = steps_json(client, thread_id, run.id)
    assert step["status"] == "cancelled"
    assert step["cancelled_at"] is not None


def test_cancel_requires_action(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"tool_calls": [weather_call("Lima")]})
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action"
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert cancelling.status == "cancelling"
    cancelled = run_json(client, thread_id, poll(client, thread_id, run.id).id)
    assert cancelled["status"] == "cancelled"
    check_times(cancelled)
    (step,) = steps_json(client, thread_id, run.id)
    assert step["type"] == "tool_calls"
    assert step["status"] == "cancelled"
    assert step["step_details"]["tool_calls"][0]["function"]["output"] is None
    assert step["usage"] == cancelled["usage"]  # the call had finished: it counts
    assert step["usage"]["total_tokens"] > 0
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "call_x", "output": ""}]
        )


def test_sdk_helpers_list_retrieve_and_update(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant,
        thread={"messages": [{"role": "user", "content": "hello"}]},
        metadata={"job": "1"},
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "completed"
    assert run.metadata == {"job": "1"}
    thread_id = run.thread_id
    (message,) = client.beta.threads.messages.list(thread_id, run_id=run.id).data
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "You said: hello"

    ids = [run.id]
    for n in range(2, 5):
        say(client, thread_id, f"turn {n}")
        more = client.beta.threads.runs.create_and_poll(
            thread_id=thread_id, assistant_id=assistant, poll_interval_ms=POLL_MS
        )
        assert more.status == "completed"
        ids.append(more.id)
    first = client.beta.threads.runs.list(thread_id, limit=3)
    assert [r.id for r in first.data] == ids[::-1][:3]
    assert first.has_more
    assert [r.id for r in first.get_next_page().data] == ids[::-1][3:]
    assert [r.id for r in client.beta.threads.runs.list(thread_id, limit=2)] == ids[::-1]
    assert [r.id for r in client.beta.threads.runs.list(thread_id, order="asc")] == ids
    listed, _ = get_json(client, f"/threads/{thread_id}/runs", limit=2, order="asc", before=ids[3])
    assert_schema(listed, "ListRunsResponse")
    assert [r["id"] for r in listed["data"]] == ids[1:3]
    assert (listed["first_id"], listed["last_id"], listed["has_more"]) == (ids[1], ids[2], True)
    for listed_run in listed["data"]:
        assert_run(listed_run)
    page = client.beta.threads.runs.list(thread_id, after=ids[1], order="asc")
    assert [r.id for r in page.data] == ids[2:]
    assert not page.has_more

    updated = client.beta.threads.runs.update(run.id, thread_id=thread_id, metadata={"job": "2"})
    assert updated.metadata == {"job": "2"}
    assert updated.status == "completed"
    assert run_json(client, thread_id, run.id)["metadata"] == {"job": "2"}

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id)
    (step,) = steps.data
    got = client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread_id, run_id=run.id)
    assert got.id == step.id
    assert got.step_details.type == "message_creation"
    assert got.usage is not None
    assert run.usage is not None
    assert got.usage.total_tokens == run.usage.total_tokens
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve("run_missing", thread_id=thread_id)
