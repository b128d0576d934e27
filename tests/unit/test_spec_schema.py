"""The spec validator the acceptance tests rely on (``tests.support.spec_schema``):
it must read the three spellings of ``nullable`` and still refuse bad objects."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scripts.derive_spec_schemas import normalise
from tests.support.spec_schema import assert_event, assert_run, schema_errors

RUN: dict[str, Any] = {
    "id": "run_1",
    "object": "thread.run",
    "created_at": 1_700_000_000,
    "thread_id": "thread_1",
    "assistant_id": "asst_1",
    "status": "queued",
    "required_action": None,
    "last_error": None,
    "expires_at": 1_700_000_600,
    "started_at": None,
    "cancelled_at": None,
    "failed_at": None,
    "completed_at": None,
    "incomplete_details": None,
    "model": "gpt-4o",
    "instructions": "",
    "tools": [],
    "metadata": {},
    "usage": None,
    "temperature": 1.0,
    "top_p": 1.0,
    "max_prompt_tokens": None,
    "max_completion_tokens": None,
    "truncation_strategy": {"type": "auto", "last_messages": None},
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "response_format": "auto",
}


def test_the_three_nullable_spellings_mean_or_null() -> None:
    ref = {"$ref": "#/components/schemas/X"}
    null = {"type": "null"}
    assert normalise({"type": "string", "nullable": True}) == {"anyOf": [{"type": "string"}, null]}
    assert normalise({**ref, "nullable": True}) == {"anyOf": [ref, null]}
    assert normalise({"allOf": [ref, {"nullable": True}]}) == {"anyOf": [{"allOf": [ref]}, null]}
    assert normalise({"type": "string", "nullable": False}) == {"type": "string"}


def test_a_good_run_passes() -> None:
    assert_run(RUN)
    assert_event("thread.run.created", RUN)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("created_at", "1700000000"),  # a string, not an integer
        ("status", "Queued"),
        ("object", "run"),
        ("truncation_strategy", {"type": "sometimes"}),
        ("required_action", {"type": "submit_tool_outputs"}),
    ],
)
def test_a_bad_field_fails(key: str, value: Any) -> None:
    run = copy.deepcopy(RUN)
    run[key] = value
    assert schema_errors(run, "RunObject")


def test_a_missing_key_fails_even_when_null_is_allowed() -> None:
    run = copy.deepcopy(RUN)
    del run["last_error"]
    assert schema_errors(run, "RunObject")
    with pytest.raises(AssertionError):
        assert_run(run)


def test_seed_rules_beyond_the_schema() -> None:
    for key, value in (("created_at", 2**31), ("usage", {"prompt_tokens": 1})):
        run = copy.deepcopy(RUN)
        run[key] = value
        with pytest.raises(AssertionError):
            assert_run(run)
    with pytest.raises(AssertionError):
        assert_event("thread.run.completed", RUN)  # the event names another status
    with pytest.raises(AssertionError):
        assert_event("thread.run.finished", RUN)  # not an event of the spec
