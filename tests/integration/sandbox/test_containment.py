"""Code written to escape or exhaust the sandbox, in every backend that starts here.

Each attack must leave the test process (standing for the server) untouched, other
sessions working, and the attacked session usable again at its next execution. The
network attacks aim at loopback addresses only.
"""

from __future__ import annotations

import ast
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from threadline.sandbox import CodeSession, Sandbox

SessionFactory = Callable[..., Awaitable[CodeSession]]

TRY_CONNECT = """
import socket
for port in {ports}:
    try:
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
        print(port, 'connected')
    except OSError as exc:
        print(port, 'blocked', type(exc).__name__)
"""


async def assert_healthy(session: CodeSession) -> None:
    result = await session.execute("print('fine')")
    assert result.logs == "fine\n", result
    assert result.error is None


async def test_no_network_to_loopback_services(session: CodeSession) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result = await session.execute(TRY_CONNECT.format(ports=[5432, port]))
        assert result.error is None, result.error
        lines = result.logs.splitlines()
        assert [line.split()[:2] for line in lines] == [["5432", "blocked"], [str(port), "blocked"]]
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


async def test_no_name_resolution_or_outside_interfaces(session: CodeSession) -> None:
    code = (
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('localhost', 80)\n"
        "    print('resolved')\n"
        "except OSError as exc:\n"
        "    print('no resolver')\n"
        "print(sorted(name for _, name in socket.if_nameindex()))"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    interfaces = result.logs.splitlines()[-1]
    assert interfaces in ("['lo']", "[]")


async def test_host_files_are_invisible(session: CodeSession, tmp_path: Path) -> None:
    secret = secrets.token_hex(16)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "threadline.db").write_text(secret)
    code = (
        "import os\n"
        f"for path in [{str(data_dir / 'threadline.db')!r}, {str(tmp_path)!r}, '/root',\n"
        "             '/work', '/home', '/etc/passwd', '/etc/shadow', '/var', '/srv']:\n"
        "    print(path, os.path.exists(path))\n"
        "print(sorted(os.listdir('/')))"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    assert secret not in result.logs
    for line in result.logs.splitlines()[:-1]:
        assert line.endswith(" False"), line
    top = set(ast.literal_eval(result.logs.splitlines()[-1]))
    assert top <= {
        "bin",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "mnt",
        "opt",
        "proc",
        "sbin",
        "sys",
        "tmp",
        "usr",
    }


async def test_no_new_user_namespaces_on_the_host_kernel(
    session: CodeSession, backend: Sandbox
) -> None:
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.unshare(0x10000000))  # CLONE_NEWUSER"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    # gVisor's namespaces are its own kernel's, out of the host kernel's reach
    if backend.name == "bwrap":
        assert result.logs == "-1\n"


async def test_risky_system_calls_are_refused(session: CodeSession, backend: Sandbox) -> None:
    code = (
        "import ctypes, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for name, number in [('io_uring_setup', 425), ('bpf', 321), ('keyctl', 250),\n"
        "                     ('userfaultfd', 323), ('ptrace', 101), ('unshare', 272)]:\n"
        "    ctypes.set_errno(0)\n"
        "    result = libc.syscall(number, 0, 0, 0, 0, 0)\n"
        "    print(name, result, errno.errorcode.get(ctypes.get_errno()))"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    if backend.name == "bwrap":  # under gVisor the Sentry answers, not the host kernel
        assert all(line.endswith(" -1 EPERM") for line in result.logs.splitlines()), result.logs
    await assert_healthy(session)


async def test_system_is_read_only(session: CodeSession) -> None:
    code = (
        "for path in ['/usr/evil', '/etc/evil', '/opt/packages/evil', '/evil', '/bin/evil']:\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        print(path, 'written')\n"
        "    except OSError as exc:\n"
        "        print(path, 'refused')"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    assert all(line.endswith("refused") for line in result.logs.splitlines()), result.logs


async def test_environment_and_host_processes_are_invisible(
    session: CodeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = secrets.token_hex(16)
    monkeypatch.setenv("THREADLINE_API_KEYS", secret)
    host_pid = os.getpid()
    code = (
        "import os, glob\n"
        "seen = []\n"
        "for path in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):\n"
        "    try:\n"
        "        seen.append(open(path, 'rb').read().decode(errors='replace'))\n"
        "    except OSError:\n"
        "        pass\n"
        "print('\\n'.join(seen))\n"
        "print(dict(os.environ))\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "print('uid', os.getuid(), 'pids', pids)"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    assert secret not in result.logs
    assert "pytest" not in result.logs
    assert "THREADLINE" not in result.logs
    last = result.logs.splitlines()[-1]
    uid_part, pids_part = last.split(" pids ")
    assert uid_part == "uid 1000"
    pids = ast.literal_eval(pids_part)
    assert len(pids) <= 4, pids
    assert all(pid < 100 for pid in pids) or host_pid not in pids


async def test_another_sessions_files_are_unreachable(new_session: SessionFactory) -> None:
    first = await new_session()
    second = await new_session()
    secret = secrets.token_hex(16)
    await first.put_file("secret.txt", secret.encode())
    code = (
        "import os, glob\n"
        "print(os.listdir('/mnt/data'))\n"
        "found = []\n"
        "for path in glob.glob('/proc/*/root/mnt/data/*') + glob.glob('/proc/*/cwd/*'):\n"
        "    try:\n"
        "        found.append(open(path).read())\n"
        "    except OSError:\n"
        "        pass\n"
        "print(found)"
    )
    result = await second.execute(code)
    assert result.error is None, result.error
    assert secret not in result.logs
    assert result.logs.splitlines()[0] == "[]"
    assert secret in (await first.execute("print(open('secret.txt').read())")).logs


async def test_memory_bomb_is_contained(new_session: SessionFactory) -> None:
    session = await new_session()
    bystander = await new_session()
    await session.execute("kept = 'yes'")
    result = await session.execute(
        "hog = []\nwhile True:\n    hog.append(bytearray(50 * 1024 * 1024))", time_limit=20
    )
    assert result.error is not None
    assert "MemoryError" in result.error or "ended" in result.error or result.timed_out
    del result
    await assert_healthy(session)
    await assert_healthy(bystander)
    big = await session.execute("x = bytearray(64 * 1024**3)")
    assert big.error is not None
    assert "MemoryError" in big.error


async def test_fork_bomb_is_contained(new_session: SessionFactory) -> None:
    session = await new_session()
    bystander = await new_session()
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    started = time.monotonic()
    result = await session.execute(code, time_limit=5)
    assert time.monotonic() - started < 30
    assert result.timed_out
    await assert_healthy(bystander)
    after = await session.execute("print('fine')")
    assert after.restarted
    assert after.logs == "fine\n"
    # the bomb's processes died with its sandbox: a fresh session can fork again
    forks = await session.execute(
        "import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nprint(os.waitpid(pid, 0)[1])"
    )
    assert forks.logs == "0\n"


async def test_process_limit_holds(session: CodeSession) -> None:
    code = (
        "import os, time\n"
        "children = []\n"
        "try:\n"
        "    for _ in range(500):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        children.append(pid)\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno)\n"
        "for pid in children:\n"
        "    os.kill(pid, 9)\n"
        "    os.waitpid(pid, 0)\n"
        "print(len(children))"
    )
    result = await session.execute(code)
    assert result.error is None, result.error
    refused, count = result.logs.splitlines()
    assert refused == "refused 11"
    assert int(count) < 64


async def test_endless_loop_is_stopped(new_session: SessionFactory) -> None:
    session = await new_session()
    started = time.monotonic()
    result = await session.execute("while True:\n    pass", time_limit=2)
    assert result.timed_out
    assert time.monotonic() - started < 15
    await assert_healthy(session)


async def test_huge_write_is_contained(session: CodeSession) -> None:
    code = (
        "chunk = b'x' * (64 * 1024 * 1024)\n"
        "with open('/mnt/data/huge.bin', 'wb') as f:\n"
        "    for _ in range(160):  # 10 GiB\n"
        "        f.write(chunk)"
    )
    result = await session.execute(code, time_limit=60)
    assert result.error is not None
    assert "OSError" in result.error or "No space" in result.error or "too large" in result.error
    tmp = await session.execute(code.replace("/mnt/data/", "/tmp/"), time_limit=60)
    assert tmp.error is not None
    assert "OSError" in tmp.error or "No space" in tmp.error
    cleanup = await session.execute(
        "import os; os.remove('/mnt/data/huge.bin'); os.remove('/tmp/huge.bin'); print('ok')"
    )
    assert cleanup.logs == "ok\n"


async def test_kill_all_processes_is_contained(new_session: SessionFactory) -> None:
    session = await new_session()
    bystander = await new_session()
    code = (
        "import os, subprocess\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "os.kill(-1, 9)\n"
        "print('survived', child.wait())"
    )
    result = await session.execute(code)
    # Under bubblewrap the driver dies with the rest and the session ends; under
    # gVisor the driver is the sandbox's init, which kill(-1) spares: only the child dies.
    ended = result.error is not None and "ended unexpectedly" in result.error
    assert ended or result.logs == "survived -9\n", result
    await assert_healthy(bystander)
    after = await session.execute("print('fine')")
    assert after.restarted == ended
    assert after.logs == "fine\n"
    assert os.getpid() > 0  # this process is still here to say so


async def test_output_flood_is_capped(new_session: SessionFactory) -> None:
    session = await new_session(max_log_bytes=10_000)
    result = await session.execute("for i in range(200_000):\n    print('flood', i)")
    assert len(result.logs) < 11_000
    assert "[output truncated" in result.logs
    await assert_healthy(session)


async def test_forged_frames_do_not_confuse_the_host(session: CodeSession) -> None:
    code = (
        "import os, struct\n"
        "for fd in range(3, 20):\n"
        "    try:\n"
        "        os.write(fd, struct.pack('>I', 2**31) + b'{}')\n"
        "    except OSError:\n"
        "        pass"
    )
    result = await session.execute(code)
    # either the forged frame was refused (session ended) or it never reached the host
    assert result.error is None or "ended unexpectedly" in result.error
    await assert_healthy(session)


@pytest.mark.parametrize(
    "body",
    [b'{"ok": true, "files": [1]}', b"[" * 100_000 + b"]" * 100_000, b'{"logs": 5}'],
    ids=["wrong-shape", "deep-nesting", "wrong-type"],
)
async def test_malformed_replies_end_only_that_session(session: CodeSession, body: bytes) -> None:
    code = (
        "import os, struct\n"
        f"body = {body!r}\n"
        "for fd in range(3, 20):\n"
        "    try:\n"
        "        os.write(fd, struct.pack('>I', len(body)) + body)\n"
        "    except OSError:\n"
        "        pass"
    )
    result = await session.execute(code)
    assert result.error is None or "ended" in result.error
    await assert_healthy(session)
