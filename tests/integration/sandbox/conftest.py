"""Fixtures of the sandbox tests: real sessions in every backend that starts here.

``backend`` runs each test once per backend; one that cannot start Python on this
machine is skipped with the probe's reason (CI installs both, see scripts/setup.sh),
except bubblewrap under ``THREADLINE_REQUIRE_SANDBOX=1`` (``scripts/test.sh``), where
its absence fails: then no backend at all would be tested. gVisor needs root.
``new_session()`` gives sessions that are closed when the test ends; as root each gets
a host uid of its own, as the pool would give it; ``new_session(guard)`` bounds its
memory as a whole with that guard.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from threadline.sandbox import BwrapSandbox, CodeSession, GVisorSandbox, Launch, Sandbox
from threadline.sandbox.limits import SandboxLimits
from threadline.sandbox.memory import MemoryGuard
from threadline.sandbox.pool import UID_BASE
from threadline.sandbox.probe import probe_backend

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ROOT / ".sandbox-packages"
TEST_LIMITS = SandboxLimits(timeout_seconds=30.0, memory_mb=1024, disk_mb=256, tmp_mb=64)

_verdicts: dict[str, str | None] = {}

SessionFactory = Callable[..., Awaitable[CodeSession]]


@pytest.fixture(scope="session")
def launch() -> Launch:
    packages = PACKAGES if PACKAGES.is_dir() else None
    return Launch(python=Path("/usr/bin/python3"), packages=packages, limits=TEST_LIMITS)


@pytest.fixture(params=["gvisor", "bwrap"])
async def backend(request: pytest.FixtureRequest, launch: Launch) -> Sandbox:
    name: str = request.param
    sandbox: Sandbox = GVisorSandbox() if name == "gvisor" else BwrapSandbox()
    if name not in _verdicts:
        _verdicts[name] = sandbox.missing() or await probe_backend(sandbox, launch)
    if _verdicts[name] is not None:
        if name == "bwrap" and os.environ.get("THREADLINE_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"bwrap cannot run here: {_verdicts[name]}")
        pytest.skip(f"{name} cannot run here: {_verdicts[name]}")
    return sandbox


@pytest.fixture
async def new_session(backend: Sandbox, launch: Launch) -> AsyncIterator[SessionFactory]:
    sessions: list[CodeSession] = []

    async def make(guard: MemoryGuard | None = None, **limits: Any) -> CodeSession:
        custom = replace(launch, limits=replace(launch.limits, **limits))
        if os.geteuid() == 0 and not backend.needs_root:
            custom = replace(custom, host_uid=UID_BASE + 100 + len(sessions))
        session = CodeSession(backend, custom, guard)
        sessions.append(session)
        await session.start()
        return session

    yield make
    for session in sessions:
        await session.close()


@pytest.fixture
async def session(new_session: SessionFactory) -> CodeSession:
    return await new_session()
