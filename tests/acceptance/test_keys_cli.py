"""``threadline keys``: create, list, revoke; a mistake is one clear line on stderr
and a non-zero exit, never a traceback; a running server follows a revocation
within ``THREADLINE_KEY_CACHE_SECONDS``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from threadline.cli import main
from threadline.settings import Settings
from threadline.testing import serve_in_thread


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str, data_dir: Path) -> None:
    monkeypatch.setenv("THREADLINE_DATABASE_URL", url)
    monkeypatch.setenv("THREADLINE_DATA_DIR", str(data_dir))


def test_keys_commands_and_their_errors(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_database(monkeypatch, database_url, tmp_path)
    assert main(["keys", "create", "--project", "proj_cli", "--name", "ci"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["project_id"] == "proj_cli"
    assert made["key"].startswith("sk-tl-")
    assert main(["keys", "list"]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (listed["id"], listed["name"]) == (made["id"], "ci")
    assert made["key"] not in json.dumps(listed)

    assert main(["keys", "revoke", "key_does_not_exist"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "threadline: No key found with id 'key_does_not_exist'.\n"

    assert main(["keys", "revoke", made["id"]]) == 0
    assert capsys.readouterr().out == f"revoked {made['id']}\n"
    assert main(["keys", "revoke", made["id"]]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_bad_settings_and_unreachable_database_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THREADLINE_KEY_CACHE_SECONDS", "-1")
    assert main(["keys", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("threadline: invalid settings:")
    assert "key_cache_seconds" in err
    monkeypatch.delenv("THREADLINE_KEY_CACHE_SECONDS")
    _use_database(monkeypatch, "postgresql://postgres@127.0.0.1:1/nothing", tmp_path)
    assert main(["keys", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("threadline: cannot use the database:")
    assert err.count("\n") == 1


@pytest.fixture
def live_key_server(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A server with one static key (so not in development mode), on the database
    the ``threadline`` commands of the test use."""
    _use_database(monkeypatch, database_url, tmp_path)
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "database_url": database_url,
            "api_keys": "sk-static-0123456789abcdef",
            "model_backend": "scripted",
        }
    )
    with serve_in_thread(settings) as url:
        yield url


def test_a_server_follows_a_revocation_within_the_documented_bound(
    live_key_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--project", "proj_live"]) == 0
    key = json.loads(capsys.readouterr().out)
    sdk = openai.OpenAI(base_url=live_key_server, api_key=key["key"], max_retries=0)
    try:
        bound = Settings().key_cache_seconds + 0.5

        def answers() -> bool:
            try:
                sdk.beta.assistants.list()
            except openai.AuthenticationError:
                return False
            return True

        assert _within(bound, answers, True), "a new key was not accepted in time"
        assert main(["keys", "revoke", key["id"]]) == 0
        assert _within(bound, answers, False), "a revoked key still worked"
    finally:
        sdk.close()


def _within(seconds: float, probe: Callable[[], bool], wanted: bool) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe() is wanted:
            return True
        time.sleep(0.05)
    return False
