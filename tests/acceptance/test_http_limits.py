"""What the HTTP server does before the app: malformed requests get OpenAI's error
envelope, and slow clients (slowloris) are cut off at the configured deadlines.
Raw sockets to a server of the module's own with short deadlines."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from openai._constants import DEFAULT_CONNECTION_LIMITS

from threadline.settings import Settings
from threadline.testing import serve_in_thread

KEY = "sk-limits-0123456789abcdef"
HEAD_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("limits")
    settings = Settings.model_validate(
        {
            "data_dir": data_dir,
            "api_keys": KEY,
            "model_backend": "scripted",
            "request_head_timeout_seconds": HEAD_TIMEOUT,
            "request_body_timeout_seconds": BODY_TIMEOUT,
        }
    )
    with serve_in_thread(settings) as url:
        yield url


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _exchange(url: str, raw: bytes) -> tuple[int, dict[str, str], Any]:
    with _connect(url) as sock:
        sock.sendall(raw)
        answer = _read_all(sock)  # the server closes the connection after it
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"FOO /v1/assistants HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (
            b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            400,
        ),
        (b"GET /v1/" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
        (b"GET /v1/assistants HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431),
    ],
    ids=["unknown-method", "negative-length", "two-lengths", "long-url", "long-header"],
)
def test_malformed_http_gets_the_error_envelope(server: str, raw: bytes, status: int) -> None:
    got, headers, body = _exchange(server, raw)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (it must, within ``seconds``)."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        _read_all(sock)
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")
    return time.monotonic() - started


def test_a_silent_connection_is_closed(server: str) -> None:
    with _connect(server) as sock:
        assert _closed_within(sock, HEAD_TIMEOUT + 3) >= HEAD_TIMEOUT * 0.8


def test_a_head_sent_slowly_is_cut_off(server: str) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v1/assistants HTTP/1.1\r\n")
        for _ in range(int(HEAD_TIMEOUT / 0.1) + 20):  # a header line now and then
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break  # closed by the server
            time.sleep(0.1)
        _closed_within(sock, 3)
        assert time.monotonic() - started < HEAD_TIMEOUT + 3


def test_a_body_that_stops_coming_is_cut_off(server: str) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {KEY}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            + b'{"model": '
        )
        assert _closed_within(sock, BODY_TIMEOUT + 3) >= BODY_TIMEOUT * 0.8


def test_well_formed_requests_still_work(server: str) -> None:
    with openai.OpenAI(base_url=server, api_key=KEY, max_retries=0) as sdk:
        made = sdk.beta.assistants.create(model="gpt-4o", name="after the limits")
        assert sdk.beta.assistants.retrieve(made.id).name == "after the limits"
    # Two requests on one connection, the second after a pause shorter than the
    # keep-alive: the head deadline counts from its first byte, not the connection.
    with _connect(server) as sock:
        request = f"GET /v1/assistants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n"
        for _ in range(2):
            sock.sendall(request.encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
            time.sleep(HEAD_TIMEOUT * 1.5)


def test_a_body_that_keeps_coming_is_not_cut_off(server: str) -> None:
    body = json.dumps({"model": "gpt-4o", "name": "slow but steady"}).encode()
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {KEY}\r\n".encode()
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        pieces = [body[i : i + 8] for i in range(0, len(body), 8)]
        for piece in pieces:  # longer in all than the deadline, never a gap as long
            time.sleep(BODY_TIMEOUT / 3)
            sock.sendall(piece)
        assert len(pieces) * BODY_TIMEOUT / 3 > BODY_TIMEOUT
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_an_idle_connection_outlives_the_sdks_pool(server: str) -> None:
    # The official SDK keeps an idle connection for httpx's keep-alive expiry and
    # then reuses it. Were the server to close it first, a request sent at that
    # moment would meet the close: ``APIConnectionError`` from ``ReadError('')``.
    expiry = DEFAULT_CONNECTION_LIMITS.keepalive_expiry
    assert expiry is not None
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with _connect(server) as sock:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        sock.settimeout(expiry + 0.5)  # idle as long as the pool would keep it, and more
        with pytest.raises(TimeoutError):
            sock.recv(1)  # b"" had the server closed it
        sock.settimeout(5)
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
