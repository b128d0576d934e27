"""Tenant isolation: what project A makes does not exist (404) for project B, on
every endpoint, and B's attempts leave A's objects as they were."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest


@dataclass
class Owned:
    assistant: str
    thread: str
    message: str
    file: str


@pytest.fixture
def owned(client: openai.OpenAI) -> Owned:
    """Objects of project A."""
    file = client.files.create(file=("a.txt", b"secret"), purpose="assistants").id
    assistant = client.beta.assistants.create(model="gpt-4o", name="A's", metadata={"o": "a"}).id
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "A's message"}], metadata={"o": "a"}
    ).id
    message = client.beta.threads.messages.list(thread).data[0].id
    return Owned(assistant, thread, message, file)


def calls_on(b: Any, o: Owned) -> dict[str, Callable[[], Any]]:
    return {
        "get assistant": lambda: b.beta.assistants.retrieve(o.assistant),
        "modify assistant": lambda: b.beta.assistants.update(o.assistant, name="B's"),
        "delete assistant": lambda: b.beta.assistants.delete(o.assistant),
        "get thread": lambda: b.beta.threads.retrieve(o.thread),
        "modify thread": lambda: b.beta.threads.update(o.thread, metadata={"o": "b"}),
        "delete thread": lambda: b.beta.threads.delete(o.thread),
        "create message": lambda: b.beta.threads.messages.create(
            o.thread, role="user", content="B's"
        ),
        "list messages": lambda: b.beta.threads.messages.list(o.thread),
        "get message": lambda: b.beta.threads.messages.retrieve(o.message, thread_id=o.thread),
        "modify message": lambda: b.beta.threads.messages.update(
            o.message, thread_id=o.thread, metadata={}
        ),
        "delete message": lambda: b.beta.threads.messages.delete(o.message, thread_id=o.thread),
        "get file": lambda: b.files.retrieve(o.file),
        "download file": lambda: b.files.content(o.file),
        "delete file": lambda: b.files.delete(o.file),
    }


ENDPOINTS = list(calls_on(None, Owned("", "", "", "")))  # the names; nothing is called


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_other_projects_objects_are_404(
    client: openai.OpenAI, other_client: openai.OpenAI, owned: Owned, endpoint: str
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        calls_on(other_client, owned)[endpoint]()
    assert "found" in caught.value.body["message"] or "No such" in caught.value.body["message"]

    # A still sees everything, unchanged.
    assert client.beta.assistants.retrieve(owned.assistant).name == "A's"
    assert client.beta.threads.retrieve(owned.thread).metadata == {"o": "a"}
    messages = client.beta.threads.messages.list(owned.thread).data
    assert [m.id for m in messages] == [owned.message]
    assert client.files.content(owned.file).read() == b"secret"


def test_lists_show_only_ones_own(
    client: openai.OpenAI, other_client: openai.OpenAI, owned: Owned
) -> None:
    theirs = other_client.beta.assistants.create(model="gpt-4o").id
    assert owned.assistant not in [a.id for a in other_client.beta.assistants.list(limit=100)]
    assert theirs in [a.id for a in other_client.beta.assistants.list(limit=100)]
    assert theirs not in [a.id for a in client.beta.assistants.list(limit=100)]
    assert owned.file not in [f.id for f in other_client.files.list()]
    assert owned.file in [f.id for f in client.files.list()]


def test_cursors_of_another_project_are_refused(other_client: openai.OpenAI, owned: Owned) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        other_client.beta.assistants.list(after=owned.assistant)
    assert caught.value.param == "after"
    with pytest.raises(openai.BadRequestError):
        other_client.files.list(after=owned.file)


def test_another_projects_file_cannot_be_referenced(
    other_client: openai.OpenAI, owned: Owned
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        other_client.beta.assistants.create(
            model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": [owned.file]}}
        )
    assert caught.value.param == "tool_resources.code_interpreter.file_ids"
    with pytest.raises(openai.BadRequestError) as caught:
        other_client.beta.threads.create(
            messages=[{"role": "user", "content": "x", "attachments": [{"file_id": owned.file}]}]
        )
    assert caught.value.param == "messages[0].attachments"
    thread = other_client.beta.threads.create().id
    with pytest.raises(openai.BadRequestError):
        other_client.beta.threads.messages.create(
            thread,
            role="user",
            content=[{"type": "image_file", "image_file": {"file_id": owned.file}}],
        )
    with pytest.raises(openai.BadRequestError):
        other_client.beta.threads.update(
            thread, tool_resources={"code_interpreter": {"file_ids": [owned.file]}}
        )
