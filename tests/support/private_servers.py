"""A Redis and a PostgreSQL of a test's own, which it may stop, kill and start again
(the machine's shared servers are never restarted by a test).

``PrivateRedis`` runs ``redis-server`` on a free port without persistence (a
restart empties it, as a lost Redis would) unless ``appendonly`` asks to keep its
data. ``PrivatePostgres`` runs Debian's ``initdb``/``pg_ctl`` on a temporary data
directory (as the ``postgres`` user when the tests run as root, which PostgreSQL
refuses). Either is skipped, saying why, when its binaries are missing, unless
``THREADLINE_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from threadline.testing import free_port

PG_BIN = Path(os.environ.get("THREADLINE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _missing(what: str) -> None:
    if os.environ.get("THREADLINE_REQUIRE_POSTGRES") == "1":
        raise RuntimeError(what)
    pytest.skip(what)


def _wait_port(port: int, up: bool, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} did not go {'up' if up else 'down'}")
        time.sleep(0.05)


class PrivateRedis:
    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--dir", str(self.directory), "--maxclients", "4000"]
        args += ["--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        with (self.directory / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.port, up=True)

    def kill(self) -> None:
        """Gone at once, as a crashed Redis (what it held goes with it unless kept
        in its append-only file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        _wait_port(self.port, up=False)

    def keep_data(self) -> None:
        """From now on keep what it holds in an append-only file (a restart with
        ``shutdown`` and ``start`` brings it back)."""
        self.appendonly = True
        self._cli("config", "set", "appendonly", "yes")
        deadline = time.monotonic() + 20
        while "aof_rewrite_in_progress:0" not in self._cli("info", "persistence"):
            if time.monotonic() > deadline:
                raise RuntimeError("redis did not write its append-only file")
            time.sleep(0.05)

    def shutdown(self) -> None:
        """Stopped cleanly (its append-only file complete), as for maintenance."""
        self._cli("shutdown")
        if self.proc is not None:
            self.proc.wait(10)
        _wait_port(self.port, up=False)

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            capture_output=True,
            timeout=20,
            check=False,
        )
        return done.stdout.decode(errors="replace")

    def stop(self) -> None:
        self.kill()


@contextmanager
def private_redis(*, appendonly: bool = False) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        _missing("redis-server is not installed")
    directory = Path(tempfile.mkdtemp(prefix="threadline-redis-"))
    redis = PrivateRedis(directory, appendonly=appendonly)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()
        shutil.rmtree(directory, ignore_errors=True)


class PrivatePostgres:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.decode(errors='replace')}")

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        options += " -c fsync=off -c max_connections=300"
        log = str(self.directory / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        _wait_port(self.port, up=True)

    def stop(self, mode: str = "fast") -> None:
        """``fast``: sessions are cut and the server stops cleanly; ``immediate``:
        as a crash (recovery at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        _wait_port(self.port, up=False)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        _missing(f"no PostgreSQL binaries under {PG_BIN}")
    directory = Path(tempfile.mkdtemp(prefix="threadline-pg-"))
    server = PrivatePostgres(directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):  # already down
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
