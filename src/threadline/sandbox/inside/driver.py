"""The REPL that runs inside the sandbox: one per session, one process per sandbox.

Started as ``python3 -I -S driver.py CONFIG_JSON``. It reads requests from stdin and
writes replies to its original stdout, each a frame: a 4-byte big-endian length, then
UTF-8 JSON. Before any request it lowers its own resource limits (soft = hard, so the
code it runs cannot raise them again) and points file descriptors 1 and 2 at a capture
file in the private ``/tmp``, so the output of ``print`` and of child processes alike
becomes the execution's logs, and nothing user code writes can be mistaken for a frame.

Requests: ``{"op": "exec", "code": str}``, ``{"op": "put", "name": str, "data": b64}``,
``{"op": "ping"}``. Replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": str}``.

Stand-alone on purpose: it imports only the standard library (and matplotlib when user
code did), because it runs under the sandbox's interpreter, not the server's.
"""

from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import io
import json
import linecache
import os
import resource
import stat
import struct
import sys
import traceback
from typing import Any

WORK_DIR = "/mnt/data"
CAPTURE_PATH = "/tmp/.threadline-output"
_HEADER = struct.Struct(">I")
_MAX_REQUEST = 256 * 1024 * 1024


def _apply_limits(config: dict[str, Any]) -> None:
    limits = {
        resource.RLIMIT_AS: config["memory_bytes"],
        resource.RLIMIT_CPU: config["cpu_seconds"],
        resource.RLIMIT_NPROC: config["processes"],
        resource.RLIMIT_FSIZE: config["file_bytes"],
        resource.RLIMIT_NOFILE: config["open_files"],
        resource.RLIMIT_CORE: 0,
    }
    for kind, value in limits.items():
        resource.setrlimit(kind, (value, value))


class Channel:
    def __init__(self, reader: int, writer: int) -> None:
        self._reader = os.fdopen(reader, "rb", buffering=0)
        self._writer = os.fdopen(writer, "wb", buffering=0)

    def _read_exact(self, size: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._reader.read(size - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)

    def receive(self) -> dict[str, Any] | None:
        header = self._read_exact(_HEADER.size)
        if header is None:
            return None
        (length,) = _HEADER.unpack(header)
        if length > _MAX_REQUEST:
            return None
        body = self._read_exact(length)
        if body is None:
            return None
        message = json.loads(body)
        return message if isinstance(message, dict) else None

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self._writer.write(_HEADER.pack(len(body)) + body)


class Capture:
    """File descriptors 1 and 2 go to one file, read back after each execution."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._fd = os.open(CAPTURE_PATH, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def start(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.dup2(self._fd, 1)
        os.dup2(self._fd, 2)

    def collect(self) -> str:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, min(size, self._max_bytes), 0)
        text = data.decode("utf-8", errors="replace")
        if size > self._max_bytes:
            text += f"\n[output truncated: {size} bytes written, {self._max_bytes} kept]\n"
        return text


def _snapshot() -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for root, _dirs, files in os.walk(WORK_DIR):
        for name in files:
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found[os.path.relpath(path, WORK_DIR)] = (info.st_size, info.st_mtime_ns)
    return found


def _read_file(name: str, limit: int) -> bytes | None:
    try:
        fd = os.open(os.path.join(WORK_DIR, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def _figures() -> list[str]:
    """PNGs of the figures shown (``plt.show``) or still open, then all figures closed."""
    backend = sys.modules.get("threadline_mpl")
    if backend is None:
        return []
    try:
        images: list[bytes] = backend.take_images()
    except Exception:  # a broken figure must not cost the execution its result
        return []
    return [base64.b64encode(image).decode() for image in images]


class Repl:
    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self._cells = 0

    def _run(self, code: str) -> str | None:
        self._cells += 1
        filename = f"<cell {self._cells}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        try:
            tree = ast.parse(code, filename, "exec")
            last: ast.expr | None = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = tree.body[-1].value
                tree.body.pop()
            exec(compile(tree, filename, "exec"), self._namespace)
            if last is not None:
                value = eval(compile(ast.Expression(last), filename, "eval"), self._namespace)
                if value is not None:
                    print(repr(value))
        except BaseException as exc:  # user code's failures are results
            frames = traceback.extract_tb(exc.__traceback__)
            user = [i for i, f in enumerate(frames) if f.filename != __file__]
            skip = user[0] if user else len(frames)
            tb = exc.__traceback__
            for _ in range(skip):
                tb = tb.tb_next if tb is not None else None
            return "".join(traceback.format_exception(type(exc), exc, tb))
        return None

    def execute(self, code: str, capture: Capture) -> dict[str, Any]:
        before = _snapshot()
        capture.start()
        error = self._run(code)
        images = _figures()
        logs = capture.collect()
        files = []
        budget = self._config["max_output_bytes"]
        for name, meta in sorted(_snapshot().items()):
            if before.get(name) == meta:
                continue
            data = _read_file(name, min(budget, self._config["max_file_bytes"]))
            if data is not None:
                budget -= len(data)
            files.append(
                {
                    "name": name,
                    "size": meta[0],
                    "data": None if data is None else base64.b64encode(data).decode(),
                }
            )
        return {"ok": True, "logs": logs, "error": error, "images": images, "files": files}


def _put(message: dict[str, Any]) -> dict[str, Any]:
    name = message["name"]
    if not isinstance(name, str) or "/" in name or name in ("", ".", "..") or "\0" in name:
        return {"ok": False, "error": f"invalid file name {name!r}"}
    data = base64.b64decode(message["data"])
    path = os.path.join(WORK_DIR, name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as exc:
        return {"ok": False, "error": f"cannot write {path}: {exc.strerror}"}
    return {"ok": True, "path": path}


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path[:0] = config["paths"]
    channel = Channel(os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    capture = Capture(config["max_log_bytes"])
    capture.start()
    for stream in (sys.stdout, sys.stderr):  # interleaved as written, as in a terminal
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    _apply_limits(config)
    os.chdir(WORK_DIR)
    repl = Repl(config)
    channel.send({"ok": True, "ready": True})
    while (message := channel.receive()) is not None:
        op = message.get("op")
        if op == "exec":
            reply = repl.execute(str(message.get("code", "")), capture)
        elif op == "put":
            reply = _put(message)
        elif op == "ping":
            reply = {"ok": True}
        else:
            reply = {"ok": False, "error": f"unknown op {op!r}"}
        channel.send(reply)


if __name__ == "__main__":
    main()
