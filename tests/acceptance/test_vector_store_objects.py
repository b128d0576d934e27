"""Every vector store object, as the server sends it to the official SDK, against
OpenAI's own schemas (``tests/support/spec_schemas.json``), on each engine: stores,
their files and file batches, search results, file content, lists and deletions.
Where the server differs from the spec it says so in its own document
(``api.openapi.DEVIATIONS``): those objects are checked against that, and an
object that has every field set is checked against the spec alone."""

from __future__ import annotations

from typing import Any

import openai

from tests.support.spec_schema import assert_schema, assert_served, schema_errors


def body(raw: Any) -> Any:
    """The JSON the server sent for a ``with_raw_response`` call."""
    return raw.http_response.json()


def test_stores_and_their_lists_and_deletions(client: openai.OpenAI) -> None:
    stores = client.vector_stores.with_raw_response
    full = body(
        stores.create(
            name="contract",
            metadata={"k": "v"},
            expires_after={"anchor": "last_active_at", "days": 3},
        )
    )
    assert_schema(full, "VectorStoreObject")  # nothing unset: the spec alone
    bare = body(stores.create())
    assert_served(bare, "VectorStoreObject")
    assert bare["name"] is None
    assert bare["expires_after"] is None
    assert schema_errors(bare, "VectorStoreObject")  # what DEVIATIONS is for
    assert_schema(body(stores.retrieve(full["id"])), "VectorStoreObject")
    modified = body(stores.update(full["id"], name="renamed"))
    assert_schema(modified, "VectorStoreObject")
    assert modified["name"] == "renamed"
    listed = body(stores.list(limit=2))
    assert_served(listed, "ListVectorStoresResponse")
    assert listed["first_id"] == bare["id"]
    assert len(listed["data"]) == 2
    deleted = body(stores.delete(bare["id"]))
    assert_schema(deleted, "DeleteVectorStoreResponse")
    assert deleted == {"id": bare["id"], "object": "vector_store.deleted", "deleted": True}


def test_store_files_content_search_and_deletion(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="files")
    file_id = client.files.create(
        file=("notes.txt", b"the launch is on Tuesday at noon"), purpose="assistants"
    ).id
    files = client.vector_stores.files.with_raw_response
    created = body(
        files.create(
            vector_store_id=store.id,
            file_id=file_id,
            attributes={"team": "ops", "year": 2025, "draft": False},
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
            },
        )
    )
    assert_schema(created, "VectorStoreFileObject")
    done = client.vector_stores.files.poll(file_id, vector_store_id=store.id, poll_interval_ms=20)
    assert done.status == "completed"
    retrieved = body(files.retrieve(file_id, vector_store_id=store.id))
    assert_schema(retrieved, "VectorStoreFileObject")
    assert retrieved["chunking_strategy"]["static"]["max_chunk_size_tokens"] == 200
    updated = body(files.update(file_id, vector_store_id=store.id, attributes={"team": "eng"}))
    assert_schema(updated, "VectorStoreFileObject")
    assert updated["attributes"] == {"team": "eng"}
    listed = body(files.list(store.id))
    assert_schema(listed, "ListVectorStoreFilesResponse")
    assert [f["id"] for f in listed["data"]] == [file_id]
    content = body(files.content(file_id, vector_store_id=store.id))
    assert_schema(content, "VectorStoreFileContentResponse")
    assert "Tuesday" in "".join(part["text"] for part in content["data"])

    found = body(
        client.vector_stores.with_raw_response.search(
            store.id,
            query="when is the launch",
            filters={"type": "eq", "key": "team", "value": "eng"},
        )
    )
    assert_schema(found, "VectorStoreSearchResultsPage")
    assert found["data"][0]["file_id"] == file_id
    assert found["data"][0]["attributes"] == {"team": "eng"}

    failed = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("photo.jpg", b"\xff\xd8\xff"), poll_interval_ms=20
    )
    failure = body(files.retrieve(failed.id, vector_store_id=store.id))
    assert_schema(failure, "VectorStoreFileObject")
    assert failure["last_error"]["code"] == "unsupported_file"

    deleted = body(files.delete(file_id, vector_store_id=store.id))
    assert_schema(deleted, "DeleteVectorStoreFileResponse")
    assert deleted == {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


def test_file_batches(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="batches")
    ids = [
        client.files.create(file=(f"{i}.txt", f"part {i}".encode()), purpose="assistants").id
        for i in range(2)
    ]
    batches = client.vector_stores.file_batches.with_raw_response
    created = body(batches.create(vector_store_id=store.id, file_ids=ids))
    assert_schema(created, "VectorStoreFileBatchObject")
    assert created["file_counts"]["total"] == 2
    client.vector_stores.file_batches.poll(
        created["id"], vector_store_id=store.id, poll_interval_ms=20
    )
    retrieved = body(batches.retrieve(created["id"], vector_store_id=store.id))
    assert_schema(retrieved, "VectorStoreFileBatchObject")
    assert retrieved["status"] == "completed"
    listed = body(batches.list_files(created["id"], vector_store_id=store.id))
    assert_schema(listed, "ListVectorStoreFilesResponse")
    assert sorted(f["id"] for f in listed["data"]) == sorted(ids)
    per_file = body(
        batches.create(
            vector_store_id=store.id,
            files=[{"file_id": ids[0], "attributes": {"n": 1}}],
        )
    )
    assert_schema(per_file, "VectorStoreFileBatchObject")


def test_an_empty_list_is_the_one_declared_difference(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="empty")
    empty = body(client.vector_stores.files.with_raw_response.list(store.id))
    assert_served(empty, "ListVectorStoreFilesResponse")
    assert (empty["first_id"], empty["last_id"], empty["data"]) == (None, None, [])
    assert schema_errors(empty, "ListVectorStoreFilesResponse")
