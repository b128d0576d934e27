"""/v1/threads through the official SDK: create (with first messages), retrieve,
modify, delete; a failed create stores nothing."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.pagination import SyncCursorPage
from openai.types.beta import Thread

from tests.support.sdk import bad_request
from tests.support.servers import Served


def test_create_empty(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    assert thread.id.startswith("thread_")
    assert thread.object == "thread"
    assert thread.metadata == {}
    assert isinstance(thread.created_at, int)
    assert client.beta.threads.messages.list(thread.id).data == []


def test_create_with_messages_tool_resources_and_metadata(client: openai.OpenAI) -> None:
    doc = client.files.create(file=("notes.txt", b"hello"), purpose="assistants")
    image = client.files.create(file=("cat.png", b"\x89PNG fake"), purpose="vision")
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "first", "metadata": {"n": "1"}},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_file", "image_file": {"file_id": image.id, "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
                "attachments": [{"file_id": doc.id, "tools": [{"type": "file_search"}]}],
            },
            {"role": "assistant", "content": "third"},
        ],
        tool_resources={"code_interpreter": {"file_ids": [doc.id]}},
        metadata={"user": "u1"},
    )
    assert thread.metadata == {"user": "u1"}
    assert thread.tool_resources is not None
    assert thread.tool_resources.code_interpreter is not None
    assert thread.tool_resources.code_interpreter.file_ids == [doc.id]

    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "user", "assistant"]
    assert all(m.thread_id == thread.id for m in messages)
    assert messages[0].content[0].type == "text"
    assert messages[0].content[0].text.value == "first"
    assert messages[0].metadata == {"n": "1"}
    assert [part.type for part in messages[1].content] == ["text", "image_file", "image_url"]
    assert messages[1].content[1].image_file.file_id == image.id
    assert messages[1].attachments is not None
    assert messages[1].attachments[0].file_id == doc.id
    assert messages[2].content[0].text.value == "third"


def test_retrieve_and_modify(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(metadata={"a": "1"})
    assert client.beta.threads.retrieve(thread.id) == thread
    upload = client.files.create(file=("x.py", b"print(1)"), purpose="assistants")
    updated = client.beta.threads.update(
        thread.id,
        metadata={"b": "2"},
        tool_resources={"code_interpreter": {"file_ids": [upload.id]}},
    )
    assert updated.id == thread.id
    assert updated.metadata == {"b": "2"}
    assert updated.tool_resources.code_interpreter.file_ids == [upload.id]
    only_metadata = client.beta.threads.update(thread.id, metadata={"c": "3"})
    assert only_metadata.tool_resources == updated.tool_resources
    assert client.beta.threads.retrieve(thread.id).metadata == {"c": "3"}


def test_delete_removes_its_messages(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    message = client.beta.threads.messages.list(thread.id).data[0]
    deleted = client.beta.threads.delete(thread.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (thread.id, True, "thread.deleted")
    for call in (
        lambda: client.beta.threads.retrieve(thread.id),
        lambda: client.beta.threads.update(thread.id, metadata={}),
        lambda: client.beta.threads.delete(thread.id),
        lambda: client.beta.threads.messages.list(thread.id),
        lambda: client.beta.threads.messages.retrieve(message.id, thread_id=thread.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["message"] == f"No thread found with id '{thread.id}'."


def test_delete_cascades_in_storage(own_server: Served) -> None:
    client = own_server.client()
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": str(i)} for i in range(3)]
    )
    keep = client.beta.threads.create(messages=[{"role": "user", "content": "stay"}])
    assert own_server.count("messages", thread_id=thread.id) == 3
    client.beta.threads.delete(thread.id)
    assert own_server.count("threads", id=thread.id) == 0
    assert own_server.count("messages", thread_id=thread.id) == 0
    assert own_server.count("messages", thread_id=keep.id) == 1


@pytest.mark.parametrize(
    ("second", "param"),
    [
        ({"role": "robot", "content": "x"}, "messages[1].role"),
        ({"role": "user", "content": []}, "messages[1].content"),
        ({"role": "user", "content": [{"type": "video"}]}, "messages[1].content[0].type"),
        ({"role": "user", "content": "x", "metadata": {"k": "v" * 513}}, "messages[1].metadata.k"),
        (
            {"role": "user", "content": "x", "attachments": [{"file_id": "file-nope"}]},
            "messages[1].attachments",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "image_file", "image_file": {"file_id": "file-nope"}}],
            },
            "messages[1].content",
        ),
    ],
)
def test_a_bad_message_stores_no_thread(
    own_server: Served, second: dict[str, Any], param: str
) -> None:
    client = own_server.client()
    threads, messages = own_server.count("threads"), own_server.count("messages")
    error = bad_request(
        lambda: client.beta.threads.create(messages=[{"role": "user", "content": "fine"}, second])
    )
    assert error["param"] == param
    assert own_server.count("threads") == threads
    assert own_server.count("messages") == messages


def test_bad_tool_resources_store_no_thread(own_server: Served) -> None:
    client = own_server.client()
    threads = own_server.count("threads")
    error = bad_request(
        lambda: client.beta.threads.create(
            messages=[{"role": "user", "content": "fine"}],
            tool_resources={"code_interpreter": {"file_ids": ["file-nope"]}},
        )
    )
    assert error["param"] == "tool_resources.code_interpreter.file_ids"
    assert own_server.count("threads") == threads


def test_metadata_limits(client: openai.OpenAI) -> None:
    at_limit = {str(i): "v" * 512 for i in range(16)}
    thread = client.beta.threads.create(metadata=at_limit)
    assert thread.metadata == at_limit
    error = bad_request(lambda: client.beta.threads.update(thread.id, metadata={"k" * 65: "v"}))
    assert (error["param"], error["code"]) == ("metadata", "string_above_max_length")
    error = bad_request(
        lambda: client.beta.threads.update(thread.id, metadata={str(i): "v" for i in range(17)})
    )
    assert (error["param"], error["code"]) == ("metadata", "object_above_max_properties")
    assert client.beta.threads.retrieve(thread.id).metadata == at_limit


def test_unknown_parameters_are_refused(client: openai.OpenAI) -> None:
    error = bad_request(lambda: client.beta.threads.create(extra_body={"title": "x"}))
    assert (error["param"], error["code"]) == ("title", "unknown_parameter")
    error = bad_request(
        lambda: client.beta.threads.create(
            messages=[{"role": "user", "content": "x", "name": "bob"}]
        )
    )
    assert error["param"] == "messages[0].name"


def _list_threads(client: openai.OpenAI, **params: Any) -> SyncCursorPage[Thread]:
    """``GET /v1/threads``: threadline's own addition, through the SDK's list machinery."""
    return client.get_api_list(
        "/threads", model=Thread, page=SyncCursorPage[Thread], options={"params": params}
    )


def test_list_threads_pages_newest_first(client: openai.OpenAI) -> None:
    made = [client.beta.threads.create(metadata={"n": str(n)}).id for n in range(3)]
    first = _list_threads(client, limit=2)
    assert [t.id for t in first.data] == [made[2], made[1]]
    assert first.has_more is True
    second = _list_threads(client, limit=2, after=made[1])
    assert second.data[0].id == made[0]
    ascending = _list_threads(client, limit=1, order="asc", before=made[1])
    assert [t.id for t in ascending.data] == [made[0]]
    assert second.data[0].metadata == {"n": "0"}


def test_list_threads_shows_only_the_projects_own(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    mine = client.beta.threads.create().id
    theirs = {t.id for t in _list_threads(other_client, limit=100).data}
    assert mine not in theirs
    with pytest.raises(openai.BadRequestError):
        _list_threads(other_client, after=mine)


def test_list_threads_refuses_a_bad_limit(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _list_threads(client, limit=0)
    assert caught.value.param == "limit"
