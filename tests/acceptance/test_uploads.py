"""/v1/uploads through the official SDK: a file sent in parts, completed into a
File, cancelled or expired; bad input refused with 4xx envelopes; on SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.polling import wait_until
from tests.support.sdk import bad_request
from tests.support.servers import ENGINES, KEY_B, Served, serve

MAX_UPLOAD = 1_000_000


@pytest.fixture(scope="module", params=ENGINES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp(f"uploads-{request.param}")
    with serve(
        request.param, data_dir, expiry_sweep_seconds=0.2, max_upload_bytes=MAX_UPLOAD
    ) as served:
        yield served


@pytest.fixture
def client(server: Served) -> openai.OpenAI:
    return server.client()


def _parts_on_disk(server: Served) -> list[Path]:
    return [p for p in server.stored_files() if p.name.startswith("part_")]


def _create(client: openai.OpenAI, size: int, **extra: object) -> openai.types.Upload:
    return client.uploads.create(
        bytes=size,
        filename="notes.txt",
        mime_type="text/plain",
        purpose="assistants",
        **extra,  # type: ignore[arg-type]
    )


def test_parts_completed_in_the_order_given(server: Served, client: openai.OpenAI) -> None:
    pieces = [b"alpha " * 1000, b"beta " * 700, b"gamma"]
    whole = pieces[2] + pieces[0] + pieces[1]
    upload = _create(client, len(whole))
    assert upload.id.startswith("upload_")
    assert upload.object == "upload"
    assert upload.status == "pending"
    assert upload.bytes == len(whole)
    assert upload.filename == "notes.txt"
    assert upload.purpose == "assistants"
    assert upload.expires_at == upload.created_at + 3600
    assert upload.file is None

    parts = [client.uploads.parts.create(upload.id, data=piece) for piece in pieces]
    assert [p.object for p in parts] == ["upload.part"] * 3
    assert {p.upload_id for p in parts} == {upload.id}
    assert all(p.id.startswith("part_") for p in parts)
    assert len(_parts_on_disk(server)) >= 3

    done = client.uploads.complete(
        upload.id,
        part_ids=[parts[2].id, parts[0].id, parts[1].id],
        md5=hashlib.md5(whole).hexdigest(),
    )
    assert done.status == "completed"
    assert done.id == upload.id
    assert done.file is not None
    assert done.file.bytes == len(whole)
    assert done.file.filename == "notes.txt"
    assert done.file.purpose == "assistants"
    assert done.file.expires_at is None
    assert client.files.retrieve(done.file.id).bytes == len(whole)
    assert client.files.content(done.file.id).read() == whole
    assert server.count("upload_parts", upload_id=upload.id) == 0
    assert not [p for p in _parts_on_disk(server) if p.name in {q.id for q in parts}]


def test_the_sdk_chunked_helper(client: openai.OpenAI, tmp_path: Path) -> None:
    content = bytes(range(256)) * 40
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    done = client.uploads.upload_file_chunked(
        file=path,
        mime_type="application/octet-stream",
        purpose="assistants",
        part_size=3000,
        md5=hashlib.md5(content).hexdigest(),
    )
    assert done.status == "completed"
    assert done.file is not None
    assert done.file.filename == "blob.bin"
    assert client.files.content(done.file.id).read() == content

    in_memory = client.uploads.upload_file_chunked(
        file=b"small", filename="s.txt", bytes=5, mime_type="text/plain", purpose="batch"
    )
    assert in_memory.file is not None
    assert client.files.content(in_memory.file.id).read() == b"small"


def test_expires_after_gives_the_file_its_expiry(client: openai.OpenAI) -> None:
    upload = _create(client, 3, expires_after={"anchor": "created_at", "seconds": 7200})
    part = client.uploads.parts.create(upload.id, data=b"abc")
    done = client.uploads.complete(upload.id, part_ids=[part.id])
    assert done.file is not None
    assert done.file.expires_at == done.file.created_at + 7200
    assert client.files.retrieve(done.file.id).expires_at == done.file.expires_at


def test_wrong_sizes_and_part_ids_are_refused(server: Served, client: openai.OpenAI) -> None:
    upload = _create(client, 10)
    first = client.uploads.parts.create(upload.id, data=b"12345")
    second = client.uploads.parts.create(upload.id, data=b"6789")
    other = _create(client, 1)
    foreign = client.uploads.parts.create(other.id, data=b"x")

    short = bad_request(lambda: client.uploads.complete(upload.id, part_ids=[first.id, second.id]))
    assert short["param"] == "part_ids"
    assert "10" in short["message"]
    unknown = bad_request(
        lambda: client.uploads.complete(upload.id, part_ids=[first.id, "part_nope"])
    )
    assert unknown["param"] == "part_ids[1]"
    assert unknown["type"] == "invalid_request_error"
    stolen = bad_request(lambda: client.uploads.complete(upload.id, part_ids=[foreign.id]))
    assert stolen["param"] == "part_ids[0]"
    twice = bad_request(lambda: client.uploads.complete(upload.id, part_ids=[first.id, first.id]))
    assert twice["param"] == "part_ids[1]"

    third = client.uploads.parts.create(upload.id, data=b"0")
    wrong_md5 = bad_request(
        lambda: client.uploads.complete(
            upload.id, part_ids=[first.id, second.id, third.id], md5="0" * 32
        )
    )
    assert wrong_md5["param"] == "md5"
    files_before = server.count("files")
    done = client.uploads.complete(upload.id, part_ids=[first.id, second.id, third.id])
    assert done.file is not None
    assert client.files.content(done.file.id).read() == b"1234567890"
    assert server.count("files") == files_before + 1


def test_completing_twice_and_ended_uploads(server: Served, client: openai.OpenAI) -> None:
    upload = _create(client, 2)
    part = client.uploads.parts.create(upload.id, data=b"ok")
    client.uploads.complete(upload.id, part_ids=[part.id])
    again = bad_request(lambda: client.uploads.complete(upload.id, part_ids=[part.id]))
    assert again["code"] == "invalid_upload_status"
    assert "completed" in again["message"]
    assert "completed" in bad_request(lambda: client.uploads.cancel(upload.id))["message"]
    more = bad_request(lambda: client.uploads.parts.create(upload.id, data=b"x"))
    assert more["code"] == "invalid_upload_status"

    cancelled = _create(client, 4)
    kept = client.uploads.parts.create(cancelled.id, data=b"four")
    shown = client.uploads.cancel(cancelled.id)
    assert shown.status == "cancelled"
    assert shown.file is None
    assert server.count("upload_parts", upload_id=cancelled.id) == 0
    assert not [p for p in _parts_on_disk(server) if p.name == kept.id]
    late = bad_request(lambda: client.uploads.complete(cancelled.id, part_ids=[kept.id]))
    assert "cancelled" in late["message"]
    assert "cancelled" in bad_request(lambda: client.uploads.cancel(cancelled.id))["message"]
    assert bad_request(lambda: client.uploads.parts.create(cancelled.id, data=b"x"))["code"] == (
        "invalid_upload_status"
    )


def test_another_projects_upload_does_not_exist(server: Served, client: openai.OpenAI) -> None:
    upload = _create(client, 1)
    part = client.uploads.parts.create(upload.id, data=b"x")
    intruder = server.client(KEY_B)
    for call in (
        lambda: intruder.uploads.parts.create(upload.id, data=b"y"),
        lambda: intruder.uploads.complete(upload.id, part_ids=[part.id]),
        lambda: intruder.uploads.cancel(upload.id),
        lambda: client.uploads.cancel("upload_missing"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert client.uploads.complete(upload.id, part_ids=[part.id]).status == "completed"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"bytes": MAX_UPLOAD + 1}, "bytes"),
        ({"bytes": -1}, "bytes"),
        ({"purpose": "user_data"}, "purpose"),
        ({"mime_type": ""}, "mime_type"),
        ({"filename": ""}, "filename"),
        ({"expires_after": {"anchor": "created_at", "seconds": 60}}, "expires_after.seconds"),
        ({"expires_after": {"anchor": "last_active_at", "seconds": 3600}}, "expires_after.anchor"),
    ],
)
def test_bad_create_requests(client: openai.OpenAI, change: dict[str, object], param: str) -> None:
    body: dict[str, object] = {
        "bytes": 1,
        "filename": "a.txt",
        "mime_type": "text/plain",
        "purpose": "assistants",
        **change,
    }
    error = bad_request(lambda: client.post("/uploads", body=body, cast_to=object))
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_a_part_over_64_mb_is_refused(client: openai.OpenAI) -> None:
    upload = _create(client, 10)
    with pytest.raises(openai.APIStatusError) as caught:
        client.uploads.parts.create(upload.id, data=io.BytesIO(b"\0" * (64 * 1024 * 1024 + 1)))
    assert caught.value.status_code == 413
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert client.uploads.parts.create(upload.id, data=b"fine").upload_id == upload.id


def test_an_expired_upload_loses_its_parts(server: Served, client: openai.OpenAI) -> None:
    upload = _create(client, 3)
    part = client.uploads.parts.create(upload.id, data=b"old")
    assert [p for p in _parts_on_disk(server) if p.name == part.id]
    server.set_fields("uploads", upload.id, expires_at=1)

    refused = bad_request(lambda: client.uploads.complete(upload.id, part_ids=[part.id]))
    assert "expired" in refused["message"]
    wait_until(
        "the expired upload's parts to be removed",
        lambda: server.count("upload_parts", upload_id=upload.id) == 0,
        timeout=20,
    )
    assert not [p for p in _parts_on_disk(server) if p.name == part.id]
    assert server.count("uploads", id=upload.id, status="expired") == 1
    assert "expired" in bad_request(lambda: client.uploads.cancel(upload.id))["message"]
