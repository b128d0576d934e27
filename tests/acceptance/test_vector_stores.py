"""/v1/vector_stores through the official SDK, on each engine: the stores' life,
their counts as ingestion goes, pagination, search and its validation, tenancy."""

from __future__ import annotations

from typing import Any, cast

import openai
import pytest

from tests.support.sdk import bad_request, upload


def test_create_retrieve_modify_delete(client: openai.OpenAI) -> None:
    created = client.vector_stores.create(
        name="handbook",
        description="what new hires read",
        metadata={"team": "ops"},
        expires_after={"anchor": "last_active_at", "days": 7},
    )
    assert created.id.startswith("vs_")
    assert created.object == "vector_store"
    assert (created.name, created.metadata, created.status) == (
        "handbook",
        {"team": "ops"},
        "completed",
    )
    assert created.file_counts.total == 0
    assert created.usage_bytes == 0
    assert created.last_active_at is not None
    assert created.expires_after is not None
    assert created.expires_after.days == 7
    assert created.expires_at == created.last_active_at + 7 * 86400
    assert client.vector_stores.retrieve(created.id) == created

    modified = client.vector_stores.update(
        created.id, name="manual", metadata={"team": "eng"}, expires_after=None
    )
    assert (modified.name, modified.metadata) == ("manual", {"team": "eng"})
    assert modified.expires_after is None
    assert modified.expires_at is None

    kept = client.files.create(file=("kept.txt", b"kept"), purpose="assistants")
    client.vector_stores.files.create_and_poll(
        file_id=kept.id, vector_store_id=created.id, poll_interval_ms=20
    )
    deleted = client.vector_stores.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        created.id,
        "vector_store.deleted",
        True,
    )
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.list(created.id)
    assert client.files.retrieve(kept.id).id == kept.id  # its files' Files stay


def test_files_given_at_creation_are_ingested_and_counted(client: openai.OpenAI) -> None:
    text = b"Threadline stores vector stores in its own database."
    good = upload(client, "about.md", text)
    bad = upload(client, "image.png", b"\x89PNG")
    store = client.vector_stores.create(
        file_ids=[good, bad],
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 100},
        },
    )
    assert store.file_counts.total == 2
    for file_id in (good, bad):
        client.vector_stores.files.poll(
            file_id, vector_store_id=store.id, poll_interval_ms=20, max_wait_seconds=10
        )
    done = client.vector_stores.retrieve(store.id)
    assert done.status == "completed"
    counts = done.file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.total) == (1, 1, 0, 2)
    assert done.usage_bytes == len(text)
    good_file = client.vector_stores.files.retrieve(good, vector_store_id=store.id)
    assert good_file.chunking_strategy is not None
    assert good_file.chunking_strategy.static.max_chunk_size_tokens == 200  # type: ignore[union-attr]


def test_list_pages(client: openai.OpenAI) -> None:
    ids = [client.vector_stores.create(name=f"page-{i}").id for i in range(5)]
    first = client.vector_stores.list(limit=2)
    assert [s.id for s in first.data] == ids[::-1][:2]
    assert first.has_more is True
    after = client.vector_stores.list(limit=2, after=ids[3])
    assert [s.id for s in after.data] == [ids[2], ids[1]]
    ascending = client.vector_stores.list(limit=3, order="asc", after=ids[0])
    assert [s.id for s in ascending.data] == ids[1:4]
    error = bad_request(lambda: client.vector_stores.list(after="vs_nope"))
    assert error["param"] == "after"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"expires_after": {"anchor": "last_active_at", "days": 0}}, "expires_after.days"),
        ({"expires_after": {"anchor": "last_active_at", "days": 366}}, "expires_after.days"),
        ({"expires_after": {"anchor": "created_at", "days": 3}}, "expires_after.anchor"),
        (
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0},
                }
            },
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0},
                }
            },
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 401},
                }
            },
            "chunking_strategy.static",
        ),
        ({"chunking_strategy": {"type": "semantic"}}, "chunking_strategy.type"),
        ({"file_ids": ["file-nope"]}, "file_ids"),
        ({"file_ids": ["file-x"] * 501}, "file_ids"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_create_is_400_naming_the_param(
    client: openai.OpenAI, body: dict[str, Any], param: str
) -> None:
    before = len(client.vector_stores.list(limit=100).data)
    error = bad_request(lambda: client.post("/vector_stores", body=body, cast_to=object))
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert len(client.vector_stores.list(limit=100).data) == before


def test_search_finds_and_shapes_results(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="search")
    client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("fruit.txt", b"Bananas are yellow and curved."),
        attributes={"kind": "fruit", "year": 2024},
        poll_interval_ms=20,
    )
    client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("sky.txt", b"The sky is blue."), poll_interval_ms=20
    )
    page = client.vector_stores.search(store.id, query="yellow bananas")
    assert page.search_query == ["yellow bananas"]  # type: ignore[attr-defined]
    hit = page.data[0]  # the best match first; every file may follow with a lower score
    assert (hit.filename, hit.attributes) == ("fruit.txt", {"kind": "fruit", "year": 2024})
    assert all(other.score < hit.score for other in page.data[1:])
    assert 0 < hit.score <= 1
    assert hit.content[0].type == "text"
    assert "Bananas" in hit.content[0].text
    raw = client.vector_stores.with_raw_response.search(store.id, query="yellow bananas")
    assert raw.http_response.json()["data"][0]["attributes"] == {"kind": "fruit", "year": 2024}
    assert '"year":2024}' in raw.http_response.text  # a whole number stays one
    both = client.vector_stores.search(store.id, query=["bananas", "sky"], max_num_results=5)
    assert sorted(h.filename for h in both.data) == ["fruit.txt", "sky.txt"]
    assert (
        len(client.vector_stores.search(store.id, query=["bananas", "sky"], max_num_results=1).data)
        == 1
    )
    filtered = client.vector_stores.search(
        store.id,
        query="bananas",
        filters={
            "type": "and",
            "filters": [
                {"type": "eq", "key": "kind", "value": "fruit"},
                {"type": "gte", "key": "year", "value": 2020},
            ],
        },
        ranking_options={"ranker": "auto", "score_threshold": 0.5},
        rewrite_query=False,
    )
    assert filtered.search_query == ["bananas"]  # type: ignore[attr-defined]
    assert client.vector_stores.retrieve(store.id).last_active_at is not None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "query"),
        ({"query": 3}, "query"),
        ({"query": []}, "query"),
        ({"query": "q", "max_num_results": 0}, "max_num_results"),
        ({"query": "q", "max_num_results": 51}, "max_num_results"),
        (
            {"query": "q", "ranking_options": {"score_threshold": 1.5}},
            "ranking_options.score_threshold",
        ),
        ({"query": "q", "ranking_options": {"ranker": "best"}}, "ranking_options.ranker"),
        ({"query": "q", "filters": {"type": "like", "key": "k", "value": "v"}}, "filters.type"),
        ({"query": "q", "filters": {"type": "eq", "key": "k"}}, "filters.value"),
        (
            {
                "query": "q",
                "filters": {
                    "type": "and",
                    "filters": [{"type": "eq", "key": "k", "value": {"a": 1}}],
                },
            },
            "filters.filters[0].value",
        ),
        ({"query": "q", "rewrite_query": "yes"}, "rewrite_query"),
    ],
)
def test_bad_search_is_400(client: openai.OpenAI, body: dict[str, Any], param: str) -> None:
    store = client.vector_stores.create(name="bad-search")
    error = bad_request(
        lambda: client.post(f"/vector_stores/{store.id}/search", body=body, cast_to=object)
    )
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_other_projects_stores_do_not_exist(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    mine = client.vector_stores.create(name="private")
    for call in (
        lambda: other_client.vector_stores.retrieve(mine.id),
        lambda: other_client.vector_stores.update(mine.id, name="stolen"),
        lambda: other_client.vector_stores.delete(mine.id),
        lambda: other_client.vector_stores.search(mine.id, query="x"),
        lambda: other_client.vector_stores.files.list(mine.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        body = cast("dict[str, Any]", caught.value.body)
        assert body["message"] == f"No vector store found with id '{mine.id}'."
    assert mine.id not in [s.id for s in other_client.vector_stores.list(limit=100)]
    theirs = upload(other_client, "theirs.txt", b"secret")
    error = bad_request(lambda: client.vector_stores.create(file_ids=[theirs]))
    assert (error["param"], error["code"]) == ("file_ids", "invalid_file_id")
    assert client.vector_stores.retrieve(mine.id).name == "private"


def test_deleting_a_store_removes_its_rows(own_server: Any) -> None:
    client = own_server.client()
    store = client.vector_stores.create(name="gone")
    file_id = upload(client, "gone.txt", b"gone soon")
    client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[file_id], poll_interval_ms=20
    )
    assert own_server.count("vector_store_files", vector_store_id=store.id) == 1
    assert own_server.count("vector_store_file_batches", vector_store_id=store.id) == 1
    client.vector_stores.delete(store.id)
    assert own_server.count("vector_stores", id=store.id) == 0
    assert own_server.count("vector_store_files", vector_store_id=store.id) == 0
    assert own_server.count("vector_store_file_batches", vector_store_id=store.id) == 0
    assert own_server.count("files", id=file_id) == 1


def test_whole_numbers_written_as_decimals_are_integers(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 400.0, "chunk_overlap_tokens": 100.0},  # type: ignore[typeddict-item]
        },
        expires_after={"anchor": "last_active_at", "days": 7.0},  # type: ignore[typeddict-item]
    )
    assert store.expires_after is not None
    assert store.expires_after.days == 7
