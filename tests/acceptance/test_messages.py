"""/v1/threads/{thread_id}/messages through the official SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from tests.support.sdk import bad_request
from tests.support.servers import Served
from threadline.storage import tables
from threadline.storage.db import Database
from threadline.storage.repository import Repository


@pytest.fixture
def thread_id(client: openai.OpenAI) -> str:
    return client.beta.threads.create().id


def test_create_with_string_content(client: openai.OpenAI, thread_id: str) -> None:
    message = client.beta.threads.messages.create(
        thread_id, role="user", content="Hello!", metadata={"k": "v"}
    )
    assert message.id.startswith("msg_")
    assert message.object == "thread.message"
    assert message.thread_id == thread_id
    assert message.role == "user"
    assert message.status == "completed"
    assert message.assistant_id is None
    assert message.run_id is None
    assert message.incomplete_details is None
    assert message.metadata == {"k": "v"}
    assert len(message.content) == 1
    part = message.content[0]
    assert part.type == "text"
    assert part.text.value == "Hello!"
    assert part.text.annotations == []
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread_id) == message


def test_create_with_content_parts_and_attachments(client: openai.OpenAI, thread_id: str) -> None:
    image = client.files.create(file=("dog.jpg", b"\xff\xd8 fake jpeg"), purpose="vision")
    doc = client.files.create(file=("doc.md", b"# doc"), purpose="assistants")
    message = client.beta.threads.messages.create(
        thread_id,
        role="assistant",
        content=[
            {"type": "text", "text": "see"},
            {"type": "image_file", "image_file": {"file_id": image.id, "detail": "high"}},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/x.png", "detail": "low"},
            },
        ],
        attachments=[
            {"file_id": doc.id, "tools": [{"type": "file_search"}, {"type": "code_interpreter"}]}
        ],
    )
    assert message.role == "assistant"
    assert [part.type for part in message.content] == ["text", "image_file", "image_url"]
    assert message.content[0].text.value == "see"
    assert message.content[1].image_file.file_id == image.id
    assert message.content[1].image_file.detail == "high"
    assert message.content[2].image_url.url == "https://example.com/x.png"
    assert message.content[2].image_url.detail == "low"
    assert message.attachments is not None
    assert message.attachments[0].file_id == doc.id
    assert [tool.type for tool in message.attachments[0].tools] == [
        "file_search",
        "code_interpreter",
    ]


def test_modify_and_delete(client: openai.OpenAI, thread_id: str) -> None:
    message = client.beta.threads.messages.create(thread_id, role="user", content="x")
    updated = client.beta.threads.messages.update(
        message.id, thread_id=thread_id, metadata={"seen": "yes"}
    )
    assert updated.metadata == {"seen": "yes"}
    assert updated.content == message.content
    deleted = client.beta.threads.messages.delete(message.id, thread_id=thread_id)
    assert (deleted.id, deleted.deleted, deleted.object) == (
        message.id,
        True,
        "thread.message.deleted",
    )
    with pytest.raises(openai.NotFoundError) as caught:
        client.beta.threads.messages.retrieve(message.id, thread_id=thread_id)
    assert caught.value.body["message"] == f"No message found with id '{message.id}'."
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.delete(message.id, thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.update(message.id, thread_id=thread_id, metadata={})
    assert client.beta.threads.messages.list(thread_id).data == []


def test_a_message_belongs_to_its_thread(client: openai.OpenAI, thread_id: str) -> None:
    message = client.beta.threads.messages.create(thread_id, role="user", content="x")
    other = client.beta.threads.create().id
    for call in (
        lambda: client.beta.threads.messages.retrieve(message.id, thread_id=other),
        lambda: client.beta.threads.messages.update(message.id, thread_id=other, metadata={}),
        lambda: client.beta.threads.messages.delete(message.id, thread_id=other),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread_id).id == message.id


def test_unknown_thread_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.beta.threads.messages.create("thread_nope", role="user", content="x")
    assert caught.value.body["message"] == "No thread found with id 'thread_nope'."
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list("thread_nope")


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"role": "system"}, "role", "invalid_value"),
        ({"content": []}, "content", "empty_array"),
        ({"content": 5}, "content", "invalid_type"),
        ({"content": [{"type": "audio"}]}, "content[0].type", "invalid_value"),
        ({"content": [{"type": "text"}]}, "content[0].text", "missing_required_parameter"),
        (
            {"content": [{"type": "image_url", "image_url": {"url": "a:u", "detail": "max"}}]},
            "content[0].image_url.detail",
            "invalid_value",
        ),
        (
            {"content": [{"type": "image_url", "image_url": {"url": "not a url"}}]},
            "content[0].image_url.url",
            "invalid_url",
        ),
        ({"attachments": [{"file_id": "file-nope"}]}, "attachments", "invalid_file_id"),
        (
            {"attachments": [{"file_id": "f", "tools": [{"type": "web"}]}]},
            "attachments[0].tools[0].type",
            "invalid_value",
        ),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
    ],
)
def test_invalid_messages_are_400_and_store_nothing(
    client: openai.OpenAI, thread_id: str, fields: dict[str, Any], param: str, code: str
) -> None:
    body = {"role": "user", "content": "x", **fields}
    error = bad_request(
        lambda: client.beta.threads.messages.create(
            thread_id, role=body.pop("role"), content=body.pop("content"), extra_body=body
        )
    )
    assert (error["param"], error["code"]) == (param, code)
    assert client.beta.threads.messages.list(thread_id).data == []


def test_empty_string_content_is_allowed(client: openai.OpenAI, thread_id: str) -> None:
    message = client.beta.threads.messages.create(thread_id, role="user", content="")
    assert message.content[0].text.value == ""


def test_metadata_limits_on_modify(client: openai.OpenAI, thread_id: str) -> None:
    message = client.beta.threads.messages.create(thread_id, role="user", content="x")
    ok = {"k" * 64: "v" * 512}
    assert (
        client.beta.threads.messages.update(message.id, thread_id=thread_id, metadata=ok).metadata
        == ok
    )
    error = bad_request(
        lambda: client.beta.threads.messages.update(
            message.id, thread_id=thread_id, metadata={"k": "v" * 513}
        )
    )
    assert (error["param"], error["code"]) == ("metadata.k", "string_above_max_length")
    error = bad_request(
        lambda: client.beta.threads.messages.update(
            message.id, thread_id=thread_id, extra_body={"content": "new"}
        )
    )
    assert (error["param"], error["code"]) == ("content", "unknown_parameter")


def test_list_filters_by_run_id(own_server: Served) -> None:
    """Messages a run wrote are found by ``run_id``; the others are not."""
    client = own_server.client()
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "question"}])
    written = ["msg_run_1_a", "msg_run_1_b"]

    async def write_as_run() -> None:
        db = Database(own_server.database_url)
        repo = Repository(tables.messages, "message")
        try:
            async with db.write() as conn:
                for message_id in written:
                    data = {
                        **client.beta.threads.messages.list(thread.id).data[0].model_dump(),
                        "id": message_id,
                        "role": "assistant",
                        "run_id": "run_1",
                        "assistant_id": "asst_1",
                    }
                    await repo.insert(conn, "proj_a", data, thread_id=thread.id, run_id="run_1")
        finally:
            await db.dispose()

    asyncio.run(write_as_run())
    by_run = client.beta.threads.messages.list(thread.id, run_id="run_1", order="asc")
    assert [m.id for m in by_run.data] == written
    assert all(m.run_id == "run_1" for m in by_run.data)
    assert client.beta.threads.messages.list(thread.id, run_id="run_other").data == []
    assert len(client.beta.threads.messages.list(thread.id).data) == 3
