"""Function calling through the official SDK: ``requires_action`` and its tool
calls, submitting outputs (and every way of getting that wrong), the tool-call
step before and after, and usage summed over every model call of the run."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from openai.types.beta.threads import Run

from tests.support.runs import (
    POLL_MS,
    check_times,
    message_text,
    new_assistant,
    poll,
    run_json,
    run_messages_json,
    scripted_thread,
    steps_json,
    weather_call,
)


def _waiting(client: openai.OpenAI, *steps: Any, **options: Any) -> Run:
    """A run on a new thread, polled until it stops (normally requires_action)."""
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, *steps)
    return client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, poll_interval_ms=POLL_MS, **options
    )


def _call_ids(run: Run) -> list[str]:
    assert run.status == "requires_action"
    assert run.required_action is not None
    assert run.required_action.type == "submit_tool_outputs"
    return [c.id for c in run.required_action.submit_tool_outputs.tool_calls]


def test_parallel_calls_then_outputs_then_completed(client: openai.OpenAI) -> None:
    run = _waiting(
        client,
        {"tool_calls": [weather_call("Paris"), weather_call("Rome"), {"name": "get_time"}]},
        "Sunny in Paris, rainy in Rome.",
    )
    thread_id = run.thread_id
    waiting = run_json(client, thread_id, run.id)
    check_times(waiting)
    assert waiting["usage"] is None
    calls = waiting["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [(c["type"], c["function"]["name"]) for c in calls] == [
        ("function", "get_weather"),
        ("function", "get_weather"),
        ("function", "get_time"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "Rome"},
        {},
    ]
    ids = [c["id"] for c in calls]
    assert len(set(ids)) == 3
    assert all(ids)

    (step,) = steps_json(client, thread_id, run.id)
    assert step["type"] == "tool_calls"
    assert step["status"] == "in_progress"
    assert step["usage"] is None
    assert step["completed_at"] is None
    details = step["step_details"]["tool_calls"]
    assert [c["id"] for c in details] == ids
    assert [c["function"]["output"] for c in details] == [None, None, None]
    assert [c["function"]["arguments"] for c in details] == [
        c["function"]["arguments"] for c in calls
    ]

    outputs = [{"tool_call_id": i, "output": f"out {n}"} for n, i in enumerate(reversed(ids))]
    resumed = client.beta.threads.runs.submit_tool_outputs(
        run.id,
        thread_id=thread_id,
        tool_outputs=outputs,  # type: ignore[arg-type]
    )
    assert resumed.status == "queued"
    assert resumed.required_action is None
    assert resumed.started_at == waiting["started_at"]
    done = poll(client, thread_id, run.id)
    assert done.status == "completed"
    check_times(run_json(client, thread_id, run.id))

    tool_step, message_step = steps_json(client, thread_id, run.id)
    assert tool_step["id"] == step["id"]
    assert tool_step["status"] == "completed"
    assert tool_step["completed_at"] is not None
    assert tool_step["usage"] is not None
    by_id = {c["id"]: c["function"]["output"] for c in tool_step["step_details"]["tool_calls"]}
    assert by_id == {o["tool_call_id"]: o["output"] for o in outputs}
    assert message_step["type"] == "message_creation"
    assert message_step["status"] == "completed"
    (message,) = run_messages_json(client, thread_id, run.id)
    assert message_text(message) == "Sunny in Paris, rainy in Rome."
    assert message_step["step_details"]["message_creation"]["message_id"] == message["id"]


def test_parallel_tool_calls_false_gives_one_call_at_most(client: openai.OpenAI) -> None:
    run = _waiting(
        client,
        {"tool_calls": [weather_call("Paris"), weather_call("Rome")]},
        parallel_tool_calls=False,
    )
    assert run.parallel_tool_calls is False
    assert len(_call_ids(run)) == 1
    (step,) = steps_json(client, run.thread_id, run.id)
    assert len(step["step_details"]["tool_calls"]) == 1
    client.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)


def test_wrong_missing_or_duplicate_outputs_are_refused(client: openai.OpenAI) -> None:
    run = _waiting(client, {"tool_calls": [weather_call("Paris"), weather_call("Rome")]}, "ok")
    first, second = _call_ids(run)
    submit = client.beta.threads.runs.submit_tool_outputs
    wrong: list[list[dict[str, str]]] = [
        [{"tool_call_id": first, "output": "a"}],  # one missing
        [{"tool_call_id": first, "output": "a"}, {"tool_call_id": "call_nope", "output": "b"}],
        [
            {"tool_call_id": first, "output": "a"},
            {"tool_call_id": second, "output": "b"},
            {"tool_call_id": "call_extra", "output": "c"},
        ],
        [{"tool_call_id": first, "output": "a"}, {"tool_call_id": first, "output": "a"}],
        [],
    ]
    for outputs in wrong:
        with pytest.raises(openai.BadRequestError) as refused:
            submit(run.id, thread_id=run.thread_id, tool_outputs=outputs)  # type: ignore[arg-type]
        assert refused.value.status_code == 400, outputs
        # Nothing moved: the run still waits for the same calls.
        still = run_json(client, run.thread_id, run.id)
        assert still["status"] == "requires_action"
        (step,) = steps_json(client, run.thread_id, run.id)
        assert step["status"] == "in_progress"

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=[{"tool_call_id": second, "output": "b"}, {"tool_call_id": first}],
        poll_interval_ms=POLL_MS,
    )
    assert done.status == "completed"
    with pytest.raises(openai.BadRequestError):  # no longer waiting
        submit(
            run.id,
            thread_id=run.thread_id,
            tool_outputs=[{"tool_call_id": first, "output": "a"}],
        )
    (tool_step, _) = steps_json(client, run.thread_id, run.id)
    stored = [c["function"]["output"] for c in tool_step["step_details"]["tool_calls"]]
    assert stored == ["", "b"]


def test_outputs_for_a_run_that_never_waited_are_refused(client: openai.OpenAI) -> None:
    run = _waiting(client, "no tools needed")
    assert run.status == "completed"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=run.thread_id, tool_outputs=[{"tool_call_id": "call_1", "output": ""}]
        )


def test_usage_is_the_sum_of_every_model_call(client: openai.OpenAI) -> None:
    tokens = [(100, 10), (120, 12), (150, 15)]
    run = _waiting(
        client,
        {"tool_calls": [weather_call("Paris")], "prompt_tokens": 100, "completion_tokens": 10},
        {"tool_calls": [{"name": "get_time"}], "prompt_tokens": 120, "completion_tokens": 12},
        {"text": "It is noon in Paris.", "prompt_tokens": 150, "completion_tokens": 15},
    )
    thread_id = run.thread_id
    for round_ in range(2):
        waiting = run_json(client, thread_id, run.id)
        assert waiting["status"] == "requires_action"
        assert waiting["usage"] is None
        steps = steps_json(client, thread_id, run.id)
        assert len(steps) == round_ + 1
        assert steps[-1]["usage"] is None
        (call_id,) = _call_ids(run)
        run = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=thread_id,
            tool_outputs=[{"tool_call_id": call_id, "output": f"round {round_}"}],
            poll_interval_ms=POLL_MS,
        )
    assert run.status == "completed"
    done = run_json(client, thread_id, run.id)
    prompt, completion = (sum(t[i] for t in tokens) for i in (0, 1))
    assert done["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    steps = steps_json(client, thread_id, run.id)
    assert [s["type"] for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    assert [(s["usage"]["prompt_tokens"], s["usage"]["completion_tokens"]) for s in steps] == (
        tokens
    )
    assert all(s["usage"]["total_tokens"] == sum(t) for s, t in zip(steps, tokens, strict=True))
    (message,) = run_messages_json(client, thread_id, run.id)
    assert message_text(message) == "It is noon in Paris."


def test_racing_submissions_resume_the_run_once(client: openai.OpenAI) -> None:
    run = _waiting(client, {"tool_calls": [weather_call("Kyiv")]}, "ok")
    (call_id,) = _call_ids(run)

    def submit(n: int) -> str:
        try:
            return client.beta.threads.runs.submit_tool_outputs(
                run.id,
                thread_id=run.thread_id,
                tool_outputs=[{"tool_call_id": call_id, "output": str(n)}],
            ).status
        except openai.BadRequestError:
            return "refused"

    with ThreadPoolExecutor(6) as pool:
        answers = sorted(pool.map(submit, range(6)))
    assert answers == ["queued"] + ["refused"] * 5
    assert poll(client, run.thread_id, run.id).status == "completed"
    tool_step, _ = steps_json(client, run.thread_id, run.id)
    (call,) = tool_step["step_details"]["tool_calls"]
    assert call["function"]["output"] in {str(n) for n in range(6)}


def test_token_budgets_count_across_model_calls(client: openai.OpenAI) -> None:
    budgets = (
        ("max_completion_tokens", {"completion_tokens": 256}),
        ("max_prompt_tokens", {"prompt_tokens": 250}),
    )
    for budget, used in budgets:
        run = _waiting(
            client,
            {"tool_calls": [weather_call("Bern")], **used},
            "never said",
            **{budget: 256},
        )
        (call_id,) = _call_ids(run)
        run = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=run.thread_id,
            tool_outputs=[{"tool_call_id": call_id, "output": "mild"}],
            poll_interval_ms=POLL_MS,
        )
        assert run.status == "incomplete", budget
        assert run.incomplete_details is not None
        assert run.incomplete_details.reason == budget
        stored = run_json(client, run.thread_id, run.id)
        check_times(stored)
        assert stored["usage"]["prompt_tokens" if "prompt" in budget else "completion_tokens"] == (
            next(iter(used.values()))
        )
        assert run_messages_json(client, run.thread_id, run.id) == []
