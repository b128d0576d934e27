"""Choosing the sandbox at start-up, and refusing clearly when none can run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from threadline.sandbox import (
    BwrapSandbox,
    GVisorSandbox,
    Launch,
    Sandbox,
    SandboxUnavailable,
    choose_sandbox,
    create_pool,
)
from threadline.sandbox.probe import probe_backend
from threadline.settings import SandboxChoice, Settings

ROOT = Path(__file__).resolve().parents[3]


def choice_of(backend: Sandbox) -> SandboxChoice:
    return "gvisor" if backend.name == "gvisor" else "bwrap"


async def test_off_refuses(launch: Launch) -> None:
    with pytest.raises(SandboxUnavailable, match="THREADLINE_SANDBOX=off"):
        await choose_sandbox("off", launch)
    with pytest.raises(SandboxUnavailable, match="turned off"):
        await create_pool(Settings(sandbox="off"))


async def test_missing_packages_are_named(tmp_path: Path) -> None:
    settings = Settings(sandbox="bwrap", sandbox_packages=tmp_path / "absent")
    with pytest.raises(SandboxUnavailable, match=r"scripts/setup\.sh"):
        await create_pool(settings)


async def test_a_backend_that_cannot_start_python_says_why(launch: Launch) -> None:
    broken = BwrapSandbox(binary="/nonexistent/bwrap")
    assert broken.missing() is not None
    bad_python = Launch(python=Path("/usr/bin/no-such-python"), packages=None, limits=launch.limits)
    reason = await probe_backend(BwrapSandbox(), bad_python)
    if BwrapSandbox().missing() is None:
        assert reason is not None
        assert "did not start Python" in reason


async def test_auto_picks_the_strongest_that_runs(
    backend: Sandbox, launch: Launch, caplog: pytest.LogCaptureFixture
) -> None:
    # ``backend`` runs here (the fixture skips otherwise); auto must pick gVisor when
    # gVisor runs, bubblewrap only when it does not.
    gvisor_runs = GVisorSandbox().missing() is None and (
        await probe_backend(GVisorSandbox(), launch) is None
    )
    with caplog.at_level(logging.INFO, logger="threadline.sandbox.probe"):
        chosen = await choose_sandbox("auto", launch)
    assert chosen.name == ("gvisor" if gvisor_runs else "bwrap")
    assert f"runs in the {chosen.name} sandbox" in caplog.text
    forced = await choose_sandbox(choice_of(backend), launch)
    assert forced.name == backend.name


async def test_pool_from_settings_runs_code(backend: Sandbox) -> None:
    settings = Settings(
        sandbox=choice_of(backend),
        sandbox_packages=ROOT / ".sandbox-packages",
        sandbox_max_sessions=2,
        sandbox_timeout_seconds=30,
    )
    pool = await create_pool(settings)
    try:
        assert pool.sandbox.name == backend.name
        result = await pool.execute("t", "import pandas; print(pandas.__version__)")
        assert result.error is None, result.error
        assert result.logs.strip() == "3.1.1"
    finally:
        await pool.aclose()


def test_settings_read_the_sandbox_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADLINE_SANDBOX", "bwrap")
    monkeypatch.setenv("THREADLINE_SANDBOX_MAX_SESSIONS", "3")
    monkeypatch.setenv("THREADLINE_SANDBOX_IDLE_SECONDS", "120")
    monkeypatch.setenv("THREADLINE_SANDBOX_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("THREADLINE_SANDBOX_MEMORY_MB", "512")
    settings = Settings()
    assert settings.sandbox == "bwrap"
    assert settings.sandbox_max_sessions == 3
    assert settings.sandbox_idle_seconds == 120
    assert settings.sandbox_timeout_seconds == 5
    assert settings.sandbox_memory_mb == 512
    monkeypatch.setenv("THREADLINE_SANDBOX", "docker")
    with pytest.raises(ValidationError):
        Settings()
