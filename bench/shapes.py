"""The three deployment shapes side by side, in one run: streamed runs per second
and time to the first delta of (a) one ``serve`` on SQLite, (b) one ``serve`` on
PostgreSQL, (c) one ``serve --no-worker`` and one ``threadline worker`` on
PostgreSQL, procrastinate and Redis Streams; (b) and (c) as shares of (a).

    .venv/bin/python bench/shapes.py --database-url postgresql://postgres@127.0.0.1/bench \
        --redis-url redis://127.0.0.1:6379/0 --rounds 3

Each round measures every shape once, in a new order each round (a fresh server
each time, the same instant fake model); the shares are taken within a round,
against that round's (a), and their median over the rounds is printed with the
targets. The measurements are ``bench/runs.py``'s: runs per second at each
concurrency (``--runs`` streamed runs each), the first delta's p50 through
threadline less a direct call's to the same model (``--samples`` pairs), and the
server's CPU per run (both processes for (c)).

Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from runs import Bench, threadline_server

from threadline.testing import FakeChatServer

TARGET_SHARE = 0.60  # of (a)'s runs/s, for (b) and (c)
TARGET_ADDED_MS = 10.0  # first delta added by (c), p50
SHAPES = {
    "a": "serve, SQLite",
    "b": "serve, PostgreSQL",
    "c": "API + worker, PostgreSQL + procrastinate + Redis",
}


async def _measure(url: str, model_url: str, pids: list[int], args: argparse.Namespace) -> Any:
    bench = Bench(url, model_url, max(args.concurrency), pids)
    try:
        await bench.setup()
        await bench.throughput(8, 64)  # warm: pools, tokenizer, prepared statements
        result: dict[str, Any] = {}
        for concurrency in args.concurrency:
            row = await bench.throughput(concurrency, args.runs)
            result[f"runs/s@{concurrency}"] = row["runs_per_second"]
            result[f"cpu ms/run@{concurrency}"] = row["server_cpu_ms_per_run"]
            result[f"failed@{concurrency}"] = row["failed"]
        first = await bench.first_delta(args.samples)
        result["first delta added ms"] = first["added_p50_ms"]
        return result
    finally:
        await bench.aclose()


def measure_shape(shape: str, model_url: str, args: argparse.Namespace) -> dict[str, Any]:
    database = None if shape == "a" else args.database_url
    env = {"THREADLINE_REDIS_URL": args.redis_url} if shape == "c" else {}
    with (
        tempfile.TemporaryDirectory(prefix="threadline-shapes-") as tmp,
        threadline_server(Path(tmp), model_url, database, env, split=shape == "c") as (url, pids),
    ):
        return asyncio.run(_measure(url, model_url, pids, args))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL, for (b) and (c)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--runs", type=int, default=300, help="streamed runs per level")
    parser.add_argument("--samples", type=int, default=60, help="first-delta pairs")
    parser.add_argument("--json", action="store_true", help="print every reading as JSON too")
    args = parser.parse_args()
    readings: list[dict[str, dict[str, Any]]] = []
    order = list(SHAPES)
    with FakeChatServer(usage=(12, 7)) as fake:
        for round_no in range(args.rounds):
            shapes = order[round_no % 3 :] + order[: round_no % 3]
            readings.append({shape: measure_shape(shape, fake.url, args) for shape in shapes})
            print(f"round {round_no + 1}/{args.rounds} done ({', '.join(shapes)})", flush=True)
    report(readings, args)
    if args.json:
        print(json.dumps(readings, indent=2))
    return 0


def report(readings: list[dict[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    print(
        f"\nthreadline deployment shapes: instant fake model on loopback, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}, {len(readings)} rounds\n"
    )
    keys = [
        *(f"runs/s@{c}" for c in args.concurrency),
        *(f"cpu ms/run@{c}" for c in args.concurrency),
        "first delta added ms",
    ]
    print(f"{'':<18}" + "".join(f"{key:>22}" for key in keys))
    for shape, name in SHAPES.items():
        print(f"({shape}) {name}")
        for round_no, reading in enumerate(readings, 1):
            row = reading[shape]
            print(f"  round {round_no:<10}" + "".join(f"{row[key]:>22.1f}" for key in keys))
        failed = sum(r[shape][f"failed@{c}"] for r in readings for c in args.concurrency)
        if failed:
            print(f"  {failed} runs did not complete")
    print("\nshares of (a)'s runs/s, median over rounds (each round against its own (a)):")
    for shape in ("b", "c"):
        for c in args.concurrency:
            shares = [r[shape][f"runs/s@{c}"] / r["a"][f"runs/s@{c}"] for r in readings]
            print(
                f"  ({shape}) at concurrency {c:<3} {statistics.median(shares):6.0%}"
                f"   (rounds: {', '.join(f'{s:.0%}' for s in shares)})"
                f"   target >= {TARGET_SHARE:.0%}"
            )
    added = [r["c"]["first delta added ms"] for r in readings]
    print(
        f"  (c) first delta added, p50: {statistics.median(added):.1f} ms"
        f"   (rounds: {', '.join(f'{a:.1f}' for a in added)})   target <= {TARGET_ADDED_MS:.0f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
