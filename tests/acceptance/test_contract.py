"""Where the server and OpenAI's spec disagreed, found by probing it as a client
would: cursors, integers, ``include[]``, nulls, ``param`` paths, the body's
encoding, optional fields that were required."""

from __future__ import annotations

import json
from typing import Any, Final

import httpx
import openai
import pytest

from tests.support.runs import (
    EMPTY_LIST,
    POLL_MS,
    http,
    new_assistant,
    scripted_thread,
    weather_call,
)

INCLUDE: Final = "step_details.tool_calls[*].file_search.results[*].content"


def _error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_an_empty_cursor_is_no_cursor(client: openai.OpenAI) -> None:
    made = client.beta.assistants.create(model="gpt-4o")
    for path in ("/assistants", "/files"):
        response = http(client).get(path, params={"after": "", "limit": 100})
        assert response.status_code == 200, response.text
    page = http(client).get("/assistants", params={"after": "", "before": ""}).json()
    assert page["data"][0]["id"] == made.id


def test_an_empty_list_has_null_first_and_last_ids(client: openai.OpenAI) -> None:
    # What OpenAI's service sent (the SDKs type them optional), not the spec's string.
    thread = client.beta.threads.create()
    page = http(client).get(f"/threads/{thread.id}/messages").json()
    assert page == EMPTY_LIST


def test_an_integer_may_be_written_with_a_zero_fraction(client: openai.OpenAI) -> None:
    body = {
        "model": "gpt-4o",
        "tools": [{"type": "file_search", "file_search": {"max_num_results": 5.0}}],
    }
    made = http(client).post("/assistants", json=body)
    assert made.status_code == 200, made.text
    assert made.json()["tools"][0]["file_search"]["max_num_results"] == 5
    thread_id = scripted_thread(client, "fine")
    runs = f"/threads/{thread_id}/runs"
    options = {
        "assistant_id": made.json()["id"],
        "max_completion_tokens": 256.0,
        "truncation_strategy": {"type": "last_messages", "last_messages": 3.0},
    }
    run = http(client).post(runs, json=options)
    assert run.status_code == 200, run.text
    assert run.json()["max_completion_tokens"] == 256
    assert run.json()["truncation_strategy"]["last_messages"] == 3
    client.beta.threads.runs.poll(run.json()["id"], thread_id=thread_id, poll_interval_ms=POLL_MS)
    error = _error(http(client).post(runs, json={**options, "max_completion_tokens": 256.5}))
    assert (error["param"], error["code"]) == ("max_completion_tokens", "invalid_type")


def test_include_values_are_checked(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, "ok")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, include=[INCLUDE], poll_interval_ms=POLL_MS
    )
    steps = f"/threads/{thread_id}/runs/{run.id}/steps"
    assert http(client).get(steps, params={"include[]": INCLUDE}).status_code == 200
    wrong = {"include[]": "step_details.everything"}
    for response in (
        http(client).get(steps, params=wrong),
        http(client).post(f"/threads/{thread_id}/runs", params=wrong, json={}),
    ):
        error = _error(response)
        assert (error["param"], error["code"]) == ("include[]", "invalid_value")
        assert error["message"] == (
            f"Invalid value: 'step_details.everything'. Supported values are: '{INCLUDE}'."
        )


@pytest.mark.parametrize("tool", ["file_search", "code_interpreter"])
def test_tool_resources_of_a_tool_may_not_be_null(client: openai.OpenAI, tool: str) -> None:
    thread = client.beta.threads.create()
    resources = {"tool_resources": {tool: None}}
    for method, path, body in (
        ("POST", "/assistants", {"model": "gpt-4o", **resources}),
        ("POST", "/threads", resources),
        ("POST", f"/threads/{thread.id}", resources),
    ):
        error = _error(http(client).request(method, path, json=body))
        assert (error["param"], error["code"]) == (f"tool_resources.{tool}", "invalid_type")
        assert error["message"] == (
            f"Invalid type for 'tool_resources.{tool}': expected an object, but got null instead."
        )
    assert http(client).post("/threads", json={"tool_resources": None}).status_code == 200


def test_a_tool_output_without_its_call_id(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    missing_run = f"/threads/{thread.id}/runs/run_nope/submit_tool_outputs"
    # Valid as the spec says: the run is looked for (and not found) first.
    _error(http(client).post(missing_run, json={"tool_outputs": [{"output": "x"}]}), 404)

    thread_id = scripted_thread(client, {"tool_calls": [weather_call("Oslo")]}, "done")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=new_assistant(client), poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"output": "cold"}]
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == (
        "tool_outputs[0].tool_call_id",
        "missing_required_parameter",
    )
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"metadata": {"": 1}}, 'metadata[""]'),
        ({"metadata": {"a.b": None}}, 'metadata["a.b"]'),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "[0]": 1}]}]},
            'messages[0].content[0]["[0]"]',
        ),
        ({"metadata": {"ok": "x\u0000"}}, "metadata.ok"),
        ({"metadata": {"": "x\u0000"}}, 'metadata[""]'),
    ],
)
def test_param_paths_are_well_formed(client: openai.OpenAI, body: Any, param: str) -> None:
    error = _error(http(client).post("/threads", json=body))
    assert error["param"] == param


def test_a_body_that_is_not_utf8_is_refused(client: openai.OpenAI) -> None:
    text = json.dumps({"model": "gpt-4o", "name": "ü"})
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        response = http(client).post(
            "/assistants",
            content=text.encode(encoding),
            headers={"Content-Type": "application/json"},
        )
        error = _error(response)
        assert error["message"].startswith("We could not parse the JSON body of your request.")
    assert http(client).post("/assistants", content=text.encode()).status_code == 200


def test_a_field_named_like_its_objects_type_stays_in_the_path(client: openai.OpenAI) -> None:
    body = {"assistant_id": "asst_x", "tool_choice": {"type": "function", "function": {"name": ""}}}
    error = _error(http(client).post("/threads/runs", json=body))
    assert (error["param"], error["code"]) == ("tool_choice.function.name", "empty_string")
