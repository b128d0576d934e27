"""Sandbox backends: how one session's Python process is started, isolated.

``Sandbox`` says how to spawn a session (the argv, and what to undo afterwards); the
session (``CodeSession``) owns the process and its pipes. Two backends:

- ``GVisorSandbox`` runs the session in gVisor (``runsc``): a user-space kernel serves
  its system calls, so a kernel bug reachable from them is not the host's. It needs
  root on the host.
- ``BwrapSandbox`` runs it under bubblewrap: fresh user, pid, net, ipc, uts and cgroup
  namespaces, a read-only view of ``/usr`` and of the sandbox's packages only, tmpfs
  ``/tmp`` and ``/mnt/data`` of fixed sizes, an empty environment, no capabilities,
  no further user namespaces, and a seccomp filter (``seccomp``).

Both see the same tree: ``/usr`` (and the ``/bin``, ``/lib``… links to it) read-only,
the interpreter's prefix when it lies outside ``/usr``, the packages at
``/opt/packages``, the driver at ``/opt/threadline``, ``/mnt/data`` as the only
writable place beside ``/tmp``. Nothing of the server's data directory, home, or
environment is mounted, and the network namespace holds only a loopback of its own.

The packages are a directory of their own (``scripts/setup.sh`` fills it from
``sandbox-requirements.txt``) rather than the server's virtual environment: that one
holds the server's code and the local model's weights, which model code has no business
reading, and its interpreter may live under a home directory an unprivileged session
uid cannot enter. The sandbox runs the system's ``/usr/bin/python3`` instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from threadline.forking import fork_turn
from threadline.sandbox import seccomp
from threadline.sandbox.limits import MIB, SandboxLimits

DRIVER_DIR = Path(__file__).with_name("inside")
INSIDE_DRIVER = "/opt/threadline"
INSIDE_PACKAGES = "/opt/packages"
WORK_DIR = "/mnt/data"
INSIDE_UID = 1000
SYSTEM_FILES = ("/etc/fonts",)
"""Configuration from the host's ``/etc`` that the packages need (matplotlib's fonts)."""
ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "XDG_CACHE_HOME": "/tmp/.cache",
    "LANG": "C.UTF-8",
    "MPLBACKEND": "module://threadline_mpl",
    "MPLCONFIGDIR": "/tmp/matplotlib",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass(frozen=True)
class Spawn:
    """A command that starts a session, and descriptors it inherits (closed after)."""

    argv: list[str]
    pass_fds: tuple[int, ...] = ()


@dataclass(frozen=True)
class Launch:
    """What a session runs, and as whom on the host."""

    python: Path
    packages: Path | None
    limits: SandboxLimits
    host_uid: int | None = None
    """Host uid to start the sandbox as (only when the server is root), else its own."""

    def driver_argv(self) -> list[str]:
        paths = [INSIDE_DRIVER] + ([INSIDE_PACKAGES] if self.packages else [])
        config = json.dumps(self.limits.driver_config(paths))
        return [str(self.python), "-I", "-S", f"{INSIDE_DRIVER}/driver.py", config]

    def read_only_binds(self) -> list[tuple[str, str]]:
        """(host path, sandbox path) pairs beside ``/usr``."""
        binds = [(str(DRIVER_DIR), INSIDE_DRIVER)]
        binds += [(path, path) for path in SYSTEM_FILES if Path(path).exists()]
        if self.packages is not None:
            binds.append((str(self.packages.resolve()), INSIDE_PACKAGES))
        prefix = self.python.resolve().parent.parent
        if prefix != Path("/usr") and not prefix.is_relative_to("/usr"):
            binds.append((str(prefix), str(prefix)))
        return binds


def _root_links() -> list[tuple[str, str]]:
    """Top-level names that merged-/usr systems make links into ``/usr``."""
    links = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            links.append((os.readlink(path), f"/{name}"))
    return links


class Sandbox(ABC):
    """One way of isolating a session; ``argv`` starts it with the driver inside."""

    name: ClassVar[str]

    @abstractmethod
    def missing(self) -> str | None:
        """Why this backend cannot be tried here at all (a binary absent), or None."""

    @abstractmethod
    def spawn(self, launch: Launch, session_name: str) -> Spawn:
        """The command that starts one session, its stdin/stdout the driver's pipes."""

    async def cleanup(self, session_name: str) -> None:  # noqa: B027 - optional hook
        """Remove what a session left on the host once its process has ended."""

    @property
    def needs_root(self) -> bool:
        return False


class BwrapSandbox(Sandbox):
    name = "bwrap"

    def __init__(self, binary: str = "bwrap") -> None:
        self._binary = binary

    def missing(self) -> str | None:
        if shutil.which(self._binary) is None:
            return f"{self._binary} not found (Debian package bubblewrap)"
        return None

    def spawn(self, launch: Launch, session_name: str) -> Spawn:
        limits = launch.limits
        argv = [
            self._binary,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--uid",
            str(INSIDE_UID),
            "--gid",
            str(INSIDE_UID),
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for target, link in _root_links():
            argv += ["--symlink", target, link]
        for source, dest in launch.read_only_binds():
            argv += ["--ro-bind", source, dest]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += ["--size", str(limits.tmp_mb * MIB), "--tmpfs", "/tmp"]
        argv += ["--perms", "0700", "--size", str(limits.disk_mb * MIB), "--tmpfs", WORK_DIR]
        argv += ["--remount-ro", "/", "--chdir", WORK_DIR]
        for key, value in ENVIRONMENT.items():
            argv += ["--setenv", key, value]
        fd = seccomp.program_fd()
        if fd is None:
            return Spawn([*argv, "--", *launch.driver_argv()])
        return Spawn([*argv, "--seccomp", str(fd), "--", *launch.driver_argv()], (fd,))


class GVisorSandbox(Sandbox):
    """gVisor through ``runsc run`` on an OCI bundle written for each session.

    ``runsc do`` would be shorter but shows the whole host file system read-only;
    the bundle mounts exactly the tree described in this module's docstring. Cgroups
    are left alone (``--ignore-cgroups``): on a cgroup v1 host, runsc's own cgroup
    set-up ended the sandbox as soon as a few processes forked at once; the rlimits,
    which the Sentry enforces itself, bound the session instead.
    """

    name = "gvisor"

    def __init__(self, binary: str = "runsc", state_dir: Path | None = None) -> None:
        self._binary = binary
        base = state_dir or Path("/run/threadline-runsc")
        self._state = base / "state"
        self._bundles = base / "bundles"

    @property
    def needs_root(self) -> bool:
        return True

    def missing(self) -> str | None:
        if shutil.which(self._binary) is None:
            return f"{self._binary} not found (Debian package runsc)"
        if os.geteuid() != 0:
            return "gVisor's runsc needs the server to run as root"
        return None

    def _spec(self, launch: Launch) -> dict[str, Any]:
        limits = launch.limits
        mounts: list[dict[str, Any]] = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", f"size={limits.tmp_mb * MIB}", "mode=1777"],
            },
            {
                "destination": WORK_DIR,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": [
                    "nosuid",
                    "nodev",
                    f"size={limits.disk_mb * MIB}",
                    "mode=0700",
                    f"uid={INSIDE_UID}",
                    f"gid={INSIDE_UID}",
                ],
            },
            {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["ro", "rbind"]},
        ]
        for source, dest in launch.read_only_binds():
            mounts.append(
                {"destination": dest, "type": "bind", "source": source, "options": ["ro", "rbind"]}
            )
        rlimits = [
            {"type": "RLIMIT_NOFILE", "hard": limits.open_files, "soft": limits.open_files},
        ]
        return {
            "ociVersion": "1.0.0",
            "process": {
                "terminal": False,
                "user": {"uid": INSIDE_UID, "gid": INSIDE_UID},
                "args": launch.driver_argv(),
                "env": [f"{key}={value}" for key, value in ENVIRONMENT.items()],
                "cwd": WORK_DIR,
                "capabilities": {
                    key: []
                    for key in ("bounding", "effective", "inheritable", "permitted", "ambient")
                },
                "rlimits": rlimits,
                "noNewPrivileges": True,
            },
            "root": {"path": "rootfs", "readonly": True},
            "hostname": "sandbox",
            "mounts": mounts,
            "linux": {
                "namespaces": [
                    {"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")
                ],
            },
        }

    def spawn(self, launch: Launch, session_name: str) -> Spawn:
        bundle = self._bundles / session_name
        rootfs = bundle / "rootfs"
        self._bundles.mkdir(mode=0o700, parents=True, exist_ok=True)
        rootfs.mkdir(parents=True, exist_ok=True)
        for target, link in _root_links():
            link_path = rootfs / link.lstrip("/")
            if not link_path.is_symlink():
                link_path.symlink_to(target)
        for dest in ("usr", "proc", "dev", "tmp", "mnt/data", "opt", "etc"):
            (rootfs / dest).mkdir(parents=True, exist_ok=True)
        for _source, dest in launch.read_only_binds():
            (rootfs / dest.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (bundle / "config.json").write_text(json.dumps(self._spec(launch)))
        self._state.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Spawn(
            [
                self._binary,
                "--root",
                str(self._state),
                "--network=none",
                "--ignore-cgroups",
                "run",
                "--bundle",
                str(bundle),
                session_name,
            ]
        )

    async def cleanup(self, session_name: str) -> None:
        async with fork_turn():
            process = await asyncio.create_subprocess_exec(
                self._binary,
                "--root",
                str(self._state),
                "delete",
                "--force",
                session_name,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        await process.wait()
        await asyncio.to_thread(shutil.rmtree, self._bundles / session_name, True)


BACKENDS: dict[str, type[Sandbox]] = {"gvisor": GVisorSandbox, "bwrap": BwrapSandbox}
