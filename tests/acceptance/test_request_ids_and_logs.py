"""Every response carries ``x-request-id`` (the client's when it is a plain token,
else a new one), errors included; with ``THREADLINE_LOG_FORMAT=json`` a run's
engine lines carry its run, thread and project, and a request's lines its id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

import threadline
from tests.support.polling import wait_until
from tests.support.runs import http, new_assistant, poll, scripted_thread
from tests.support.servers import KEY_A, make_settings
from threadline.app import create_app
from threadline.testing import free_port


def test_a_given_request_id_is_echoed(client: openai.OpenAI) -> None:
    response = http(client).get("/assistants", headers={"x-request-id": "trace-42.a:b/c"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42.a:b/c"


@pytest.mark.parametrize(
    "given",
    ["x" * 129, "has space", "semi;colon", "ünï", ""],
    ids=["long", "space", "semi", "non-ascii", "empty"],
)
def test_an_unfit_request_id_is_replaced(client: openai.OpenAI, given: str) -> None:
    response = http(client).get("/assistants", headers={"x-request-id": given.encode()})
    assert response.status_code == 200
    made = response.headers["x-request-id"]
    assert made.startswith("req_")
    assert made != given


def test_every_error_carries_a_request_id(client: openai.OpenAI) -> None:
    raw = http(client)
    ids = set()
    for response in (
        raw.get("/threads/thread_nope"),  # 404
        raw.get("/assistants", headers={"Authorization": "Bearer wrong"}),  # 401
        raw.post("/assistants", json={"model": 5}),  # 400
        raw.post("/assistants", content=b"x" * (9 * 1024 * 1024)),  # 413, before the app
        raw.put("/assistants"),  # 405
    ):
        assert response.status_code >= 400
        assert "error" in response.json()
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 5


def test_an_unexpected_error_carries_its_request_id(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    with TestClient(app, raise_server_exceptions=False) as local:
        response = local.get("/boom", headers={"x-request-id": "boom-1"})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert response.headers["x-request-id"] == "boom-1"


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        assert line.startswith("{"), f"not a JSON line: {line!r}"
        lines.append(json.loads(line))
    return lines


def test_json_logs_carry_the_run_and_the_request(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    src = str(Path(threadline.__file__).resolve().parents[1])
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
        "THREADLINE_DATA_DIR": str(tmp_path),
        "THREADLINE_API_KEYS": f"proj_a:{KEY_A}",
        "THREADLINE_MODEL_BACKEND": "scripted",
        "THREADLINE_EMBEDDER": "hash",
        "THREADLINE_LOG_FORMAT": "json",
        "THREADLINE_LOG_LEVEL": "debug",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "threadline", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    root = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, log_path.read_text()
        try:
            return httpx.get(root + "/healthz", timeout=1).is_success
        except httpx.TransportError:
            return False

    try:
        wait_until("the server to start", healthy, 60, log=log_path.read_text)
        client = openai.OpenAI(
            base_url=root + "/v1",
            api_key=KEY_A,
            max_retries=0,
            default_headers={"x-request-id": "run-request-7"},
        )
        try:
            assistant = new_assistant(client)
            run = client.beta.threads.runs.create(
                scripted_thread(client, "hello"), assistant_id=assistant
            )
            assert poll(client, run.thread_id, run.id).status == "completed"
        finally:
            client.close()
        # A playground page reads /v1 in-process: those inner requests have ids of
        # their own, which must not become the page request's.
        page = httpx.get(
            root + "/playground/assistants",
            headers={
                "HX-Request": "true",
                "Authorization": f"Bearer {KEY_A}",
                "x-request-id": "page-request-8",
            },
            timeout=30,
        )
        assert page.status_code == 200
        assert page.headers["x-request-id"] == "page-request-8"
    finally:
        proc.terminate()
        proc.wait(30)
    lines = _json_lines(log_path)
    engine = [line for line in lines if line["logger"] == "threadline.engine"]
    ended = [line for line in engine if line["message"] == "turn ended: completed"]
    assert len(ended) == 1
    assert ended[0]["run_id"] == run.id
    assert ended[0]["thread_id"] == run.thread_id
    assert ended[0]["project"] == "proj_a"
    assert ended[0]["level"] == "DEBUG"
    assert all(line["run_id"] == run.id for line in engine)
    access = [
        line for line in lines if line["logger"] == "uvicorn.access" and "/v1/" in line["message"]
    ]
    assert len(access) >= 4  # the assistant, the thread, the run, its polls
    assert all(line["request_id"] == "run-request-7" for line in access)
    pages = [
        line
        for line in lines
        if line["logger"] == "uvicorn.access" and "/playground/assistants" in line["message"]
    ]
    assert len(pages) == 1
    assert pages[0]["request_id"] == "page-request-8"
    health = [line for line in lines if "/healthz" in line["message"]]
    assert health, "no health checks logged"
    assert all(line["request_id"].startswith("req_") for line in health)
    assert all("time" in line for line in lines)
