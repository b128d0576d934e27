"""Run streams: the SSE framing and event order the spec gives, tool-call deltas,
failures, resuming with ``Last-Event-ID``, clients that go away; and the SDK's
streaming helpers (``runs.stream``, ``submit_tool_outputs_stream``,
``create_and_run_stream``) with an ``AssistantEventHandler``."""

from __future__ import annotations

import json
from typing import Any

import openai
from openai.lib.streaming import AssistantEventHandler
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Text, TextDelta

from tests.support.runs import (
    SSE,
    check_stream,
    http,
    iter_sse,
    message_text,
    names,
    new_assistant,
    poll,
    run_json,
    run_messages_json,
    scripted_thread,
    stream_get,
    stream_post,
    wait_for,
    weather_call,
)

OPENING = ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
MESSAGE_OPEN = [
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
]
MESSAGE_CLOSE = ["thread.message.completed", "thread.run.step.completed"]


def _text_events(deltas: int) -> list[str]:
    return [*MESSAGE_OPEN, *["thread.message.delta"] * deltas, *MESSAGE_CLOSE]


def _merged(event_names: list[str]) -> list[str]:
    """The names with each run of message deltas as one: pieces the model sent
    together may go out as one delta (the turn reads the model's stream ahead)."""
    return [
        name
        for i, name in enumerate(event_names)
        if name != "thread.message.delta" or event_names[i - 1] != name
    ]


def _deltas_text(events: list[SSE]) -> str:
    return "".join(
        part["text"]["value"]
        for e in events
        if e.event == "thread.message.delta"
        for part in e.json()["delta"]["content"]
    )


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.deltas: list[str] = []
        self.texts: list[str] = []

    def on_event(self, event: AssistantStreamEvent) -> None:
        self.events.append(event.event)

    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.deltas.append(delta.value or "")

    def on_text_done(self, text: Text) -> None:
        self.texts.append(text.value)


def test_create_run_stream_order_and_framing(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    text = "Streams arrive in order, piece by piece."
    thread_id = scripted_thread(client, {"text": text, "chunks": 4, "token_delay": 0.01})
    events = check_stream(
        stream_post(client, f"/threads/{thread_id}/runs", {"assistant_id": assistant})
    )
    assert names(events) == [*OPENING, *_text_events(4), "thread.run.completed"]
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    run_id = events[0].json()["id"]
    assert {
        e.json()["id"]
        for e in events
        if e.event.startswith("thread.run.") and "step" not in e.event
    } == {run_id}
    message = events[-3].json()
    assert message_text(message) == text == _deltas_text(events)
    assert {e.json()["id"] for e in events if e.event.startswith("thread.message")} == {
        message["id"]
    }
    step = events[-2].json()
    assert step["step_details"]["message_creation"]["message_id"] == message["id"]
    stored = run_json(client, thread_id, run_id)
    assert stored["status"] == "completed"
    assert stored["usage"] == events[-1].json()["usage"]
    (kept,) = run_messages_json(client, thread_id, run_id)
    assert message_text(kept) == text


def test_create_thread_and_run_stream_starts_with_the_thread(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    body = {"assistant_id": assistant, "thread": {"messages": [{"role": "user", "content": "hi"}]}}
    events = check_stream(stream_post(client, "/threads/runs", body))
    assert _merged(names(events)) == [
        "thread.created",
        *OPENING,
        *_text_events(1),
        "thread.run.completed",
    ]
    thread = events[0].json()
    assert events[1].json()["thread_id"] == thread["id"]
    assert _deltas_text(events) == "You said: hi"

    recorder = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant,
        thread={"messages": [{"role": "user", "content": "hello again"}]},
        event_handler=recorder,
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
    assert _merged(recorder.events) == [
        "thread.created",
        *OPENING,
        *_text_events(1),  # "You" " said:" " hello" " again", in one delta or more
        "thread.run.completed",
    ]
    assert "".join(recorder.deltas) == "You said: hello again" == recorder.texts[0]
    assert final.status == "completed"


def test_sdk_stream_helper_sees_every_event_and_every_delta(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    text = "Ünïcode ✓ and spaces  kept\nacross lines."
    thread_id = scripted_thread(client, {"text": text, "chunks": 7, "token_delay": 0.01})
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant, event_handler=recorder
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        (message,) = stream.get_final_messages()
    assert recorder.events == [*OPENING, *_text_events(7), "thread.run.completed"]
    assert run.status == "completed"
    (stored,) = run_messages_json(client, thread_id, run.id)
    assert "".join(recorder.deltas) == message_text(stored) == text
    assert message.content[0].type == "text"
    assert message.content[0].text.value == text


def test_tool_call_stream_then_submit_stream(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    calls = [weather_call("Paris"), weather_call("Saint-Étienne-du-Rouvray")]
    thread_id = scripted_thread(
        client, {"tool_calls": calls}, {"text": "Both sunny.", "chunks": 2, "token_delay": 0.01}
    )
    events = check_stream(
        stream_post(client, f"/threads/{thread_id}/runs", {"assistant_id": assistant})
    )
    deltas = [e for e in events if e.event == "thread.run.step.delta"]
    assert names(events) == [
        *OPENING,
        "thread.run.step.created",
        "thread.run.step.in_progress",
        *["thread.run.step.delta"] * len(deltas),
        "thread.run.requires_action",
    ]
    run = events[-1].json()
    required = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    arguments: dict[int, str] = {}
    ids: dict[int, str] = {}
    for delta in deltas:
        (piece,) = delta.json()["delta"]["step_details"]["tool_calls"]
        arguments[piece["index"]] = (
            arguments.get(piece["index"], "") + piece["function"]["arguments"]
        )
        if "id" in piece:
            ids[piece["index"]] = piece["id"]
            assert piece["function"]["name"] == "get_weather"
    assert [arguments[i] for i in sorted(arguments)] == [
        c["function"]["arguments"] for c in required
    ]
    assert [ids[i] for i in sorted(ids)] == [c["id"] for c in required]
    assert [json.loads(a) for a in arguments.values()] == [c["arguments"] for c in calls]
    assert len(deltas) > len(calls)  # the arguments came in pieces

    outputs = [{"tool_call_id": c["id"], "output": "sunny"} for c in required]
    path = f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs"
    after = check_stream(
        stream_post(client, path, {"tool_outputs": outputs}), after=events[-1].id or 0
    )
    assert names(after) == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
        *_text_events(2),
        "thread.run.completed",
    ]
    tool_step = after[0].json()
    assert [c["function"]["output"] for c in tool_step["step_details"]["tool_calls"]] == [
        "sunny",
        "sunny",
    ]
    assert tool_step["usage"] is not None
    assert _deltas_text(after) == "Both sunny."


def test_sdk_submit_tool_outputs_stream(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"tool_calls": [weather_call("Oslo")]}, "Cold in Oslo.")
    first = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant, event_handler=first
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "requires_action"
    assert run.required_action is not None
    assert first.events[-1] == "thread.run.requires_action"
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    second = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "-3 C"}],
        event_handler=second,
    ) as stream:
        stream.until_done()
        done = stream.get_final_run()
    assert done.status == "completed"
    assert second.events[0] == "thread.run.step.completed"
    assert second.events[-1] == "thread.run.completed"
    assert "".join(second.deltas) == "Cold in Oslo."


def test_failed_run_stream_ends_with_an_error_event(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"error": "rate_limit_exceeded", "message": "slow down"})
    events = check_stream(
        stream_post(client, f"/threads/{thread_id}/runs", {"assistant_id": assistant})
    )
    assert names(events) == [*OPENING, "thread.run.failed", "error"]
    failed = events[-2].json()
    assert failed["last_error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    error = events[-1].json()
    assert (error["code"], error["message"]) == ("rate_limit_exceeded", "slow down")

    # The SDK helper reads the same stream to its end without raising.
    thread_id = scripted_thread(client, {"error": "server_error"})
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant, event_handler=recorder
    ) as stream:
        stream.until_done()
    # openai 3.54 decodes the spec's bare `Error` payload into an event with no
    # name (it would raise on an `{"error": ...}` wrapper): seen, not raised.
    assert recorder.events[:-1] == [*OPENING, "thread.run.failed"]
    assert len(recorder.events) == 5


def _read_until(lines: Any, last_id: int) -> list[SSE]:
    seen: list[SSE] = []
    for event in iter_sse(lines):
        seen.append(event)
        if event.id == last_id:
            return seen
    raise AssertionError("the stream ended early")


def test_resume_with_last_event_id_loses_and_repeats_nothing(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"text": "a b c d e f g h", "token_delay": 0.05})
    runs = f"/threads/{thread_id}/runs"
    with http(client).stream("POST", runs, json={"assistant_id": assistant, "stream": True}) as r:
        head = _read_until(r.iter_lines(), 9)  # gone mid-way through the deltas
    run_id = head[0].json()["id"]
    events = f"{runs}/{run_id}/events"
    tail = check_stream(stream_get(client, events, **{"Last-Event-ID": "9"}), after=9)
    whole = check_stream(stream_get(client, events, **{"Last-Event-ID": "0"}))
    assert head + tail == whole
    assert names(whole) == [*OPENING, *_text_events(8), "thread.run.completed"]
    assert _deltas_text(whole) == "a b c d e f g h"
    # `?after=` says the same; after the last event only `done` remains.
    assert check_stream(stream_get(client, f"{events}?after=12"), after=12) == whole[12:]
    assert check_stream(stream_get(client, events, **{"Last-Event-ID": str(whole[-1].id)})) == []


def test_a_client_that_goes_away_does_not_stop_the_run(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    text = "one two three four five six"
    thread_id = scripted_thread(client, {"text": text, "token_delay": 0.05})
    runs = f"/threads/{thread_id}/runs"
    with http(client).stream("POST", runs, json={"assistant_id": assistant, "stream": True}) as r:
        head = _read_until(r.iter_lines(), 8)  # the first delta
    assert head[-1].event == "thread.message.delta"
    run_id = head[0].json()["id"]
    assert poll(client, thread_id, run_id).status == "completed"
    (message,) = run_messages_json(client, thread_id, run_id)
    assert message["status"] == "completed"
    assert message_text(message) == text


def test_a_cancel_reaches_the_open_stream(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"hang": True})
    runs = f"/threads/{thread_id}/runs"
    with http(client).stream("POST", runs, json={"assistant_id": assistant, "stream": True}) as r:
        lines = r.iter_lines()
        head = _read_until(lines, 3)  # in progress: the model call hangs
        run_id = head[0].json()["id"]
        client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
        rest = list(iter_sse(lines))
    events = check_stream(head + rest)
    assert names(events) == [*OPENING, "thread.run.cancelling", "thread.run.cancelled"]
    assert events[-1].json()["cancelled_at"] is not None


def test_a_cursor_past_the_last_event_ends_with_the_run(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"hang": True})
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant)
    wait_for(client, thread_id, run.id, "in_progress")
    events = f"/threads/{thread_id}/runs/{run.id}/events"
    with http(client).stream("GET", f"{events}?after=1000") as response:
        assert response.status_code == 200
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
        rest = list(iter_sse(response.iter_lines()))
    assert names(check_stream(rest)) == ["thread.run.cancelling", "thread.run.cancelled"]
    # Once the run has ended, such a cursor gets the end of the stream at once.
    for headers in ({}, {"Last-Event-ID": "1000"}):
        path = events if headers else f"{events}?after=1000"
        assert stream_get(client, path, **headers) == [SSE(None, "done", "[DONE]")]
