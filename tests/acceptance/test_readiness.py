"""``/healthz`` and ``/readyz``; the process roles the settings allow."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from tests.support.servers import make_settings
from threadline.cli import main
from threadline.settings import Settings
from threadline.testing import free_port, serve_in_thread


def test_ready_when_the_database_and_redis_answer(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url="redis://127.0.0.1:6379/0")
    with serve_in_thread(settings) as url:
        base = url.removesuffix("/v1")
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
        assert httpx.get(base + "/readyz").json() == {"status": "ready"}


def test_not_ready_is_a_503_in_the_error_envelope(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    settings = make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{closed}/0")
    with serve_in_thread(settings) as url:
        base = url.removesuffix("/v1")
        assert httpx.get(base + "/healthz").status_code == 200  # up, but not ready
        response = httpx.get(base + "/readyz", timeout=10)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["type"] == "service_unavailable"
        assert error["message"].startswith("The event bus cannot be reached")
        assert set(error) == {"message", "type", "param", "code"}


def test_an_api_only_process_needs_the_shared_queue_on_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="THREADLINE_QUEUE=procrastinate"):
        Settings(data_dir=tmp_path, worker=False)
    with pytest.raises(ValidationError, match="needs a PostgreSQL database"):
        Settings(data_dir=tmp_path, queue="procrastinate")
    api = Settings(
        database_url="postgresql://postgres@127.0.0.1/x", queue="procrastinate", worker=False
    )
    assert api.worker is False
    as_written = Settings.model_validate(
        {"database_url": "postgresql://h/x", "queue": "procrastinate", "worker": "off"}
    )
    assert as_written.worker is False


def test_a_worker_process_needs_the_shared_queue(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("THREADLINE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("THREADLINE_QUEUE", raising=False)
    assert main(["worker"]) == 2
    assert "THREADLINE_QUEUE=procrastinate" in capsys.readouterr().err
