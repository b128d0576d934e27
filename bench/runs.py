"""Run throughput and time to first delta through threadline, on an instant fake model.

    .venv/bin/python bench/runs.py                  # SQLite in a temporary directory
    .venv/bin/python bench/runs.py --database-url postgresql://postgres@127.0.0.1/bench
    .venv/bin/python bench/runs.py --database-url postgresql://postgres@127.0.0.1/bench \
        --split --server-env THREADLINE_REDIS_URL=redis://127.0.0.1:6379/0

With ``--split`` the server is one ``serve --no-worker`` and one ``threadline worker``
on procrastinate (the scale-out shape); the CPU per run is both processes'.

A fake OpenAI chat-completions server (``threadline.testing.fake_openai``) answers at
once on loopback, in a thread of this process; ``threadline serve`` runs as a separate
process (``THREADLINE_MODEL_BACKEND=openai`` pointed at the fake), so that the load
client and the server do not share a GIL. It prints:

(a) streamed runs per second: ``POST /threads/{id}/runs`` with ``stream: true``, the SSE
    read to ``done``, at each concurrency (each run on a thread made beforehand);
(b) time to the first ``thread.message.delta`` through threadline, from sending the
    create-run request, against the time to the first content chunk of a direct
    streaming call to the same fake model, interleaved in the same process: p50, p95
    and the p50 threadline adds.

Not a test: nothing is asserted, targets are printed next to the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from threadline.testing import FakeChatServer, free_port

THREADLINE = Path(sys.executable).with_name("threadline")
KEY = "sk-bench-0000000000000000"
TARGET_RUNS_PER_SECOND = 150.0  # at concurrency 32, SQLite
TARGET_ADDED_P50_MS = 5.0


@contextmanager
def threadline_server(
    data_dir: Path,
    model_url: str,
    database_url: str | None,
    env: dict[str, str],
    split: bool = False,
) -> Iterator[tuple[str, list[int]]]:
    """``threadline serve`` in a child process (with ``split``: the API only, and a
    ``threadline worker`` beside it); yields its ``/v1`` URL and the pids."""
    port = free_port()
    settings = {
        "THREADLINE_DATA_DIR": str(data_dir),
        "THREADLINE_MODEL_BACKEND": "openai",
        "THREADLINE_OPENAI_BASE_URL": model_url,
        "THREADLINE_API_KEYS": KEY,
        "THREADLINE_LOG_LEVEL": "warning",
        **({"THREADLINE_DATABASE_URL": database_url} if database_url else {}),
        **({"THREADLINE_QUEUE": "procrastinate"} if split else {}),
        **env,
    }
    log = (data_dir / "server.log").open("wb")
    procs = []
    if split:
        procs.append(
            subprocess.Popen(
                [str(THREADLINE), "worker"],
                env=os.environ | settings,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    procs.append(
        subprocess.Popen(
            [str(THREADLINE), "serve", "--port", str(port), *(["--no-worker"] if split else [])],
            env=os.environ | settings,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                raise RuntimeError(f"threadline did not start; see {data_dir / 'server.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1", [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@dataclass
class RunTiming:
    first_delta: float  # seconds from sending the request
    total: float
    completed: bool


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of processes so far (Linux ``/proc``)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(
        self, base_url: str, model_url: str, concurrency: int, server_pids: list[int]
    ) -> None:
        self.server_pids = server_pids
        self.base_url = base_url
        self.model_url = model_url
        limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=64)
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"},
            timeout=60,
            limits=limits,
        )
        self.model_client = httpx.AsyncClient(timeout=60, limits=limits)
        self.assistant_id = ""

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.model_client.aclose()

    async def setup(self) -> None:
        made = await self.client.post("/assistants", json={"model": "gpt-4o-mini"})
        made.raise_for_status()
        self.assistant_id = made.json()["id"]

    async def threads(self, count: int, concurrency: int = 16) -> list[str]:
        """``count`` threads with one user message each, made before timing."""
        made: list[str] = []

        async def worker(n: int) -> None:
            for _ in range(n):
                response = await self.client.post(
                    "/threads", json={"messages": [{"role": "user", "content": "Say hello."}]}
                )
                response.raise_for_status()
                made.append(response.json()["id"])

        share, extra = divmod(count, concurrency)
        await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
        return made

    async def stream_run(self, thread_id: str) -> RunTiming:
        """Create a run with ``stream: true`` and read its SSE to ``done``."""
        start = time.perf_counter()
        first = 0.0
        completed = False
        async with self.client.stream(
            "POST",
            f"/threads/{thread_id}/runs",
            json={"assistant_id": self.assistant_id, "stream": True},
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("event: "):
                    continue
                name = line[7:]
                if name == "thread.message.delta" and not first:
                    first = time.perf_counter() - start
                elif name == "thread.run.completed":
                    completed = True
                elif name == "done":
                    break
        return RunTiming(first, time.perf_counter() - start, completed)

    async def direct_first_token(self) -> float:
        """Seconds to the first content chunk of a streaming call to the model itself."""
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say hello."}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        start = time.perf_counter()
        first = 0.0
        async with self.model_client.stream(
            "POST", f"{self.model_url}/chat/completions", json=body
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:]).get("choices") or [{}]
                if not first and choices[0].get("delta", {}).get("content"):
                    first = time.perf_counter() - start
        return first

    async def throughput(self, concurrency: int, runs: int) -> dict[str, float]:
        threads = await self.threads(runs)
        pending = list(reversed(threads))
        timings: list[RunTiming] = []

        async def worker() -> None:
            while pending:
                timings.append(await self.stream_run(pending.pop()))

        start = time.perf_counter()
        server_cpu, client_cpu = cpu_seconds(self.server_pids), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        server_cpu = cpu_seconds(self.server_pids) - server_cpu
        client_cpu = time.process_time() - client_cpu
        totals = [t.total for t in timings]
        return {
            "concurrency": concurrency,
            "runs": len(timings),
            "failed": sum(not t.completed for t in timings),
            "seconds": elapsed,
            "runs_per_second": len(timings) / elapsed,
            "run_p50_ms": _ms(statistics.median(totals)),
            "run_p95_ms": _ms(percentile(totals, 95)),
            "server_cpu_ms_per_run": _ms(server_cpu / len(timings)),
            "client_cpu_ms_per_run": _ms(client_cpu / len(timings)),
        }

    async def first_delta(self, samples: int, warmup: int = 20) -> dict[str, float]:
        threads = await self.threads(samples + warmup)
        direct: list[float] = []
        through: list[float] = []
        for index, thread_id in enumerate(threads):
            model_first = await self.direct_first_token()
            run = await self.stream_run(thread_id)
            if index >= warmup and run.completed:
                direct.append(model_first)
                through.append(run.first_delta)
        return {
            "samples": len(through),
            "direct_p50_ms": _ms(statistics.median(direct)),
            "direct_p95_ms": _ms(percentile(direct, 95)),
            "threadline_p50_ms": _ms(statistics.median(through)),
            "threadline_p95_ms": _ms(percentile(through, 95)),
            "added_p50_ms": _ms(statistics.median(through) - statistics.median(direct)),
        }


async def measure(
    args: argparse.Namespace, base_url: str, model_url: str, server_pids: list[int]
) -> dict[str, Any]:
    bench = Bench(base_url, model_url, max(args.concurrency), server_pids)
    try:
        await bench.setup()
        # Warm the server (tokenizer, connection pools, SQLite pages) before timing.
        await bench.throughput(8, 64)
        results: dict[str, Any] = {"throughput": [], "first_delta": None}
        for concurrency in args.concurrency:
            runs = args.runs if args.runs else max(200, 60 * concurrency)
            results["throughput"].append(await bench.throughput(concurrency, runs))
        if args.samples:
            results["first_delta"] = await bench.first_delta(args.samples)
        return results
    finally:
        await bench.aclose()


def report(results: dict[str, Any], engine: str) -> None:
    cpus = os.cpu_count()
    print(f"threadline runs benchmark: {engine}, instant fake model on loopback, {cpus} CPUs,")
    print(f"Python {platform.python_version()}, server in its own process\n")
    print("(a) streamed runs (create with stream=true, SSE read to done)")
    header = ("concurrency", "runs", "failed", "runs/s", "p50 ms", "p95 ms", "srv CPU ms/run")
    widths = (11, 6, 6, 8, 8, 8, 15)
    print("    " + " ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for row in results["throughput"]:
        print(
            f"    {row['concurrency']:>11} {row['runs']:>6} {row['failed']:>6}"
            f" {row['runs_per_second']:>8.1f} {row['run_p50_ms']:>8.1f} {row['run_p95_ms']:>8.1f}"
            f" {row['server_cpu_ms_per_run']:>15.2f}"
        )
    print(f"    target: >= {TARGET_RUNS_PER_SECOND:.0f} runs/s at concurrency 32 on SQLite")
    first = results["first_delta"]
    if first:
        print(f"\n(b) time to first delta, ms ({first['samples']} samples, concurrency 1)")
        print(f"    {'':>22} {'p50':>7} {'p95':>7}")
        print(
            f"    {'direct to the model':>22} {first['direct_p50_ms']:>7.2f}"
            f" {first['direct_p95_ms']:>7.2f}"
        )
        print(
            f"    {'through threadline':>22} {first['threadline_p50_ms']:>7.2f}"
            f" {first['threadline_p95_ms']:>7.2f}"
        )
        print(f"    {'added at p50':>22} {first['added_p50_ms']:>7.2f}")
        print(f"    target: <= {TARGET_ADDED_P50_MS:.0f} ms added at p50")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--runs", type=int, default=0, help="runs per concurrency level")
    parser.add_argument("--samples", type=int, default=300, help="first-delta samples")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra THREADLINE_* setting for the server",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="serve --no-worker plus one threadline worker (procrastinate; PostgreSQL)",
    )
    parser.add_argument(
        "--hold",
        action="store_true",
        help="print the server's pid and wait for Enter before measuring (to attach py-spy)",
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.server_env)
    engine = "PostgreSQL" if args.database_url else "SQLite"
    if args.split:
        engine += ", 1 API + 1 worker (procrastinate)"
    if "THREADLINE_REDIS_URL" in env:
        engine += ", Redis Streams"
    with (
        tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp,
        FakeChatServer(usage=(12, 7)) as fake,
        threadline_server(Path(tmp), fake.url, args.database_url, env, args.split) as (url, pids),
    ):
        if args.hold:
            input(f"threadline is pids {pids}; press Enter to start ")
        results = asyncio.run(measure(args, url, fake.url, pids))
    report(results, engine)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
