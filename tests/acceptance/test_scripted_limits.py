"""The scripted model's bounds on a directive's numbers, through the SDK.

A number out of range (a token count past 1,000,000,000, ``chunks`` past 1,000,000,
a delay past an hour) fails the run with ``invalid_prompt`` naming the field, rather
than overflowing where the run's usage is summed and stored.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from threadline.models.scripted import MAX_TOKENS
from threadline.testing import directive

POLL_MS = 20


def run_directive(client: openai.OpenAI, step: dict[str, Any]) -> Any:
    assistant = client.beta.assistants.create(model="gpt-4o").id
    thread = client.beta.threads.create(messages=[{"role": "user", "content": directive(step)}])
    return client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant, poll_interval_ms=POLL_MS
    )


@pytest.mark.parametrize(
    ("field", "step"),
    [
        ("prompt_tokens", {"text": "hi", "prompt_tokens": 99999999999999999999}),
        ("completion_tokens", {"text": "hi", "completion_tokens": MAX_TOKENS + 1}),
        ("prompt_tokens", {"tool_calls": [{"name": "f"}], "prompt_tokens": 2**63}),
        ("chunks", {"text": "hi", "chunks": 10**7}),
        ("delay", {"text": "hi", "delay": 10**20}),
        ("token_delay", {"text": "hi", "token_delay": 3601}),
    ],
)
def test_an_out_of_range_number_fails_the_run_naming_it(
    client: openai.OpenAI, field: str, step: dict[str, Any]
) -> None:
    run = run_directive(client, step)
    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.code == "invalid_prompt"
    assert f"'{field}'" in run.last_error.message
    assert "Invalid scripted directive" in run.last_error.message


def test_a_non_finite_delay_is_refused(client: openai.OpenAI) -> None:
    content = json.dumps({"scripted": [{"text": "hi", "delay": float("nan")}]})
    assert "NaN" in content  # what Python's json writes, and reads back
    assistant = client.beta.assistants.create(model="gpt-4o").id
    thread = client.beta.threads.create(messages=[{"role": "user", "content": content}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant, poll_interval_ms=POLL_MS
    )
    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.code == "invalid_prompt"
    assert "'delay'" in run.last_error.message


def test_the_largest_token_counts_are_kept_exactly(client: openai.OpenAI) -> None:
    run = run_directive(
        client, {"text": "hi", "prompt_tokens": MAX_TOKENS, "completion_tokens": MAX_TOKENS}
    )
    assert run.status == "completed"
    assert run.usage is not None
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (MAX_TOKENS, MAX_TOKENS)
    assert run.usage.total_tokens == 2 * MAX_TOKENS
