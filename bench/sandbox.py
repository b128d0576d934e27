"""code_interpreter's sandbox: start-up, latency, throughput and memory per backend.

    PYTHONPATH=src .venv/bin/python bench/sandbox.py            # every backend here
    PYTHONPATH=src .venv/bin/python bench/sandbox.py --backend bwrap --rounds 20

For each backend that starts Python here it prints:

(a) cold start: a new session to its first result (``print(1)``), p50 over rounds;
(b) warm ``print(1)``: an execution in a live session, p50 and p95;
(c) executions per second with 8 sessions at once (8 threads of a ``SessionPool``,
    each running ``print(1)`` in a loop) for a fixed time;
(d) memory of an idle session: the proportional set size (PSS, from
    ``/proc/PID/smaps_rollup``) of all host processes of one session — the sandbox
    tool's and the Python inside it where the host can see it — once after start and
    once after ``import numpy, pandas, matplotlib.pyplot``;
(e) with ``--guards``: what bounding a session's memory as a whole costs: cold start
    and warm ``print(1)`` p50 with no guard (the baseline), a cgroup per session
    (where the host lets the server make one) and the resident-memory watcher,
    alternating round by round; and a cold start that also places a 1 MiB file (a
    session restarted on another worker gets the thread's files back so).

Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

from threadline.sandbox import BwrapSandbox, CodeSession, GVisorSandbox, Launch, Sandbox
from threadline.sandbox.limits import MIB, SandboxLimits
from threadline.sandbox.memory import CgroupGuard, MemoryGuard, WatchGuard, choose_memory_guard
from threadline.sandbox.pool import UID_BASE, SessionPool
from threadline.sandbox.probe import probe_backend

ROOT = Path(__file__).resolve().parents[1]


def _launch(sandbox: Sandbox, slot: int = 0) -> Launch:
    launch = Launch(
        python=Path("/usr/bin/python3"),
        packages=ROOT / ".sandbox-packages",
        limits=SandboxLimits(),
    )
    if os.geteuid() == 0 and not sandbox.needs_root:
        return replace(launch, host_uid=UID_BASE + 500 + slot)
    return launch


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _pss_mib(pid: int) -> float:
    total = 0
    for each in _descendants(pid):
        try:
            with open(f"/proc/{each}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


async def bench_backend(sandbox: Sandbox, rounds: int, seconds: float) -> None:
    print(f"\n== {sandbox.name} ==")
    cold = []
    for _ in range(rounds):
        session = CodeSession(sandbox, _launch(sandbox))
        started = time.perf_counter()
        result = await session.execute("print(1)")
        cold.append(time.perf_counter() - started)
        assert result.logs == "1\n", result
        await session.close()
    print(f"cold start to first result: p50 {statistics.median(cold) * 1000:.0f} ms")

    session = CodeSession(sandbox, _launch(sandbox))
    await session.execute("print(1)")
    warm = []
    for _ in range(rounds * 10):
        started = time.perf_counter()
        await session.execute("print(1)")
        warm.append(time.perf_counter() - started)
    warm.sort()
    p95 = warm[int(len(warm) * 0.95) - 1]
    print(f"warm print(1): p50 {statistics.median(warm) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms")
    assert session.pid is not None
    print(f"idle session memory (PSS): {_pss_mib(session.pid):.0f} MiB after start", end="")
    await session.execute("import numpy, pandas, matplotlib.pyplot")
    print(f", {_pss_mib(session.pid):.0f} MiB with numpy, pandas, matplotlib imported")
    await session.close()

    pool = SessionPool(sandbox, _launch(sandbox), max_sessions=8)
    threads = [f"thread_{i}" for i in range(8)]
    await asyncio.gather(*(pool.execute(t, "print(1)") for t in threads))
    count = 0
    deadline = time.perf_counter() + seconds

    async def loop(thread_id: str) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await pool.execute(thread_id, "print(1)")
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(t) for t in threads))
    elapsed = time.perf_counter() - started
    print(f"8 sessions at once: {count / elapsed:.0f} executions/s ({os.cpu_count()} CPUs)")
    await pool.aclose()


async def bench_guards(sandbox: Sandbox, rounds: int) -> None:
    print(f"\n== {sandbox.name}: the session's memory guard ==")
    limit = SandboxLimits().session_memory_mb * MIB
    guards: dict[str, MemoryGuard | None] = {"none": None, "watch": WatchGuard(limit)}
    cgroup = choose_memory_guard(limit)
    if isinstance(cgroup, CgroupGuard):
        guards["cgroup"] = cgroup
    cold: dict[str, list[float]] = {name: [] for name in [*guards, "none+file"]}
    warm: dict[str, list[float]] = {name: [] for name in guards}
    data = os.urandom(MIB)
    for _ in range(rounds):
        for name, guard in guards.items():
            session = CodeSession(sandbox, _launch(sandbox), guard)
            started = time.perf_counter()
            await session.execute("print(1)")
            cold[name].append(time.perf_counter() - started)
            for _ in range(10):
                started = time.perf_counter()
                await session.execute("print(1)")
                warm[name].append(time.perf_counter() - started)
            await session.close()
        session = CodeSession(sandbox, _launch(sandbox))
        started = time.perf_counter()
        await session.put_file("data.bin", data)
        await session.execute("print(1)")
        cold["none+file"].append(time.perf_counter() - started)
        await session.close()
    for name, times in cold.items():
        line = f"{name:>9}: cold start p50 {statistics.median(times) * 1000:.0f} ms"
        if name in warm:
            line += f", warm print(1) p50 {statistics.median(warm[name]) * 1000:.2f} ms"
        print(line)
    for guard in guards.values():
        if guard is not None:
            await guard.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["gvisor", "bwrap"], action="append")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--guards", action="store_true", help="only (e), the memory guards")
    args = parser.parse_args()
    print(f"{platform.platform()}, {os.cpu_count()} CPUs")
    candidates: list[Sandbox] = [GVisorSandbox(), BwrapSandbox()]
    for sandbox in candidates:
        if args.backend and sandbox.name not in args.backend:
            continue
        reason = sandbox.missing() or await probe_backend(sandbox, _launch(sandbox))
        if reason is not None:
            print(f"\n== {sandbox.name} == cannot run here: {reason}")
            continue
        if args.guards:
            await bench_guards(sandbox, args.rounds)
        else:
            await bench_backend(sandbox, args.rounds, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
