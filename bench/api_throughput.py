"""Object API throughput: ``messages.create`` and ``messages.list`` requests per second.

    .venv/bin/python bench/api_throughput.py                 # SQLite in a temporary directory
    .venv/bin/python bench/api_throughput.py --seconds 10 --concurrency 1 16 64
    .venv/bin/python bench/api_throughput.py --database-url postgresql://postgres@127.0.0.1/bench

``threadline serve`` runs as a separate process (scripted model backend, one static
key), so that the load client and the server do not share a GIL. The load client is
httpx over keep-alive connections, one connection per concurrent worker. For each
concurrency it measures, for ``--seconds`` each:

- ``GET /healthz``: the baseline, an endpoint that does no work (HTTP + ASGI cost);
- ``GET /v1/threads/{id}/messages``: a page of 20 from a thread of 100 messages;
- ``POST /v1/threads/{id}/messages``: a short text message (each worker its own
  thread, as different users would be).

It prints requests per second and p50/p99 latency. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from threadline.testing import free_port

KEY = "sk-bench-0000000000000000"


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@contextmanager
def server(data_dir: Path, database_url: str | None) -> Iterator[str]:
    """``threadline serve`` in a child process; yields its root URL."""
    port = free_port()
    env = {
        **os.environ,
        "THREADLINE_DATA_DIR": str(data_dir),
        "THREADLINE_API_KEYS": f"bench:{KEY}",
        "THREADLINE_MODEL_BACKEND": "scripted",
        "THREADLINE_LOG_LEVEL": "warning",
    }
    if database_url:
        env["THREADLINE_DATABASE_URL"] = database_url
    process = subprocess.Popen(
        [sys.executable, "-m", "threadline", "serve", "--port", str(port)], env=env
    )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{root}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield root
    finally:
        process.terminate()
        process.wait(30)


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def measure(
    root: str, name: str, request: Request, concurrency: int, seconds: float
) -> Result:
    """Run ``request`` from ``concurrency`` workers for ``seconds``; every answer must
    be a 200."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
    async with httpx.AsyncClient(base_url=root, headers=headers, limits=limits) as http:
        for worker in range(concurrency):  # warm up: open every connection
            (await request(http, worker)).raise_for_status()
        stop = time.perf_counter() + seconds

        async def work(worker: int) -> None:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = await request(http, worker)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text}")

        began = time.perf_counter()
        await asyncio.gather(*(work(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - began
    return Result(name, concurrency, len(latencies), elapsed, latencies)


async def prepare(root: str, workers: int) -> tuple[str, list[str]]:
    """A thread of 100 messages to list, and a thread per worker to write to."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=f"{root}/v1", headers=headers) as http:
        seeded = [{"role": "user", "content": f"message {i}"} for i in range(100)]
        listed = (await http.post("/threads", json={"messages": seeded})).json()["id"]
        written = [(await http.post("/threads", json={})).json()["id"] for _ in range(workers)]
    return listed, written


async def bench(root: str, concurrencies: list[int], seconds: float) -> list[Result]:
    listed, written = await prepare(root, max(concurrencies))

    async def healthz(http: httpx.AsyncClient, worker: int) -> httpx.Response:
        return await http.get("/healthz")

    async def list_messages(http: httpx.AsyncClient, worker: int) -> httpx.Response:
        return await http.get(f"/v1/threads/{listed}/messages")

    async def create_message(http: httpx.AsyncClient, worker: int) -> httpx.Response:
        body = {"role": "user", "content": "How many moons has Jupiter?"}
        return await http.post(f"/v1/threads/{written[worker]}/messages", json=body)

    results = []
    for concurrency in concurrencies:
        for name, request in (
            ("GET /healthz (baseline)", healthz),
            ("messages.list", list_messages),
            ("messages.create", create_message),
        ):
            results.append(await measure(root, name, request, concurrency, seconds))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp), args.database_url) as root:
        results = asyncio.run(bench(root, args.concurrency, args.seconds))

    engine = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"\nthreadline object API on {engine}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; {args.seconds:g} s each"
    )
    print(f"{'operation':<26}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs base':>9}")
    baseline = {r.concurrency: r.rate for r in results if r.name.startswith("GET /healthz")}
    for r in results:
        share = r.rate / baseline[r.concurrency]
        print(
            f"{r.name:<26}{r.concurrency:>5}{r.rate:>10.0f}{r.percentile(0.5):>9.2f}"
            f"{r.percentile(0.99):>9.2f}{share:>8.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
