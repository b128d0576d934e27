"""/v1/files through the official SDK: upload, list, retrieve, download, delete."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.polling import wait_until
from tests.support.sdk import bad_request
from tests.support.servers import ENGINES, KEY_A, Served, serve


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


def test_expires_after_sets_expires_at(client: openai.OpenAI) -> None:
    uploaded = client.files.create(
        file=("later.txt", b"soon gone"),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert uploaded.expires_at == uploaded.created_at + 3600
    assert client.files.retrieve(uploaded.id).expires_at == uploaded.expires_at
    kept = client.files.create(file=("kept.txt", b"stays"), purpose="assistants")
    assert kept.expires_at is None


@pytest.mark.parametrize(
    ("expires_after", "param"),
    [
        ({"anchor": "created_at", "seconds": 3599}, "expires_after.seconds"),
        ({"anchor": "created_at", "seconds": 2_592_001}, "expires_after.seconds"),
        ({"anchor": "created_at", "seconds": "soon"}, "expires_after.seconds"),
        # str.isdigit() holds for these, int() fails on the first, reads the second.
        ({"anchor": "created_at", "seconds": "3600\u00b3"}, "expires_after.seconds"),
        ({"anchor": "created_at", "seconds": "\u0663\u0666\u0660\u0660"}, "expires_after.seconds"),
        ({"anchor": "created_at"}, "expires_after.seconds"),
        ({"anchor": "last_active_at", "seconds": 3600}, "expires_after.anchor"),
        ({"seconds": 3600}, "expires_after.anchor"),
    ],
)
def test_bad_expires_after_is_400(
    client: openai.OpenAI, expires_after: dict[str, object], param: str
) -> None:
    error = bad_request(
        lambda: client.files.create(
            file=("x.txt", b"x"),
            purpose="assistants",
            expires_after=expires_after,  # type: ignore[arg-type]
        )
    )
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("engine", ENGINES)
def test_an_expired_file_is_deleted_with_its_bytes(tmp_path: Path, engine: str) -> None:
    with serve(engine, tmp_path, expiry_sweep_seconds=0.2) as server:
        client = server.client()
        doomed = client.files.create(
            file=("doomed.txt", b"bytes"),
            purpose="assistants",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
        kept = client.files.create(file=("kept.txt", b"kept"), purpose="assistants")
        assert [p.name for p in server.stored_files()].count(doomed.id) == 1
        server.set_fields("files", doomed.id, expires_at=doomed.created_at - 1)

        wait_until(
            "the expired file to be deleted",
            lambda: server.count("files", id=doomed.id) == 0,
            timeout=20,
        )
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(doomed.id)
        assert doomed.id not in [p.name for p in server.stored_files()]
        assert client.files.content(kept.id).read() == b"kept"
