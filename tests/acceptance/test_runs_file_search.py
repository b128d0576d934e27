"""file_search inside runs through the official SDK, on each engine, with the
scripted model: the search step and its results, ``include[]`` for their content,
citations as annotations (stored and streamed), tool_choice, tenancy."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from tests.support.runs import (
    POLL_MS,
    SSE,
    WEATHER,
    check_stream,
    get_json,
    http,
    iter_sse,
    message_text,
    run_messages_json,
    scripted_thread,
    steps_json,
    weather_call,
)
from threadline.models.scripted import directive

SEARCH: dict[str, Any] = {"type": "file_search"}
CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
NOTES = b"# Tides\n\nThe high tide in Brest is at noon on Saturday.\n"


def search(query: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "file_search", "arguments": {"query": query}}]}


def store_with(client: openai.OpenAI, name: str, content: bytes) -> tuple[str, str]:
    file_id = client.files.create(file=(name, content), purpose="assistants").id
    store = client.vector_stores.create(name=name)
    done = client.vector_stores.files.create_and_poll(
        file_id=file_id, vector_store_id=store.id, poll_interval_ms=20
    )
    assert done.status == "completed"
    return store.id, file_id


def assistant_over(client: openai.OpenAI, store_id: str, **options: Any) -> str:
    return client.beta.assistants.create(
        model="gpt-4o",
        tools=[SEARCH],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
        **options,
    ).id


def run_to_end(client: openai.OpenAI, assistant: str, thread_id: str, **options: Any) -> Any:
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, poll_interval_ms=POLL_MS, **options
    )
    assert run.status == "completed", run.last_error
    return run


def test_a_search_step_then_a_cited_answer(client: openai.OpenAI) -> None:
    store_id, file_id = store_with(client, "notes.md", NOTES)
    assistant = assistant_over(client, store_id)
    thread_id = scripted_thread(
        client, search("high tide Brest"), "At noon【0:0†notes.md】, they say."
    )
    run = run_to_end(client, assistant, thread_id)
    assert run.required_action is None
    tool_step, message_step = steps_json(client, thread_id, run.id)
    assert (tool_step["type"], tool_step["status"]) == ("tool_calls", "completed")
    [call] = tool_step["step_details"]["tool_calls"]
    assert call["type"] == "file_search"
    assert call["file_search"]["ranking_options"] == {
        "ranker": "default_2024_08_21",
        "score_threshold": 0.0,
    }
    [result, *_] = call["file_search"]["results"]
    assert (result["file_id"], result["file_name"]) == (file_id, "notes.md")
    assert 0 < result["score"] <= 1
    assert "content" not in result  # only with include[]
    assert tool_step["usage"]["total_tokens"] > 0
    assert run.usage is not None
    assert run.usage.total_tokens == (
        tool_step["usage"]["total_tokens"] + message_step["usage"]["total_tokens"]
    )

    [message] = run_messages_json(client, thread_id, run.id)
    text = message["content"][0]["text"]
    marker = "【0:0†notes.md】"
    assert text["value"] == f"At noon{marker}, they say."
    assert text["annotations"] == [
        {
            "type": "file_citation",
            "text": marker,
            "start_index": 7,
            "end_index": 7 + len(marker),
            "file_citation": {"file_id": file_id},
        }
    ]
    # The SDK reads it as a file citation.
    [sdk_message] = client.beta.threads.messages.list(thread_id, run_id=run.id).data
    [annotation] = sdk_message.content[0].text.annotations  # type: ignore[union-attr]
    assert annotation.type == "file_citation"
    # Searching made the store active.
    assert client.vector_stores.retrieve(store_id).last_active_at is not None


def test_include_gives_the_results_content(client: openai.OpenAI) -> None:
    store_id, _ = store_with(client, "notes.md", NOTES)
    assistant = assistant_over(client, store_id)
    thread_id = scripted_thread(client, search("high tide"), "Noon.")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant,
        poll_interval_ms=POLL_MS,
        include=[CONTENT],
    )
    assert run.status == "completed"
    page, _ = get_json(
        client, f"/threads/{thread_id}/runs/{run.id}/steps", **{"include[]": CONTENT}
    )
    [result, *_] = page["data"][-1]["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert result["content"] == [{"type": "text", "text": NOTES.decode()}]
    step_id = page["data"][-1]["id"]
    sdk_step = client.beta.threads.runs.steps.retrieve(
        step_id, thread_id=thread_id, run_id=run.id, include=[CONTENT]
    )
    [sdk_call] = sdk_step.step_details.tool_calls  # type: ignore[union-attr]
    assert sdk_call.type == "file_search"
    assert sdk_call.file_search.results is not None
    assert sdk_call.file_search.results[0].content is not None
    plain = client.beta.threads.runs.steps.retrieve(step_id, thread_id=thread_id, run_id=run.id)
    [plain_call] = plain.step_details.tool_calls  # type: ignore[union-attr]
    assert plain_call.file_search.results is not None  # type: ignore[union-attr]
    assert plain_call.file_search.results[0].content is None  # type: ignore[union-attr]


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.annotations: list[Any] = []
        self.step_calls: list[Any] = []

    @override
    def on_event(self, event: Any) -> None:
        self.events.append(event.event)
        if event.event == "thread.message.delta":
            for part in event.data.delta.content or []:
                if part.type == "text" and part.text and part.text.annotations:
                    self.annotations.extend(part.text.annotations)
        if event.event == "thread.run.step.delta":
            details = event.data.delta.step_details
            if details is not None and details.type == "tool_calls":
                self.step_calls.extend(details.tool_calls or [])


def test_streamed_steps_and_annotated_deltas(client: openai.OpenAI) -> None:
    store_id, file_id = store_with(client, "notes.md", NOTES)
    assistant = assistant_over(client, store_id)
    answer = {"text": "Noon 【0:0†notes.md】 it is.", "chunks": 4}
    thread_id = scripted_thread(client, search("tide"), answer)
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant, event_handler=recorder
    ) as stream:
        stream.until_done()
    assert recorder.events[-1] == "thread.run.completed"
    assert recorder.events.count("thread.run.step.created") == 2
    assert recorder.events.count("thread.run.step.completed") == 2
    [streamed_call] = recorder.step_calls
    assert streamed_call.type == "file_search"
    # The spec types the delta's file_search as a plain object.
    [streamed_result, *_] = streamed_call.file_search["results"]
    assert streamed_result["file_id"] == file_id
    assert "content" not in streamed_result  # no include[]
    [annotation] = recorder.annotations
    assert annotation.type == "file_citation"
    assert annotation.file_citation.file_id == file_id
    assert annotation.text == "【0:0†notes.md】"
    assert annotation.start_index == 5


def test_tool_choice_forces_a_search(client: openai.OpenAI) -> None:
    store_id, file_id = store_with(client, "notes.md", NOTES)
    assistant = assistant_over(client, store_id)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "tide"}])
    run = run_to_end(client, assistant, thread.id, tool_choice={"type": "file_search"})
    tool_step, message_step = steps_json(client, thread.id, run.id)
    [call] = tool_step["step_details"]["tool_calls"]
    assert call["file_search"]["results"][0]["file_id"] == file_id
    assert message_step["type"] == "message_creation"


def test_without_stores_the_model_is_not_offered_file_search(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[SEARCH]).id
    thread_id = scripted_thread(client, search("tide"), "never")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, poll_interval_ms=POLL_MS
    )
    assert run.status == "failed"
    assert run.last_error is not None
    assert "file_search" in run.last_error.message


def test_a_run_never_searches_another_projects_store(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    theirs, _ = store_with(other_client, "secret.md", b"The vault code is 7319.\n")
    with pytest.raises(openai.BadRequestError) as refused:
        assistant_over(client, theirs)
    assert refused.value.param == "tool_resources.file_search.vector_store_ids"  # type: ignore[attr-defined]
    mine, file_id = store_with(client, "notes.md", NOTES)
    assistant = assistant_over(client, mine)
    thread_id = scripted_thread(client, search("vault code"), "ok")
    run = run_to_end(client, assistant, thread_id)
    tool_step, _ = steps_json(client, thread_id, run.id)
    results = tool_step["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert {r["file_id"] for r in results} <= {file_id}
    [message] = run_messages_json(client, thread_id, run.id)
    assert "7319" not in message_text(message)


def ingested(client: openai.OpenAI, store_id: str) -> list[Any]:
    """The store's files once each finished ingesting."""
    files = client.vector_stores.files.list(store_id).data
    return [
        client.vector_stores.files.poll(f.id, vector_store_id=store_id, poll_interval_ms=20)
        for f in files
    ]


def test_the_vector_stores_helper_makes_a_store_inline(client: openai.OpenAI) -> None:
    file_id = client.files.create(file=("notes.md", NOTES), purpose="assistants").id
    static = {
        "type": "static",
        "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
    }
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[SEARCH],
        tool_resources={
            "file_search": {
                "vector_stores": [
                    {
                        "file_ids": [file_id],
                        "metadata": {"team": "ops"},
                        "chunking_strategy": static,
                    }
                ]
            }
        },
    )
    assert assistant.tool_resources is not None
    assert assistant.tool_resources.file_search is not None
    [store_id] = assistant.tool_resources.file_search.vector_store_ids or []
    assert client.vector_stores.retrieve(store_id).metadata == {"team": "ops"}
    [held] = ingested(client, store_id)
    assert (held.id, held.status) == (file_id, "completed")
    assert held.chunking_strategy is not None
    assert held.chunking_strategy.static.max_chunk_size_tokens == 200  # type: ignore[union-attr]

    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": directive(search("tide"), "ok")}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [file_id]}]}},
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.file_search is not None
    [thread_store] = thread.tool_resources.file_search.vector_store_ids or []
    assert thread_store != store_id
    ingested(client, thread_store)
    run = run_to_end(client, assistant.id, thread.id)
    tool_step, _ = steps_json(client, thread.id, run.id)
    results = tool_step["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert {r["file_id"] for r in results} == {file_id}

    with pytest.raises(openai.BadRequestError):
        client.beta.assistants.create(
            model="gpt-4o",
            tool_resources={
                "file_search": {"vector_store_ids": [store_id], "vector_stores": [{"file_ids": []}]}
            },
        )
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.create(
            tool_resources={"file_search": {"vector_stores": [{"file_ids": ["file-nope"]}]}}
        )


def test_attachments_go_into_the_threads_own_store(client: openai.OpenAI) -> None:
    first = client.files.create(file=("notes.md", NOTES), purpose="assistants").id
    second = client.files.create(file=("tides.txt", b"Low tide at six."), purpose="assistants").id
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[SEARCH]).id
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "read this",
                "attachments": [{"file_id": first, "tools": [SEARCH]}],
            }
        ]
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.file_search is not None
    [store_id] = thread.tool_resources.file_search.vector_store_ids or []
    store = client.vector_stores.retrieve(store_id)
    assert store.expires_after is not None
    assert (store.expires_after.anchor, store.expires_after.days) == ("last_active_at", 7)
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=directive(search("low tide"), "At six【0:0†tides.txt】."),
        attachments=[{"file_id": second, "tools": [SEARCH]}],
    )
    again = client.beta.threads.retrieve(thread.id)
    assert again.tool_resources is not None
    assert again.tool_resources.file_search is not None
    assert again.tool_resources.file_search.vector_store_ids == [store_id]
    assert {f.id for f in ingested(client, store_id)} == {first, second}
    run = run_to_end(client, assistant, thread.id)
    tool_step, _ = steps_json(client, thread.id, run.id)
    results = tool_step["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert results[0]["file_id"] == second
    [message] = run_messages_json(client, thread.id, run.id)
    assert message["content"][0]["text"]["annotations"][0]["file_citation"] == {"file_id": second}


def test_additional_messages_attach_to_the_threads_store(client: openai.OpenAI) -> None:
    file_id = client.files.create(file=("notes.md", NOTES), purpose="assistants").id
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[SEARCH]).id
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create(
        thread_id=thread.id,
        assistant_id=assistant,
        additional_messages=[
            {
                "role": "user",
                "content": "hi",
                "attachments": [{"file_id": file_id, "tools": [SEARCH]}],
            }
        ],
    )
    client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=POLL_MS)
    again = client.beta.threads.retrieve(thread.id)
    assert again.tool_resources is not None
    assert again.tool_resources.file_search is not None
    [store_id] = again.tool_resources.file_search.vector_store_ids or []
    assert [f.id for f in ingested(client, store_id)] == [file_id]


def test_a_search_waits_for_files_attached_just_before(client: openai.OpenAI) -> None:
    file_id = client.files.create(file=("notes.md", NOTES), purpose="assistants").id
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[SEARCH]).id
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": directive(search("high tide Brest"), "ok"),
                "attachments": [{"file_id": file_id, "tools": [SEARCH]}],
            }
        ]
    )
    run = run_to_end(client, assistant, thread.id)  # at once: the file is still ingesting
    tool_step, _ = steps_json(client, thread.id, run.id)
    results = tool_step["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert [r["file_id"] for r in results] == [file_id]


def test_the_tools_options_shape_the_search(client: openai.OpenAI) -> None:
    store_id, _ = store_with(client, "notes.md", NOTES)
    extra = client.files.create(file=("more.md", b"Tide tables for Brest."), purpose="assistants")
    client.vector_stores.files.create_and_poll(
        file_id=extra.id, vector_store_id=store_id, poll_interval_ms=20
    )
    options = {"max_num_results": 1, "ranking_options": {"ranker": "auto", "score_threshold": 0.1}}
    assistant = assistant_over(client, store_id)
    thread_id = scripted_thread(client, search("tide Brest"), "ok")
    run = run_to_end(
        client, assistant, thread_id, tools=[{"type": "file_search", "file_search": options}]
    )
    tool_step, _ = steps_json(client, thread_id, run.id)
    found = tool_step["step_details"]["tool_calls"][0]["file_search"]
    assert found["ranking_options"] == {"ranker": "default_2024_08_21", "score_threshold": 0.1}
    assert len(found["results"]) == 1
    assert found["results"][0]["score"] >= 0.1


def _step_results(events: list[SSE]) -> list[dict[str, Any]]:
    """The file_search results of the streamed ``thread.run.step.completed`` events."""
    return [
        result
        for event in events
        if event.event == "thread.run.step.completed"
        for call in event.json()["step_details"].get("tool_calls") or []
        if call["type"] == "file_search"
        for result in call["file_search"]["results"]
    ]


def _resume(client: openai.OpenAI, thread_id: str, run_id: str, **params: Any) -> list[SSE]:
    path = f"/threads/{thread_id}/runs/{run_id}/events"
    with http(client).stream("GET", path, params={"after": 0, **params}) as response:
        assert response.status_code == 200, response.read()
        return check_stream(list(iter_sse(response.iter_lines())))


def test_a_resumed_stream_carries_content_only_when_asked(client: openai.OpenAI) -> None:
    store_id, file_id = store_with(client, "notes.md", NOTES)
    assistant = assistant_over(client, store_id)
    thread_id = scripted_thread(client, search("high tide"), "Noon.")
    run = run_to_end(client, assistant, thread_id, include=[CONTENT])

    [asked] = _step_results(_resume(client, thread_id, run.id, **{"include[]": CONTENT}))
    assert asked["file_id"] == file_id
    assert asked["content"] == [{"type": "text", "text": NOTES.decode()}]
    [plain] = _step_results(_resume(client, thread_id, run.id))
    assert plain["file_id"] == file_id
    assert "content" not in plain
    bad = http(client).get(
        f"/threads/{thread_id}/runs/{run.id}/events", params={"include[]": "nonsense"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] is not None


def test_submit_tool_outputs_streams_steps_without_content(client: openai.OpenAI) -> None:
    store_id, file_id = store_with(client, "notes.md", NOTES)
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[SEARCH, WEATHER],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    ).id
    thread_id = scripted_thread(
        client, {"tool_calls": [weather_call("Brest")]}, search("high tide"), "Noon."
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant,
        poll_interval_ms=POLL_MS,
        include=[CONTENT],
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    [call] = run.required_action.submit_tool_outputs.tool_calls
    path = f"/threads/{thread_id}/runs/{run.id}/submit_tool_outputs"
    body = {"tool_outputs": [{"tool_call_id": call.id, "output": "rain"}], "stream": True}
    with http(client).stream("POST", path, json=body, params={"include[]": CONTENT}) as response:
        assert response.status_code == 200, response.read()
        events = check_stream(list(iter_sse(response.iter_lines())))
    assert events[-1].event == "thread.run.completed"
    [result] = _step_results(events)
    assert result["file_id"] == file_id
    assert "content" not in result
    page, _ = get_json(
        client, f"/threads/{thread_id}/runs/{run.id}/steps", **{"include[]": CONTENT}
    )
    stored = [
        r
        for step in page["data"]
        for c in step["step_details"].get("tool_calls") or []
        if c["type"] == "file_search"
        for r in c["file_search"]["results"]
    ]
    assert stored[0]["content"] == [{"type": "text", "text": NOTES.decode()}]
