"""Ingestion throughput: parse + chunk + embed with the local embedder, on this machine.

    .venv/bin/python bench/ingestion.py                 # ~0.25 MB of text, auto chunking
    .venv/bin/python bench/ingestion.py --megabytes 1

Two parts. Parsing: the retrieval set's 50 documents (``bench/retrieval_data``), in
all seven formats, parsed 20 times. Ingestion end to end: files of about 50 kB of
Markdown made from those documents' text, until ``--megabytes`` of text, each
parsed, chunked (auto: 800 tokens, 400 overlap) and embedded as the server does a
file. Prints the time of each stage, chunks per second and MB of text per minute,
the same per CPU-second (what the pipeline costs, whatever else the machine runs),
and the process's peak memory.

The embedder's cost is per chunk, not per byte: all-MiniLM-L6-v2 reads at most 256
word pieces, so an 800-token chunk costs as much as any other long one. Not a test:
nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time

from retrieval_dataset import materialise

from threadline.models.tokens import get_encoding
from threadline.retrieval.chunking import ChunkingStrategy, OrdinaryTokenizer, chunk
from threadline.retrieval.embedders import LocalEmbedder
from threadline.retrieval.parsers import parse


def large_files(texts: list[str], megabytes: float) -> list[tuple[str, bytes]]:
    """Markdown files of ~50 kB from the set's texts, ``megabytes`` of text in all."""
    files: list[tuple[str, bytes]] = []
    total, current, number = 0, [], 0
    while total < megabytes * 1_000_000:
        for text in texts:
            current.append(f"## Section {number}\n\n{text}")
            number += 1
            size = sum(len(part) for part in current)
            if size >= 50_000:
                files.append((f"big-{len(files)}.md", "\n\n".join(current).encode()))
                total += size
                current = []
    return files


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=0.25)
    args = parser.parse_args()
    documents = materialise()
    started = time.perf_counter()
    for _ in range(20):
        texts = [parse(data, name).text for name, data in documents.items()]
    parse_mixed_s = (time.perf_counter() - started) / 20
    mixed_mb = sum(len(data) for data in documents.values()) / 1e6

    files = large_files(texts, args.megabytes)
    tokenizer = OrdinaryTokenizer(get_encoding("o200k_base"))
    embedder = LocalEmbedder()
    started = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - started

    parse_s = chunk_s = embed_s = 0.0
    text_bytes = chunks = 0
    cpu_started = time.process_time()
    for name, data in files:
        t0 = time.perf_counter()
        text = parse(data, name).text
        t1 = time.perf_counter()
        pieces = chunk(text, ChunkingStrategy.auto(), tokenizer)
        t2 = time.perf_counter()
        await embedder.embed([piece.text for piece in pieces])
        t3 = time.perf_counter()
        parse_s, chunk_s, embed_s = parse_s + t1 - t0, chunk_s + t2 - t1, embed_s + t3 - t2
        text_bytes += len(text.encode())
        chunks += len(pieces)
    total_s = parse_s + chunk_s + embed_s
    cpu_s = time.process_time() - cpu_started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cpus: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}")
    print(f"parsing the 50 mixed documents ({mixed_mb:.2f} MB): {parse_mixed_s * 1000:.0f} ms")
    print(f"files: {len(files)}; text: {text_bytes / 1e6:.2f} MB; chunks (auto 800/400): {chunks}")
    print(f"model load + sha256 check: {load_s:.2f}s")
    print(f"parse {parse_s:.2f}s, chunk {chunk_s:.2f}s, embed {embed_s:.2f}s")
    print(
        f"throughput: {chunks / total_s:.1f} chunks/s, {text_bytes / 1e6 / total_s * 60:.2f} MB/min"
    )
    # On a machine shared with other work, CPU time says what the pipeline costs.
    print(
        f"per CPU-second: {chunks / cpu_s:.1f} chunks, {text_bytes / 1e6 / cpu_s * 60:.2f} MB/min"
    )
    print(f"peak memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
