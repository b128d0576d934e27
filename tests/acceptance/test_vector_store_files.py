"""/v1/vector_stores/{id}/files and /file_batches through the official SDK, on each
engine: upload_and_poll, attributes, status filters, pages, parsed content,
failures, batches (per-file attributes, limits, cancel), tenancy."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.memory_pipeline import MemoryPipeline
from tests.support.sdk import bad_request, upload
from threadline.settings import Settings
from threadline.testing import serve_in_thread
from threadline.wiring import build_services

KEY = "sk-test-vector-store-files-000000"


def test_upload_and_poll_then_everything_about_the_file(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="files")
    text = b"# Notes\n\nThe launch is on Tuesday."
    added = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("notes.md", text),
        attributes={"author": "ana", "draft": False, "version": 3},
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50},
        },
        poll_interval_ms=20,
    )
    assert added.object == "vector_store.file"
    assert (added.status, added.last_error, added.vector_store_id) == ("completed", None, store.id)
    assert added.usage_bytes == len(text)
    assert added.attributes == {"author": "ana", "draft": False, "version": 3}
    assert client.vector_stores.files.retrieve(added.id, vector_store_id=store.id) == added

    content = client.vector_stores.files.content(added.id, vector_store_id=store.id)
    assert [(part.type, part.text) for part in content] == [("text", text.decode())]

    updated = client.vector_stores.files.update(
        added.id, vector_store_id=store.id, attributes={"author": "bo"}
    )
    assert updated.attributes == {"author": "bo"}
    hit = client.vector_stores.search(store.id, query="launch Tuesday").data[0]
    assert hit.attributes == {"author": "bo"}

    deleted = client.vector_stores.files.delete(added.id, vector_store_id=store.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        added.id,
        "vector_store.file.deleted",
        True,
    )
    assert client.files.retrieve(added.id).id == added.id  # the File itself stays
    assert client.vector_stores.search(store.id, query="launch Tuesday").data == []
    after = client.vector_stores.retrieve(store.id)
    assert (after.file_counts.total, after.usage_bytes) == (0, 0)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(added.id, vector_store_id=store.id)


def test_failures_say_why_and_count(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="failures")
    binary = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("photo.jpg", b"\xff\xd8\xff"), poll_interval_ms=20
    )
    assert binary.status == "failed"
    assert binary.last_error is not None
    assert binary.last_error.code == "unsupported_file"
    broken = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("broken.txt", b"\xff\xfe\xfa bad"), poll_interval_ms=20
    )
    assert broken.status == "failed"
    assert broken.last_error is not None
    assert broken.last_error.code == "invalid_file"
    good = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("ok.txt", b"fine"), poll_interval_ms=20
    )
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed, counts.total) == (2, 1, 3)

    failed = client.vector_stores.files.list(store.id, filter="failed")
    assert sorted(f.id for f in failed) == sorted([binary.id, broken.id])
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="completed")] == [
        good.id
    ]
    assert client.vector_stores.files.list(store.id, filter="cancelled").data == []
    assert client.vector_stores.files.content(broken.id, vector_store_id=store.id).data == []


def test_list_pages(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="pages")
    ids = [upload(client, f"{i}.txt", b"x") for i in range(4)]
    for file_id in ids:
        client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
    first = client.vector_stores.files.list(store.id, limit=3, order="asc")
    assert [f.id for f in first.data] == ids[:3]
    assert first.has_more is True
    rest = client.vector_stores.files.list(store.id, limit=3, order="asc", after=ids[2])
    assert [f.id for f in rest.data] == ids[3:]
    assert rest.has_more is False
    error = bad_request(lambda: client.vector_stores.files.list(store.id, filter="done"))  # type: ignore[arg-type]
    assert error["param"] == "filter"


@pytest.mark.parametrize(
    ("attributes", "param"),
    [
        ({f"k{i}": i for i in range(17)}, "attributes"),
        ({"k" * 65: "v"}, "attributes"),
        ({"k": "v" * 513}, "attributes.k"),
        ({"k": {"nested": 1}}, "attributes.k"),
        ({"k": [1, 2]}, "attributes.k"),
    ],
)
def test_bad_attributes_are_400(
    client: openai.OpenAI, attributes: dict[str, Any], param: str
) -> None:
    store = client.vector_stores.create(name="attributes")
    file_id = upload(client, "a.txt", b"a")
    error = bad_request(
        lambda: client.vector_stores.files.create(
            vector_store_id=store.id, file_id=file_id, attributes=attributes
        )
    )
    assert error["param"] is not None
    assert error["param"].startswith(param)
    assert client.vector_stores.files.list(store.id).data == []


def test_unknown_and_foreign_file_ids_are_400(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    store = client.vector_stores.create(name="refs")
    theirs = upload(other_client, "theirs.txt", b"secret")
    for file_id in ("file-nope", theirs):
        error = bad_request(
            lambda file_id=file_id: client.vector_stores.files.create(
                vector_store_id=store.id, file_id=file_id
            )
        )
        assert (error["param"], error["code"]) == ("file_id", "invalid_file_id")
        error = bad_request(
            lambda file_id=file_id: client.vector_stores.file_batches.create(
                vector_store_id=store.id, file_ids=[file_id]
            )
        )
        assert error["param"] == "file_ids"
    error = bad_request(
        lambda: client.vector_stores.file_batches.create(
            vector_store_id=store.id, files=[{"file_id": theirs}]
        )
    )
    assert error["param"] == "files"
    assert client.vector_stores.retrieve(store.id).file_counts.total == 0


def test_other_projects_files_do_not_exist(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    store = client.vector_stores.create(name="mine")
    added = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("mine.txt", b"private words"), poll_interval_ms=20
    )
    for call in (
        lambda: other_client.vector_stores.files.retrieve(added.id, vector_store_id=store.id),
        lambda: other_client.vector_stores.files.content(added.id, vector_store_id=store.id),
        lambda: other_client.vector_stores.files.delete(added.id, vector_store_id=store.id),
        lambda: other_client.vector_stores.files.update(
            added.id, vector_store_id=store.id, attributes={}
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert client.vector_stores.files.retrieve(added.id, vector_store_id=store.id).status == (
        "completed"
    )


def test_batch_upload_and_poll_and_per_file_attributes(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="batches")
    batch = client.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[("one.txt", b"first file"), ("two.bin", b"\x00\x01")],
        poll_interval_ms=20,
        max_concurrency=2,
    )
    assert batch.id.startswith("vsfb_")
    assert batch.object == "vector_store.files_batch"
    assert batch.status == "completed"
    counts = batch.file_counts
    assert (counts.completed, counts.failed, counts.total) == (1, 1, 2)
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert len(listed.data) == 2
    failed = client.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=store.id, filter="failed"
    )
    assert [f.last_error.code for f in failed if f.last_error] == ["unsupported_file"]

    a, b = upload(client, "a.txt", b"a"), upload(client, "b.txt", b"b")
    per_file = client.vector_stores.file_batches.create(
        vector_store_id=store.id,
        files=[{"file_id": a, "attributes": {"n": 1}}, {"file_id": b, "attributes": {"n": 2}}],
    )
    assert per_file.file_counts.total == 2
    shared = client.vector_stores.file_batches.create(
        vector_store_id=store.id, file_ids=[a], attributes={"shared": True}
    )
    assert client.vector_stores.file_batches.retrieve(shared.id, vector_store_id=store.id).id == (
        shared.id
    )
    got_b = client.vector_stores.files.retrieve(b, vector_store_id=store.id)
    assert got_b.attributes == {"n": 2}
    got_a = client.vector_stores.files.retrieve(a, vector_store_id=store.id)
    assert got_a.attributes == {"shared": True}  # added again: the newer settings hold


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, None),
        ({"file_ids": []}, "file_ids"),
        ({"file_ids": ["file-x"] * 2001}, "file_ids"),
        ({"files": [{"file_id": "file-x"}] * 2001}, "files"),
        ({"file_ids": ["file-x"], "files": [{"file_id": "file-x"}]}, None),
        ({"files": [{"file_id": "f", "colour": 1}]}, "files[0].colour"),
    ],
)
def test_bad_batches_are_400(
    client: openai.OpenAI, body: dict[str, Any], param: str | None
) -> None:
    store = client.vector_stores.create(name="bad-batches")
    error = bad_request(
        lambda: client.post(f"/vector_stores/{store.id}/file_batches", body=body, cast_to=object)
    )
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


class GatedPipeline(MemoryPipeline):
    """Parses only once the test opens the gate: files stay ``in_progress`` until then."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    async def parse(self, data: bytes, filename: str) -> str:
        await asyncio.to_thread(self.gate.wait, 10)
        return await super().parse(data, filename)


@pytest.fixture
def gated(database_url: str, tmp_path: Path) -> Iterator[tuple[openai.OpenAI, GatedPipeline]]:
    """A server whose ingestion waits for the test (one file at a time)."""
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "database_url": database_url,
            "api_keys": KEY,
            "model_backend": "scripted",
            "ingest_concurrency": 1,
        }
    )
    pipeline = GatedPipeline()
    with serve_in_thread(settings, build_services(settings, pipeline=pipeline)) as base:
        sdk = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0)
        try:
            yield sdk, pipeline
        finally:
            pipeline.gate.set()
            sdk.close()


ENGINES = pytest.mark.parametrize("engine", ["sqlite", "postgres"])


@ENGINES
def test_in_progress_until_ingested(gated: tuple[openai.OpenAI, GatedPipeline]) -> None:
    client, pipeline = gated
    store = client.vector_stores.create(name="slow")
    added = client.vector_stores.files.create(
        vector_store_id=store.id, file_id=upload(client, "slow.txt", b"slow words")
    )
    assert added.status == "in_progress"
    waiting = client.vector_stores.retrieve(store.id)
    assert waiting.status == "in_progress"
    assert (waiting.file_counts.in_progress, waiting.file_counts.total) == (1, 1)
    assert client.vector_stores.files.content(added.id, vector_store_id=store.id).data == []
    pipeline.gate.set()
    done = client.vector_stores.files.poll(
        added.id, vector_store_id=store.id, poll_interval_ms=20, max_wait_seconds=10
    )
    assert done.status == "completed"
    assert client.vector_stores.retrieve(store.id).status == "completed"


@ENGINES
def test_cancel_batch_cancels_files_still_in_progress(
    gated: tuple[openai.OpenAI, GatedPipeline],
) -> None:
    client, pipeline = gated
    store = client.vector_stores.create(name="cancel")
    ids = [upload(client, f"{i}.txt", f"file {i}".encode()) for i in range(3)]
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids)
    assert batch.status == "in_progress"
    assert batch.file_counts.in_progress == 3
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled"
    assert (cancelled.file_counts.cancelled, cancelled.file_counts.in_progress) == (3, 0)
    pipeline.gate.set()
    files = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert {f.status for f in files} == {"cancelled"}
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.cancelled, counts.total) == (3, 3)
    # Whatever was being ingested when the batch was cancelled stays out of search.
    client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("later.txt", b"later"), poll_interval_ms=20
    )
    assert client.vector_stores.search(store.id, query="file").data == []
    assert (
        client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).status
        == "cancelled"
    )
