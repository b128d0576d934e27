"""Retrieval quality on the labelled set: recall@5 and MRR@10, dense vs lexical vs hybrid.

    .venv/bin/python bench/retrieval_quality.py
    .venv/bin/python bench/retrieval_quality.py --embedder hash   # no model, a smoke run

Ingests the 50 documents of ``bench/retrieval_data`` (see ``retrieval_dataset.py``)
the way the server does — parse, chunk with the runs' tokenizer (o200k_base), embed
with the local embedder — into a ``ChunkIndex`` on a temporary SQLite database, then
runs the 204 queries in each search mode and scores them with ``ir-measures``.

Relevance is judged on passages, not chunks: each query lists short exact passages,
and a retrieved chunk counts for every passage of the query it contains (the first
time only). So overlapping chunks holding the same passage are not double counted,
and the numbers compare across chunkings. Printed per chunking strategy: auto
(800/400, the default) and static 100/50 (the smallest the spec allows: 2-4 chunks a
document, a harder ranking).

Not a test: nothing is asserted; the issue's target is hybrid above both others.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import ir_measures
from ir_measures import Qrel, ScoredDoc
from retrieval_dataset import Query, check, load_queries, materialise, squash

from threadline.models.tokens import get_encoding
from threadline.retrieval.chunking import ChunkingStrategy, OrdinaryTokenizer, chunk
from threadline.retrieval.embedders import Embedder, HashEmbedder, LocalEmbedder
from threadline.retrieval.index import IndexedChunk, open_index
from threadline.storage.db import Database

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")
STORE = "vs_bench_quality"
MEASURES = [ir_measures.parse_measure("R@5"), ir_measures.parse_measure("RR@10")]


async def build_index(
    db: Database,
    texts: dict[str, str],
    strategy: ChunkingStrategy,
    embedder: Embedder,
) -> tuple[Any, int]:
    index = open_index(db)
    if inspect.isawaitable(index):  # tolerate an async factory
        index = await index
    tokenizer = OrdinaryTokenizer(get_encoding("o200k_base"))
    total = 0
    for number, (filename, text) in enumerate(sorted(texts.items())):
        pieces = chunk(text, strategy, tokenizer)
        vectors = await embedder.embed([piece.text for piece in pieces])
        file_id = f"file-bench{number:03d}"
        await index.add(
            STORE,
            [
                IndexedChunk(
                    file_id=file_id,
                    filename=filename,
                    chunk_index=piece.index,
                    text=piece.text,
                    embedding=vectors[row],
                    attributes={"format": filename.rsplit(".", 1)[1]},
                )
                for row, piece in enumerate(pieces)
            ],
        )
        total += len(pieces)
    return index, total


def qrels(queries: Sequence[Query]) -> list[Qrel]:
    return [Qrel(q.id, passage_id, 1) for q in queries for passage_id in q.passage_ids()]


def run_entries(query: Query, hits: Sequence[Any]) -> list[ScoredDoc]:
    """Ranked hits as ir-measures docs: a hit holding a not-yet-found passage of the
    query is that passage; any other hit is its own (irrelevant) chunk id."""
    found: set[int] = set()
    entries = []
    for rank, hit in enumerate(hits):
        score = float(len(hits) - rank)
        text = squash(hit.text)
        new = [
            n
            for n, (filename, passage) in enumerate(query.relevant)
            if n not in found and hit.filename == filename and squash(passage) in text
        ]
        if new:
            found.update(new)
            entries.extend(ScoredDoc(query.id, f"{query.id}:{n}", score) for n in new)
        else:
            entries.append(ScoredDoc(query.id, f"{hit.file_id}#{hit.chunk_index}", score))
    return entries


async def evaluate(
    index: Any, queries: Sequence[Query], embedder: Embedder
) -> dict[Mode, dict[str, dict[str, float]]]:
    vectors = await embedder.embed([q.text for q in queries])
    runs: dict[Mode, list[ScoredDoc]] = {mode: [] for mode in MODES}
    for row, query in enumerate(queries):
        for mode in MODES:
            hits = await index.search(
                [STORE], query=query.text, query_embedding=vectors[row], max_results=10, mode=mode
            )
            runs[mode].extend(run_entries(query, hits))
    results: dict[Mode, dict[str, dict[str, float]]] = {}
    for mode in MODES:
        results[mode] = {}
        for label, subset in (
            ("all", queries),
            ("keyword", [q for q in queries if q.type == "keyword"]),
            ("paraphrase", [q for q in queries if q.type == "paraphrase"]),
        ):
            ids = {q.id for q in subset}
            scores = ir_measures.calc_aggregate(
                MEASURES, qrels(subset), [d for d in runs[mode] if d.query_id in ids]
            )
            results[mode][label] = {str(m): float(v) for m, v in scores.items()}
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", choices=["local", "hash"], default="local")
    args = parser.parse_args()
    embedder: Embedder = LocalEmbedder() if args.embedder == "local" else HashEmbedder(384)
    files = materialise()
    queries = load_queries()
    texts = check(files, queries)
    print(f"{len(files)} documents, {len(queries)} queries, embedder {embedder.name}\n")
    for label, strategy in (
        ("auto (800/400)", ChunkingStrategy.auto()),
        ("static 100/50", ChunkingStrategy.static(100, 50)),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
            await db.migrate()
            try:
                started = time.perf_counter()
                index, chunks = await build_index(db, texts, strategy, embedder)
                built = time.perf_counter() - started
                results = await evaluate(index, queries, embedder)
            finally:
                await db.dispose()
        print(f"chunking {label}: {chunks} chunks, ingested in {built:.1f}s")
        print(f"  {'mode':8} {'R@5':>6} {'MRR@10':>7}   {'keyword R@5/MRR':>16}   "
              f"{'paraphrase R@5/MRR':>18}")  # fmt: skip
        for mode in MODES:
            row = results[mode]
            cells = [
                f"{row[k]['R@5']:.3f}/{row[k]['RR@10']:.3f}" for k in ("keyword", "paraphrase")
            ]
            print(
                f"  {mode:8} {row['all']['R@5']:6.3f} {row['all']['RR@10']:7.3f}   "
                f"{cells[0]:>16}   {cells[1]:>18}"
            )
        hybrid = results["hybrid"]["all"]
        beats = all(
            hybrid[m] > results[other]["all"][m] for m in ("R@5", "RR@10") for other in MODES[:2]
        )
        print(f"  hybrid beats dense and lexical on both measures: {'yes' if beats else 'NO'}\n")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
