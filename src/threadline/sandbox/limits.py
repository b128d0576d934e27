"""The resources one code session may use, and how they become settings.

Memory, CPU time, processes, file size and open files are rlimits the driver sets on
itself (soft equal to hard) before it runs any user code. Processes are counted per host
uid: a server running as root gives each session a uid of its own (``SessionPool``), so
a fork bomb exhausts only its own session's count. ``/mnt/data`` and ``/tmp`` are
tmpfs mounts of a fixed size, a disk quota that needs no quota support from the host's
file system; their pages are memory, so they count against the host's RAM:
``max_sessions * (disk_mb + tmp_mb)`` at worst.

Memory is bounded per process by ``RLIMIT_AS`` and for the whole session, its
processes and its tmpfs files together, by ``session_memory_mb`` (``memory``: a
cgroup per session where the host allows one, else a watcher of the session's
resident memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 1024
    """Address space of each process (``RLIMIT_AS``)."""
    session_memory_mb: int = 2048
    """Memory of all the session's processes together, its tmpfs files included
    (``memory.MemoryGuard``)."""
    cpu_seconds: int = 3600
    """CPU time of each process over the session's life (``RLIMIT_CPU``)."""
    processes: int = 32
    open_files: int = 256
    file_mb: int = 512
    """Largest single file (``RLIMIT_FSIZE``)."""
    disk_mb: int = 512
    """Size of ``/mnt/data``."""
    tmp_mb: int = 128
    """Size of the private ``/tmp`` (which also holds the captured output)."""
    timeout_seconds: float = 60.0
    """Wall-clock time of one execution; past it the session is killed."""
    max_log_bytes: int = 1 * MIB
    max_file_bytes: int = 32 * MIB
    """Largest output file returned with its bytes."""
    max_output_bytes: int = 64 * MIB
    """All output files of one execution together."""

    def driver_config(self, paths: list[str]) -> dict[str, Any]:
        return {
            "paths": paths,
            "memory_bytes": self.memory_mb * MIB,
            "cpu_seconds": self.cpu_seconds,
            "processes": self.processes,
            "open_files": self.open_files,
            "file_bytes": self.file_mb * MIB,
            "max_log_bytes": self.max_log_bytes,
            "max_file_bytes": self.max_file_bytes,
            "max_output_bytes": self.max_output_bytes,
        }

    @property
    def max_reply_bytes(self) -> int:
        """Largest frame a session may send back (base64 grows data by 4/3)."""
        return (self.max_output_bytes + self.max_file_bytes) * 2 + self.max_log_bytes * 8 + MIB
