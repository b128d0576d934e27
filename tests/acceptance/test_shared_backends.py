"""One ``threadline serve`` holding every role on the shared backends
(procrastinate and Redis Streams): the official SDK's streamed run and cancel
work as they do on the in-process ones, files are ingested through the queue,
and ``/readyz`` checks all three."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import httpx
import openai
import pytest
from redis import Redis

from tests.support.servers import KEY_A, make_settings, postgres_database
from threadline.testing import serve_in_thread

pytestmark = pytest.mark.postgres
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prefix = f"test-{secrets.token_hex(6)}:"
    for database_url in postgres_database():
        settings = make_settings(
            tmp_path_factory.mktemp("shared"),
            database_url,
            queue="procrastinate",
            redis_url=REDIS_URL,
            redis_prefix=prefix,
        )
        try:
            with serve_in_thread(settings) as served:
                yield served
        finally:
            redis = Redis.from_url(REDIS_URL)
            keys = list(redis.scan_iter(match=f"{prefix}*"))
            if keys:
                redis.delete(*keys)
            redis.close()


def test_ready_on_postgresql_redis_and_procrastinate(url: str) -> None:
    assert httpx.get(url.removesuffix("/v1") + "/readyz").json() == {"status": "ready"}


def test_a_streamed_run_and_a_cancel(url: str) -> None:
    with openai.OpenAI(base_url=url, api_key=KEY_A, max_retries=0) as sdk:
        assistant = sdk.beta.assistants.create(model="gpt-4o")
        thread = sdk.beta.threads.create(
            messages=[
                {
                    "role": "user",
                    "content": json.dumps({"scripted": [{"text": "one two three", "chunks": 3}]}),
                }
            ]
        )
        with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as s:
            deltas = [e.data.delta for e in s if e.event == "thread.message.delta"]
            run = s.get_final_run()
        assert run.status == "completed"
        text = "".join(
            part.text.value or "" for d in deltas for part in d.content or [] if part.type == "text"
        )
        assert text == "one two three"
        hanging = sdk.beta.threads.create(
            messages=[{"role": "user", "content": json.dumps({"scripted": [{"hang": True}]})}]
        )
        run = sdk.beta.threads.runs.create(hanging.id, assistant_id=assistant.id)
        sdk.beta.threads.runs.cancel(run.id, thread_id=hanging.id)
        final = sdk.beta.threads.runs.poll(run.id, thread_id=hanging.id, poll_interval_ms=50)
        assert final.status == "cancelled"


def test_files_are_ingested_through_the_queue_and_searched(url: str) -> None:
    with openai.OpenAI(base_url=url, api_key=KEY_A, max_retries=0) as sdk:
        file = sdk.files.create(
            file=("notes.txt", b"The harbour opens at dawn. Ferries leave hourly."),
            purpose="assistants",
        )
        store = sdk.vector_stores.create(name="notes")
        done = sdk.vector_stores.files.create_and_poll(
            file_id=file.id, vector_store_id=store.id, poll_interval_ms=50
        )
        assert done.status == "completed"
        hits = sdk.vector_stores.search(store.id, query="When do ferries leave?")
        assert [hit.file_id for hit in hits.data] == [file.id]
