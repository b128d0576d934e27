"""Shared pieces of the run acceptance tests: an assistant with function tools,
threads whose user message scripts the model (``threadline.models.scripted``),
fast polling, raw HTTP, and an SSE reader that checks the framing.

Every object fetched through the ``*_json`` helpers is checked against the
spec (``tests.support.spec_schema``) as it comes off the wire.
"""

from __future__ import annotations

import atexit
import functools
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from openai.types.beta.threads import Run

from tests.support.spec_schema import (
    assert_event,
    assert_message,
    assert_run,
    assert_schema,
    assert_step,
)
from threadline.models.scripted import directive

POLL_MS = 20
TERMINAL = {"cancelled", "failed", "completed", "incomplete", "expired"}
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
# An empty list as OpenAI's service sent it (the SDKs type the ids optional),
# not the spec's strings.
EMPTY_LIST: dict[str, Any] = {
    "object": "list",
    "data": [],
    "first_id": None,
    "last_id": None,
    "has_more": False,
}
CLOCK: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def weather_call(city: str) -> dict[str, Any]:
    return {"name": "get_weather", "arguments": {"city": city}}


def new_assistant(client: openai.OpenAI, **options: Any) -> str:
    options.setdefault("tools", [WEATHER, CLOCK])
    return client.beta.assistants.create(model="gpt-4o", **options).id


def scripted_thread(client: openai.OpenAI, *steps: Any) -> str:
    """A new thread whose only message scripts the next model calls."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": directive(*steps)}])
    return thread.id


def say(client: openai.OpenAI, thread_id: str, *steps: Any) -> None:
    client.beta.threads.messages.create(thread_id, role="user", content=directive(*steps))


def wait_for(
    client: openai.OpenAI, thread_id: str, run_id: str, *statuses: str, timeout: float = 10.0
) -> Run:
    """Poll (every few ms) until the run has one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in statuses:
            return run
        assert run.status not in TERMINAL, f"run ended {run.status}, waiting for {statuses}"
        assert time.monotonic() < deadline, f"run still {run.status}, waiting for {statuses}"
        time.sleep(0.01)


def poll(client: openai.OpenAI, thread_id: str, run_id: str) -> Run:
    return client.beta.threads.runs.poll(run_id, thread_id=thread_id, poll_interval_ms=POLL_MS)


@functools.cache
def _http(base_url: str, api_key: str) -> httpx.Client:
    # Building an httpx client costs ~0.1 s (its SSL context): build one per server.
    raw = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0
    )
    atexit.register(raw.close)
    return raw


def http(client: openai.OpenAI) -> httpx.Client:
    """A plain HTTP client for the same server and project as ``client`` (shared:
    do not close it)."""
    return _http(str(client.base_url).rstrip("/"), client.api_key)


def get_json(client: openai.OpenAI, path: str, **params: Any) -> tuple[Any, httpx.Headers]:
    response = http(client).get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json(), response.headers


def run_json(client: openai.OpenAI, thread_id: str, run_id: str) -> dict[str, Any]:
    """The run as the wire has it, checked against the spec and the seeds; the
    ``openai-poll-after-ms`` header comes exactly with non-terminal runs."""
    run, headers = get_json(client, f"/threads/{thread_id}/runs/{run_id}")
    assert_run(run)
    if run["status"] in TERMINAL:
        assert "openai-poll-after-ms" not in headers
    else:
        assert int(headers["openai-poll-after-ms"]) >= 0
    return dict(run)


def steps_json(client: openai.OpenAI, thread_id: str, run_id: str) -> list[dict[str, Any]]:
    """The run's steps, oldest first, each checked against the spec."""
    page, _ = get_json(client, f"/threads/{thread_id}/runs/{run_id}/steps", order="asc")
    assert_list(page, "ListRunStepsResponse")
    for step in page["data"]:
        assert_step(step)
        assert step["run_id"] == run_id
        assert step["thread_id"] == thread_id
    return list(page["data"])


def run_messages_json(client: openai.OpenAI, thread_id: str, run_id: str) -> list[dict[str, Any]]:
    """The messages the run made (``?run_id=``), oldest first, checked."""
    page, _ = get_json(client, f"/threads/{thread_id}/messages", order="asc", run_id=run_id)
    assert_list(page, "ListMessagesResponse")
    for message in page["data"]:
        assert_message(message)
        assert message["run_id"] == run_id
        assert message["role"] == "assistant"
    return list(page["data"])


def assert_list(page: dict[str, Any], name: str) -> None:
    """A list envelope as the spec has it. The spec types ``first_id``/``last_id``
    as strings; an empty list has neither, and (as OpenAI did) shows ``null``."""
    if page["data"]:
        assert_schema(page, name)
    else:
        assert page == EMPTY_LIST


def message_text(message: dict[str, Any]) -> str:
    return "".join(p["text"]["value"] for p in message["content"] if p["type"] == "text")


def check_times(run: dict[str, Any]) -> None:
    """Run-level timestamps are set exactly when the status says, and in order."""
    status = run["status"]
    ends = {"cancelled": "cancelled_at", "failed": "failed_at", "completed": "completed_at"}
    for status_, key in ends.items():
        assert (run[key] is not None) == (status == status_), (key, run)
    if status in TERMINAL:
        assert run["expires_at"] is None
    else:
        assert run["expires_at"] is not None
        assert run["expires_at"] > run["created_at"]
    if status in {"in_progress", "requires_action", "completed", "incomplete"}:
        assert run["started_at"] is not None
    if run["started_at"] is not None:
        assert run["created_at"] <= run["started_at"]
    for key in ends.values():
        if run[key] is not None:
            assert run[key] >= run["created_at"]
            if run["started_at"] is not None:
                assert run[key] >= run["started_at"]
    assert (run["incomplete_details"] is not None) == (status == "incomplete")
    assert (run["last_error"] is not None) == (status == "failed")
    assert (run["required_action"] is not None) == (status == "requires_action")


# --------------------------------------------------------------------------- SSE


@dataclass(frozen=True)
class SSE:
    id: int | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def iter_sse(lines: Iterable[str]) -> Iterator[SSE]:
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if fields:
                seq = fields.get("id")
                yield SSE(int(seq) if seq is not None else None, fields["event"], fields["data"])
                fields = {}
            continue
        name, _, value = line.partition(":")
        assert name in {"id", "event", "data"}, f"unexpected SSE line {line!r}"
        assert name not in fields, f"repeated {name!r} in one frame"
        fields[name] = value[1:] if value.startswith(" ") else value
    assert not fields, "stream ended inside a frame"


def check_stream(events: list[SSE], *, after: int = 0) -> list[SSE]:
    """A finished stream: strictly increasing ``id:`` above ``after`` on every
    event, each payload valid for its event name, then exactly one
    ``event: done`` / ``data: [DONE]`` with no id. Returns the events before it."""
    assert events, "empty stream"
    *body, last = events
    assert (last.event, last.data, last.id) == ("done", "[DONE]", None), last
    previous = after
    for event in body:
        assert event.event != "done"
        assert event.id is not None, event
        assert event.id > previous, (event.id, previous, event.event)
        previous = event.id
        assert_event(event.event, event.json())
    return body


def stream_post(client: openai.OpenAI, path: str, body: dict[str, Any]) -> list[SSE]:
    """POST with ``stream: true`` and read the whole SSE response."""
    with http(client).stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(iter_sse(response.iter_lines()))


def stream_get(client: openai.OpenAI, path: str, **headers: str) -> list[SSE]:
    with http(client).stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        return list(iter_sse(response.iter_lines()))


def names(events: Iterable[SSE]) -> list[str]:
    return [e.event for e in events]
