"""/v1/files on the S3 blob store (``THREADLINE_BLOB_STORE=s3``), through the
official SDK, against moto's S3-compatible server on loopback: uploads (one
request, and multipart), downloads, deletes, limits, a delete during a download,
and two server processes sharing one bucket."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.object_store import Bucket, moto_server, new_bucket
from tests.support.polling import wait_until
from tests.support.servers import (
    ENGINES,
    KEY_A,
    STATIC_KEYS,
    Served,
    make_settings,
    postgres_database,
    serve,
)
from threadline.storage.s3_blobs import PART_BYTES
from threadline.testing import free_port, serve_in_thread

THREADLINE = Path(sys.executable).with_name("threadline")
LIMIT = 2 * PART_BYTES + PART_BYTES // 2


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_database()


@pytest.fixture(scope="module", params=ENGINES)
def on_s3(
    request: pytest.FixtureRequest, endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, Bucket]]:
    bucket = new_bucket(endpoint)
    data_dir = tmp_path_factory.mktemp(f"s3-{request.param}")
    with serve(request.param, data_dir, max_upload_bytes=LIMIT, **bucket.settings()) as served:
        yield served, bucket


def test_upload_download_delete(on_s3: tuple[Served, Bucket]) -> None:
    served, bucket = on_s3
    client = served.client()
    content = bytes(range(256)) * 100
    uploaded = client.files.create(file=("data.bin", content), purpose="assistants")
    assert uploaded.bytes == len(content)
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).read() == content
    key = bucket.prefix + uploaded.id
    assert key in bucket.stored()
    assert bucket.read(key) == content
    assert served.stored_files() == []  # nothing on the server's disk

    assert client.files.delete(uploaded.id).deleted is True
    assert key not in bucket.stored()
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)


def test_empty_file(on_s3: tuple[Served, Bucket]) -> None:
    client = on_s3[0].client()
    uploaded = client.files.create(file=("empty.txt", b""), purpose="assistants")
    assert uploaded.bytes == 0
    assert client.files.content(uploaded.id).read() == b""


def test_a_large_upload_goes_in_parts(on_s3: tuple[Served, Bucket]) -> None:
    served, bucket = on_s3
    client = served.client()
    content = os.urandom(2 * PART_BYTES + 12345)  # three parts, the last one short
    uploaded = client.files.create(file=("big.bin", content), purpose="assistants")
    assert uploaded.bytes == len(content)
    assert client.files.content(uploaded.id).read() == content
    assert bucket.read(bucket.prefix + uploaded.id) == content
    assert bucket.unfinished_uploads() == []


def test_over_the_limit_keeps_nothing(on_s3: tuple[Served, Bucket]) -> None:
    served, bucket = on_s3
    client = served.client()
    stored, rows = bucket.stored(), served.count("files")
    with pytest.raises(openai.APIStatusError) as caught:
        client.files.create(file=("huge.bin", b"x" * (LIMIT + 1)), purpose="assistants")
    assert caught.value.status_code == 413
    assert caught.value.body["code"] == "file_too_large"
    assert bucket.stored() == stored
    assert bucket.unfinished_uploads() == []  # the parts sent before the limit are gone
    assert served.count("files") == rows


def test_an_upload_in_parts_is_joined_in_the_bucket(on_s3: tuple[Served, Bucket]) -> None:
    served, bucket = on_s3
    client = served.client()
    pieces = [os.urandom(PART_BYTES + 100), os.urandom(PART_BYTES // 2), os.urandom(777)]
    content = b"".join(pieces)
    upload = client.uploads.create(
        bytes=len(content), filename="joined.bin", mime_type="text/plain", purpose="assistants"
    )
    parts = [client.uploads.parts.create(upload.id, data=piece) for piece in pieces]
    done = client.uploads.complete(upload.id, part_ids=[part.id for part in parts])
    assert done.status == "completed"
    assert done.file is not None
    assert client.files.content(done.file.id).read() == content
    assert bucket.read(bucket.prefix + done.file.id) == content
    assert bucket.unfinished_uploads() == []


def test_delete_during_a_download_leaves_the_download_whole(
    on_s3: tuple[Served, Bucket],
) -> None:
    served, bucket = on_s3
    client = served.client()
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
    assert bucket.prefix + uploaded.id not in bucket.stored()


@pytest.mark.postgres
def test_one_process_uploads_another_reads(
    endpoint: str, tmp_path: Path, postgres_url: str
) -> None:
    """Two API processes, each with a data directory of its own, on one database and
    one bucket: what one stores the other serves, and deletes."""
    bucket = new_bucket(endpoint)
    port = free_port()
    env = os.environ | {
        "THREADLINE_DATA_DIR": str(tmp_path / "first"),
        "THREADLINE_DATABASE_URL": postgres_url,
        "THREADLINE_API_KEYS": STATIC_KEYS,
        "THREADLINE_MODEL_BACKEND": "scripted",
        "THREADLINE_EMBEDDER": "hash",
        **bucket.env(),
    }
    log = tmp_path / "first.log"
    with log.open("wb") as out:
        first = subprocess.Popen(
            [str(THREADLINE), "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    try:

        def ready() -> bool:
            assert first.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).is_success
            except httpx.TransportError:
                return False

        wait_until("the first server to be ready", ready, 60, log=log.read_text)
        second_settings = make_settings(tmp_path / "second", postgres_url, **bucket.settings())
        with (
            openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY_A, max_retries=0
            ) as one,
            serve_in_thread(second_settings) as second_url,
            openai.OpenAI(base_url=second_url, api_key=KEY_A, max_retries=0) as other,
        ):
            content = os.urandom(PART_BYTES + 1)
            uploaded = one.files.create(file=("shared.bin", content), purpose="assistants")
            assert other.files.retrieve(uploaded.id).bytes == len(content)
            assert other.files.content(uploaded.id).read() == content
            back = other.files.create(file=("back.txt", b"from the second"), purpose="batch")
            assert one.files.content(back.id).read() == b"from the second"
            assert other.files.delete(uploaded.id).deleted is True
            with pytest.raises(openai.NotFoundError):
                one.files.content(uploaded.id)
        assert not (tmp_path / "first" / "files").exists()
        assert not (tmp_path / "second" / "files").exists()
    finally:
        first.terminate()
        first.wait(30)


def test_readiness_checks_the_bucket(endpoint: str, tmp_path: Path) -> None:
    """/readyz says 503 naming the object store while its bucket cannot be
    reached, and ready once it can."""
    bucket = new_bucket(endpoint)
    settings = make_settings(tmp_path, **bucket.settings())
    with serve_in_thread(settings) as url:
        ready = url.removesuffix("/v1") + "/readyz"
        assert httpx.get(ready, timeout=10).json() == {"status": "ready"}
        with closing(bucket.client()) as s3:
            s3.delete_bucket(Bucket=bucket.name)
        response = httpx.get(ready, timeout=10)
        assert response.status_code == 503
        assert response.json()["error"]["message"].startswith("The object store cannot be reached")
        with closing(bucket.client()) as s3:
            s3.create_bucket(Bucket=bucket.name)
        assert httpx.get(ready, timeout=10).json() == {"status": "ready"}
