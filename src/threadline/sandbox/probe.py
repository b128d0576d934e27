"""Choosing the sandbox at start-up: the strongest backend that really runs Python.

``choose_sandbox`` starts a session in each candidate, strongest first (gVisor, then
bubblewrap), and keeps the first whose Python prints and imports the documented
packages. Which one, and why the others were passed over, goes to the log. When none
can, ``SandboxUnavailable`` says why for each: code_interpreter is then refused, and
model code never runs outside a sandbox.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace

from threadline.sandbox.backends import BACKENDS, Launch, Sandbox
from threadline.sandbox.errors import SandboxError, SandboxUnavailable
from threadline.sandbox.limits import MIB, SandboxLimits
from threadline.sandbox.memory import choose_memory_guard
from threadline.sandbox.pool import UID_BASE, SessionPool
from threadline.sandbox.session import CodeSession
from threadline.settings import SandboxChoice, Settings

logger = logging.getLogger(__name__)

PACKAGES = ("numpy", "pandas", "matplotlib")
"""What the sandbox's Python must import (the set ``scripts/setup.sh`` installs)."""
_PROBE = "import " + ", ".join(PACKAGES) + "\nprint(6 * 7)"
_PROBE_TIMEOUT = 120.0


def launch_from_settings(settings: Settings) -> Launch:
    limits = SandboxLimits(
        memory_mb=settings.sandbox_memory_mb,
        session_memory_mb=settings.sandbox_session_memory_mb,
        timeout_seconds=settings.sandbox_timeout_seconds,
    )
    packages = settings.sandbox_packages
    if packages is not None and not packages.is_dir():
        raise SandboxUnavailable(
            f"the sandbox's packages are not at {packages.resolve()}: run scripts/setup.sh "
            "or set THREADLINE_SANDBOX_PACKAGES"
        )
    if not settings.sandbox_python.is_file():
        raise SandboxUnavailable(
            f"no interpreter at {settings.sandbox_python} (THREADLINE_SANDBOX_PYTHON)"
        )
    return Launch(python=settings.sandbox_python, packages=packages, limits=limits)


async def probe_backend(sandbox: Sandbox, launch: Launch) -> str | None:
    """Why ``sandbox`` cannot run the probe, or None when it can."""
    if os.geteuid() == 0 and not sandbox.needs_root:
        launch = replace(launch, host_uid=UID_BASE)
    session = CodeSession(sandbox, launch)
    try:
        result = await session.execute(_PROBE, _PROBE_TIMEOUT)
    except SandboxError as exc:
        return str(exc)
    finally:
        await session.close()
    if result.error is not None:
        return result.error.strip().splitlines()[-1]
    if result.logs.strip() != "42":
        return f"unexpected output {result.logs[:200]!r}"
    return None


async def choose_sandbox(choice: SandboxChoice, launch: Launch) -> Sandbox:
    if choice == "off":
        raise SandboxUnavailable("code_interpreter is turned off (THREADLINE_SANDBOX=off)")
    names = ["gvisor", "bwrap"] if choice == "auto" else [choice]
    reasons = []
    for name in names:
        sandbox = BACKENDS[name]()
        reason = sandbox.missing() or await probe_backend(sandbox, launch)
        if reason is None:
            logger.info("code_interpreter runs in the %s sandbox", name)
            return sandbox
        logger.warning("the %s sandbox cannot run here: %s", name, reason)
        reasons.append(f"{name}: {reason}")
    raise SandboxUnavailable(
        "no sandbox can run Python here, so code_interpreter is refused ("
        + "; ".join(reasons)
        + "); see scripts/setup.sh"
    )


async def create_pool(settings: Settings, sandbox: Sandbox | None = None) -> SessionPool:
    """The session pool the settings describe, in the strongest sandbox that works
    (or in ``sandbox``, already known to work here: no probe)."""
    if settings.sandbox == "off":
        raise SandboxUnavailable("code_interpreter is turned off (THREADLINE_SANDBOX=off)")
    launch = launch_from_settings(settings)
    if sandbox is None:
        sandbox = await choose_sandbox(settings.sandbox, launch)
    guard = await asyncio.to_thread(choose_memory_guard, launch.limits.session_memory_mb * MIB)
    logger.info("code_interpreter sessions' memory: %s", guard.describe())
    return SessionPool(
        sandbox,
        launch,
        max_sessions=settings.sandbox_max_sessions,
        idle_seconds=settings.sandbox_idle_seconds,
        guard=guard,
    )
