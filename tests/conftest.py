"""Shared fixtures: databases (SQLite and PostgreSQL), live servers, SDK clients.

The helpers behind them (keys, engines, ``serve``) are in ``tests.support.servers``;
tests import from there, never from a conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.servers import (
    ENGINES,
    KEY_A,
    KEY_B,
    Served,
    make_settings,
    postgres_database,
    serve,
)
from threadline.testing import serve_in_thread


@pytest.fixture(params=["sqlite", "sqlite-plain", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    """The storage and engine suites' engines: SQLite with its fast path
    (``storage.sqlite_fast``) and without it, and PostgreSQL."""
    return str(request.param)


@pytest.fixture
def fast_path(engine: str) -> bool:
    """Whether ``Database`` takes the SQLite fast path (``engine`` says)."""
    return engine != "sqlite-plain"


@pytest.fixture
def database_url(engine: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each engine."""
    if engine.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'threadline.db'}"
    else:
        yield from postgres_database()


@pytest.fixture(scope="session", params=ENGINES)
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A running server (``/v1`` URL) on each engine, shared by a whole session."""
    data_dir = tmp_path_factory.mktemp(f"server-{request.param}")
    if request.param == "sqlite":
        with serve_in_thread(make_settings(data_dir)) as url:
            yield url
    else:
        for db_url in postgres_database():
            with serve_in_thread(make_settings(data_dir, db_url)) as url:
                yield url


@pytest.fixture
def client(live_server: str) -> openai.OpenAI:
    """The official SDK, as project A."""
    return openai.OpenAI(base_url=live_server, api_key=KEY_A, max_retries=0)


@pytest.fixture
def other_client(live_server: str) -> openai.OpenAI:
    """The official SDK, as project B."""
    return openai.OpenAI(base_url=live_server, api_key=KEY_B, max_retries=0)


@pytest.fixture(scope="module", params=ENGINES)
def own_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server per test module and engine, for tests that look at storage."""
    with serve(request.param, tmp_path_factory.mktemp(f"own-{request.param}")) as served:
        yield served


@pytest.fixture(autouse=True)
def _close_sdk_clients(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close the SDK clients a test was given (``client``, ``other_client``…): one left
    to the garbage collector may have its socket finalised first, which pytest
    (warnings as errors) reports as an unclosed-socket failure."""
    yield
    for value in request.node.funcargs.values():
        if isinstance(value, openai.OpenAI):
            value.close()
