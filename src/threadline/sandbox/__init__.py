"""code_interpreter's sandbox: stateful Python sessions isolated from the host.

``create_pool(settings)`` picks the strongest backend that starts here (gVisor, else
bubblewrap) and returns a ``SessionPool``; ``pool.execute(thread_id, code)`` gives an
``ExecutionResult``. See ``backends`` for what the code can see, ``limits`` for what it
may use, and ``inside/driver.py`` for the REPL that runs in the sandbox.
"""

from threadline.sandbox.backends import BwrapSandbox, GVisorSandbox, Launch, Sandbox
from threadline.sandbox.errors import (
    InvalidFileName,
    SandboxError,
    SandboxUnavailable,
    SessionFailed,
)
from threadline.sandbox.limits import SandboxLimits
from threadline.sandbox.pool import SessionPool
from threadline.sandbox.probe import PACKAGES, choose_sandbox, create_pool, launch_from_settings
from threadline.sandbox.result import ExecutionResult, OutputFile
from threadline.sandbox.session import CodeSession, sanitize_file_name

__all__ = [
    "PACKAGES",
    "BwrapSandbox",
    "CodeSession",
    "ExecutionResult",
    "GVisorSandbox",
    "InvalidFileName",
    "Launch",
    "OutputFile",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxUnavailable",
    "SessionFailed",
    "SessionPool",
    "choose_sandbox",
    "create_pool",
    "launch_from_settings",
    "sanitize_file_name",
]
