"""/v1/files through the official SDK: upload, list, retrieve, download, delete."""

from __future__ import annotations

import io
import os

import httpx
import openai
import pytest

from tests.support.sdk import bad_request
from tests.support.servers import KEY_A, Served


def test_upload_retrieve_download(client: openai.OpenAI) -> None:
    content = bytes(range(256)) * 100
    uploaded = client.files.create(file=("data.bin", io.BytesIO(content)), purpose="assistants")
    assert uploaded.id.startswith("file-")
    assert uploaded.object == "file"
    assert uploaded.bytes == len(content)
    assert uploaded.filename == "data.bin"
    assert uploaded.purpose == "assistants"
    assert uploaded.status == "processed"
    assert isinstance(uploaded.created_at, int)
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).read() == content


@pytest.mark.parametrize(
    "purpose", ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
)
def test_every_upload_purpose(client: openai.OpenAI, purpose: str) -> None:
    uploaded = client.files.create(file=("f.jsonl", b"{}\n"), purpose=purpose)
    assert uploaded.purpose == purpose


def test_empty_file_and_path_in_name(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("../../etc/passwd", b""), purpose="assistants")
    assert uploaded.bytes == 0
    assert uploaded.filename == "passwd"
    assert client.files.content(uploaded.id).read() == b""


def test_list_with_purpose_filter_and_pages(own_server: Served) -> None:
    client = own_server.client()
    batch = [client.files.create(file=(f"{i}.txt", b"x"), purpose="batch").id for i in range(5)]
    vision = client.files.create(file=("v.png", b"x"), purpose="vision").id

    everything = client.files.list()
    assert [f.id for f in everything.data][:6] == [vision, *batch[::-1]]
    assert [f.id for f in client.files.list(purpose="batch").data] == batch[::-1]
    assert [f.id for f in client.files.list(purpose="vision").data] == [vision]
    assert client.files.list(purpose="fine-tune").data == []

    first = client.files.list(purpose="batch", limit=2, order="asc")
    assert [f.id for f in first.data] == batch[:2]
    assert first.has_more is True
    second = client.files.list(purpose="batch", limit=2, order="asc", after=batch[1])
    assert [f.id for f in second.data] == batch[2:4]
    assert [f.id for f in client.files.list(purpose="batch", limit=2)] == batch[::-1]


def test_delete_removes_row_and_bytes(own_server: Served) -> None:
    client = own_server.client()
    uploaded = client.files.create(file=("gone.txt", b"bye"), purpose="assistants")
    on_disk = [p for p in own_server.stored_files() if p.name == uploaded.id]
    assert len(on_disk) == 1
    assert on_disk[0].read_bytes() == b"bye"

    deleted = client.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (uploaded.id, True, "file")
    assert not on_disk[0].exists()
    assert own_server.count("files", id=uploaded.id) == 0
    for call in (
        lambda: client.files.retrieve(uploaded.id),
        lambda: client.files.content(uploaded.id),
        lambda: client.files.delete(uploaded.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["message"] == f"No such File object: {uploaded.id}"


def test_bad_purpose_stores_nothing(own_server: Served) -> None:
    client = own_server.client()
    rows, files = own_server.count("files"), own_server.stored_files()
    error = bad_request(lambda: client.files.create(file=("a.txt", b"x"), purpose="training"))
    assert (error["param"], error["code"]) == ("purpose", "invalid_value")
    assert error["message"].startswith("Invalid value: 'training'. Supported values are:")
    assert own_server.count("files") == rows
    assert own_server.stored_files() == files


def test_missing_parts_are_400(live_server: str) -> None:
    headers = {"Authorization": f"Bearer {KEY_A}"}
    no_purpose = httpx.post(
        f"{live_server}/files", headers=headers, files={"file": ("a.txt", b"x")}
    )
    assert no_purpose.status_code == 400
    assert no_purpose.json()["error"]["param"] == "purpose"
    assert no_purpose.json()["error"]["code"] == "missing_required_parameter"
    no_file = httpx.post(f"{live_server}/files", headers=headers, data={"purpose": "assistants"})
    assert no_file.status_code == 400
    assert no_file.json()["error"]["param"] == "file"


def test_upload_of_a_referenced_file_is_usable_everywhere(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("code.py", b"print(2)"), purpose="assistants")
    assistant = client.beta.assistants.create(
        model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": [uploaded.id]}}
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "run it", "attachments": [{"file_id": uploaded.id}]}]
    )
    assert assistant.tool_resources.code_interpreter.file_ids == [uploaded.id]
    message = client.beta.threads.messages.list(thread.id).data[0]
    assert message.attachments[0].file_id == uploaded.id


def test_delete_during_a_download_leaves_the_download_whole(own_server: Served) -> None:
    client = own_server.client()
    content = os.urandom(16 * 1024 * 1024)  # more than the loopback buffers hold
    uploaded = client.files.create(file=("big.bin", content), purpose="assistants")
    with client.files.with_streaming_response.content(uploaded.id) as response:
        assert response.headers["content-length"] == str(len(content))
        chunks = response.iter_bytes(64 * 1024)
        received = next(chunks)
        assert client.files.delete(uploaded.id).deleted is True
        received += b"".join(chunks)
    assert received == content
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)
    assert not [p for p in own_server.stored_files() if p.name == uploaded.id]
