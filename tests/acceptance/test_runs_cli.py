"""``threadline runs`` against a live server's database: list the active runs of
every project, show one with its steps and timeline, cancel one through the same
transitions as the API. A mistake is one line on stderr and a non-zero exit,
never a traceback. The commands the server must notice, and one mistake, run as
processes of their own; the others through ``main`` (each process spends seconds
importing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import threadline
from tests.support.runs import new_assistant, poll, scripted_thread, wait_for, weather_call
from tests.support.servers import ENGINES, Served, serve
from threadline.cli import main

SRC = str(Path(threadline.__file__).resolve().parents[1])


@pytest.fixture(scope="module", params=ENGINES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Leases renewed every half second: a cancel made by another process is
    seen by the executing turn that soon."""
    data_dir = tmp_path_factory.mktemp(f"runs-cli-{request.param}")
    with serve(request.param, data_dir, run_lease_seconds=1.5) as served:
        yield served


def threadline_runs(server: Served, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p),
        "THREADLINE_DATABASE_URL": server.database_url,
        "THREADLINE_DATA_DIR": str(server.data_dir),
        "THREADLINE_MODEL_BACKEND": "scripted",
        "THREADLINE_EMBEDDER": "hash",
    }
    return subprocess.run(
        [sys.executable, "-m", "threadline", "runs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


class InProcess:
    """``threadline runs …`` through ``main``, on the server's database."""

    def __init__(
        self, server: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("THREADLINE_DATABASE_URL", server.database_url)
        monkeypatch.setenv("THREADLINE_DATA_DIR", str(server.data_dir))
        monkeypatch.setenv("THREADLINE_MODEL_BACKEND", "scripted")
        monkeypatch.setenv("THREADLINE_EMBEDDER", "hash")
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["runs", *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def lines(self, *args: str) -> list[dict[str, Any]]:
        code, out, err = self(*args)
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def runs_cli(
    server: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> InProcess:
    return InProcess(server, monkeypatch, capsys)


def test_list_show_and_cancel(server: Served, runs_cli: InProcess) -> None:
    client = server.client()
    assistant = new_assistant(client)
    finished = client.beta.threads.runs.create(
        scripted_thread(client, "hi"), assistant_id=assistant
    )
    assert poll(client, finished.thread_id, finished.id).status == "completed"
    hanging = client.beta.threads.runs.create(
        scripted_thread(client, {"hang": True}), assistant_id=assistant
    )
    wait_for(client, hanging.thread_id, hanging.id, "in_progress")
    waiting = client.beta.threads.runs.create(
        scripted_thread(client, {"tool_calls": [weather_call("Oslo")]}), assistant_id=assistant
    )
    assert poll(client, waiting.thread_id, waiting.id).status == "requires_action"

    listed = runs_cli.lines("list")
    assert [(r["id"], r["status"]) for r in listed] == [
        (hanging.id, "in_progress"),
        (waiting.id, "requires_action"),
    ]
    assert {r["project_id"] for r in listed} == {"proj_a"}
    assert listed[0]["lease_owner"] is not None
    assert listed[1]["lease_owner"] is None
    only = runs_cli.lines("list", "--status", "requires_action", "--limit", "5")
    assert [r["id"] for r in only] == [waiting.id]
    assert runs_cli.lines("list", "--project", "proj_b") == []

    code, out, _ = runs_cli("show", finished.id)
    assert code == 0
    shown = json.loads(out)
    assert shown["project_id"] == "proj_a"
    assert shown["run"]["id"] == finished.id
    assert [s["type"] for s in shown["steps"]] == ["message_creation"]
    moments = [m["what"] for m in shown["timeline"]]
    assert moments[0] == "run created"
    assert moments[-1] in {"run completed", f"step {shown['steps'][0]['id']} completed"}
    assert "run completed" in moments

    cancelled = lines(threadline_runs(server, "cancel", hanging.id))
    assert [(r["id"], r["status"]) for r in cancelled] == [(hanging.id, "cancelling")]
    assert poll(client, hanging.thread_id, hanging.id).status == "cancelled"
    assert runs_cli.lines("cancel", waiting.id)[0]["status"] == "cancelling"
    assert poll(client, waiting.thread_id, waiting.id).status == "cancelled"
    assert runs_cli.lines("list") == []


def test_an_unknown_run_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with serve("sqlite", tmp_path) as server:
        unknown = threadline_runs(server, "show", "run_nope")
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert unknown.stderr == "threadline: No run found with id 'run_nope'.\n"


def test_mistakes_are_one_line_and_a_non_zero_exit(server: Served, runs_cli: InProcess) -> None:
    client = server.client()
    done = client.beta.threads.create_and_run(assistant_id=new_assistant(client))
    assert poll(client, done.thread_id, done.id).status == "completed"
    for args, message in (
        (("show", "run_nope"), "threadline: No run found with id 'run_nope'.\n"),
        (("cancel", "run_nope"), "threadline: No run found with id 'run_nope'.\n"),
        (("cancel", done.id), "threadline: Cannot cancel run with status 'completed'.\n"),
    ):
        assert runs_cli(*args) == (1, "", message)
    with pytest.raises(SystemExit) as usage:
        main(["runs", "list", "--limit", "0"])
    assert usage.value.code == 2
    err = runs_cli.capsys.readouterr().err
    assert "--limit: must be between 1 and 10000" in err
    assert "Traceback" not in err
