"""What one execution in a code session produced."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OutputFile:
    """A file in ``/mnt/data`` created or changed by an execution.

    ``data`` is ``None`` when the file is larger than the session lets out.
    """

    name: str
    size: int
    data: bytes | None

    @property
    def path(self) -> str:
        return f"/mnt/data/{self.name}"


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of running code: user errors, timeouts and crashes included.

    ``logs`` is stdout and stderr together (of child processes too); ``images`` are
    PNGs of the matplotlib figures shown or left open; ``error`` is the traceback, or
    what ended the session; ``restarted`` says the session was started afresh for this
    execution because the previous one ended (its variables and files are gone).
    """

    logs: str = ""
    images: list[bytes] = field(default_factory=list)
    files: list[OutputFile] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False
    restarted: bool = False
    restored: bool = False
    """After a restart: the conversation's files were put back in ``/mnt/data``."""
