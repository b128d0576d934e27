"""Many concurrent streamed runs on one API process, against a slow fake model.

    .venv/bin/python bench/load.py                    # 1,000 runs at once, SQLite
    .venv/bin/python bench/load.py --runs 200 --token-delay 0.2
    .venv/bin/python bench/load.py --server-env THREADLINE_HTTP_KEEP_ALIVE_SECONDS=5

Each client is what a new user writes with the official async SDK, retries off
(``max_retries=0``): create a thread with one message, then stream a run on it
(``runs.stream``) to its end. All of them start at once. The fake model
(``threadline.testing.fake_openai``, its own process) streams each reply a chunk
every ``--token-delay`` seconds, so every run lasts several seconds and they are
all in flight together; ``threadline serve`` runs in its own process with enough
execution slots for all of them.

It prints what the clients saw (runs whose stream ended ``thread.run.completed``,
and every error by kind), then what the server stored (each run read back:
completed, with one assistant message), and the server's resident memory (peak
sampled, and the kernel's high-water mark). Targets: no client error, no run lost,
peak RSS at most 500 MB.

Not a test: nothing is asserted, the targets are printed next to the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

from threadline.testing import free_port

THREADLINE = Path(sys.executable).with_name("threadline")
KEY = "sk-bench-load-0000000000000000"
TARGET_RSS_MB = 500
REPLY = "Hello from the slow fake model, one piece at a time."


def wait_http(url: str, procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise RuntimeError(f"a process did not start; see {log}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)


@contextmanager
def processes(
    data_dir: Path, token_delay: float, runs: int, env: dict[str, str]
) -> Iterator[tuple[str, int, int]]:
    """The fake model and ``threadline serve``; yields the ``/v1`` URL, the server's
    pid and the model's."""
    model_port, port = free_port(), free_port()
    log_path = data_dir / "server.log"
    log = log_path.open("wb")
    model = subprocess.Popen(
        [
            *(sys.executable, "-m", "threadline.testing.fake_openai", "--port", str(model_port)),
            *("--token-delay", str(token_delay), "--reply", REPLY),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    settings = {
        "THREADLINE_DATA_DIR": str(data_dir),
        "THREADLINE_MODEL_BACKEND": "openai",
        "THREADLINE_OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
        "THREADLINE_API_KEYS": KEY,
        "THREADLINE_LOG_LEVEL": "warning",
        "THREADLINE_WORKER_CONCURRENCY": str(max(runs, 32)),
        **env,
    }
    server = subprocess.Popen(
        [str(THREADLINE), "serve", "--port", str(port)],
        env=os.environ | settings,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    procs = [model, server]
    try:
        wait_http(f"http://127.0.0.1:{model_port}/v1/models", procs, log_path)
        wait_http(f"http://127.0.0.1:{port}/healthz", procs, log_path)
        yield f"http://127.0.0.1:{port}/v1", server.pid, model.pid
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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Outcome:
    completed: int = 0
    ended_otherwise: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    runs: dict[str, str] = field(default_factory=dict)  # run id -> thread id
    durations: list[float] = field(default_factory=list)


async def one_client(sdk: openai.AsyncOpenAI, assistant_id: str, outcome: Outcome) -> None:
    started = time.perf_counter()
    try:
        thread = await sdk.beta.threads.create(
            messages=[{"role": "user", "content": "Say hello, slowly."}]
        )
        last = ""
        async with sdk.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id=assistant_id
        ) as stream:
            async for event in stream:
                if event.event == "thread.run.created":
                    outcome.runs[event.data.id] = thread.id
                last = event.event
        if last == "thread.run.completed":
            outcome.completed += 1
        else:
            outcome.ended_otherwise[last or "nothing"] += 1
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__
        detail = f"{type(exc).__name__}" + (f" from {cause!r}" if cause is not None else "")
        outcome.errors[detail] += 1
    outcome.durations.append(time.perf_counter() - started)


async def check_stored(sdk: openai.AsyncOpenAI, outcome: Outcome) -> collections.Counter[str]:
    """Each run read back: its status, and whether it has exactly one assistant message."""
    found: collections.Counter[str] = collections.Counter()
    gate = asyncio.Semaphore(16)

    async def check(run_id: str, thread_id: str) -> None:
        async with gate:
            run = await sdk.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
            messages = await sdk.beta.threads.messages.list(thread_id, run_id=run_id)
            mine = [m for m in messages.data if m.role == "assistant"]
            found[run.status + ("" if len(mine) == 1 else f", {len(mine)} messages")] += 1

    await asyncio.gather(*(check(r, t) for r, t in outcome.runs.items()))
    return found


async def measure(url: str, pid: int, model_pid: int, runs: int) -> None:
    sdk = openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=120)
    peak = rss_mb(pid)
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.25)

    try:
        assistant = await sdk.beta.assistants.create(model="gpt-4o-mini")
        idle_rss = rss_mb(pid)
        outcome = Outcome()
        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
        model_cpu = cpu_seconds(model_pid)
        await asyncio.gather(*(one_client(sdk, assistant.id, outcome) for _ in range(runs)))
        elapsed = time.perf_counter() - started
        server_cpu, client_cpu = cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
        model_cpu = cpu_seconds(model_pid) - model_cpu
        done.set()
        await sampler
        stored = await check_stored(sdk, outcome)
    finally:
        await sdk.close()
    durations = sorted(outcome.durations)
    print(f"{runs} clients at once, {elapsed:.1f} s in all")
    print(
        f"  a client's thread + streamed run: p50 {durations[len(durations) // 2]:.2f} s,"
        f" max {durations[-1]:.2f} s"
    )
    print(
        f"  CPU: server {server_cpu:.1f} s ({server_cpu / runs * 1000:.1f} ms a run),"
        f" this client {client_cpu:.1f} s, the fake model {model_cpu:.1f} s"
        f" (all on {os.cpu_count()} CPUs)"
    )
    print(f"  streams ended thread.run.completed: {outcome.completed}")
    for name, count in outcome.ended_otherwise.items():
        print(f"  streams ended {name}: {count}")
    print(f"  client errors: {sum(outcome.errors.values())} (target 0)")
    for name, count in outcome.errors.most_common():
        print(f"    {count} x {name}")
    print(
        f"  runs created: {len(outcome.runs)}, read back: {dict(stored)}"
        " (target: every one completed with one assistant message)"
    )
    print(
        f"  server RSS: {idle_rss:.0f} MB idle, peak sampled {peak:.0f} MB,"
        f" high-water mark {rss_mb(pid, 'VmHWM'):.0f} MB (target <= {TARGET_RSS_MB} MB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="clients (runs) at once")
    parser.add_argument(
        "--token-delay", type=float, default=0.2, help="seconds between the model's chunks"
    )
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra THREADLINE_* setting for the server",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the beta Assistants API
    env = dict(item.split("=", 1) for item in args.server_env)
    if args.database_url:
        env["THREADLINE_DATABASE_URL"] = args.database_url
    with (
        tempfile.TemporaryDirectory(prefix="threadline-load-") as tmp,
        processes(Path(tmp), args.token_delay, args.runs, env) as (url, pid, model_pid),
    ):
        print(
            f"threadline load benchmark: {'PostgreSQL' if args.database_url else 'SQLite'},"
            f" one API process, fake model with {args.token_delay} s between chunks,"
            f" {os.cpu_count()} CPUs, settings {env or 'default'}"
        )
        asyncio.run(measure(url, pid, model_pid, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
