"""Errors of the sandbox.

    SandboxError
    ├── SandboxUnavailable     no sandbox can start here (or it is turned off)
    ├── InvalidFileName        a name that cannot become a file in /mnt/data
    └── SessionFailed          the sandbox refused a request (a file it could not write)

A failure of user code (an exception, a timeout, a killed session) is never one of
these: it is an ``ExecutionResult`` that says so.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Root of the sandbox's errors."""


class SandboxUnavailable(SandboxError):
    """No sandbox backend can run Python here; model code must not run at all."""


class InvalidFileName(SandboxError):
    """A file name that sanitising leaves empty or pointing outside ``/mnt/data``."""


class SessionFailed(SandboxError):
    """The session answered a request with a refusal, or did not start."""
