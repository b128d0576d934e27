"""Shared fixtures: databases (SQLite and PostgreSQL), live servers, SDK clients.

PostgreSQL tests use a fresh database on ``THREADLINE_TEST_POSTGRES_URL``
(default: the machine's server, user ``postgres``). When it cannot be reached the
PostgreSQL cases are skipped, unless ``THREADLINE_REQUIRE_POSTGRES=1`` (CI), where
they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import openai
import pytest
import sqlalchemy as sa

from threadline.settings import Settings
from threadline.storage import tables
from threadline.storage.db import Database
from threadline.testing import serve_in_thread

PG_ADMIN_URL = os.environ.get(
    "THREADLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
KEY_A = "sk-test-project-a-0000000000000000"
KEY_B = "sk-test-project-b-1111111111111111"
STATIC_KEYS = f"proj_a:{KEY_A},proj_b:{KEY_B}"
ENGINES = ["sqlite", "postgres"]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _postgres_database() -> Iterator[str]:
    name = "tl_" + secrets.token_hex(6)
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("THREADLINE_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
        yield from _postgres_database()


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "api_keys": STATIC_KEYS,
        "model_backend": "scripted",
    }
    values.update(overrides)
    return Settings.model_validate(values)


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
        for db_url in _postgres_database():
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


@dataclass(frozen=True)
class Served:
    """A server of one's own, with handles on what it stores (rows and files)."""

    url: str
    database_url: str
    data_dir: Path
    opened: list[openai.OpenAI] = field(default_factory=list)

    def client(self, key: str = KEY_A) -> openai.OpenAI:
        """The official SDK (project A by default), closed with the server."""
        sdk = openai.OpenAI(base_url=self.url, api_key=key, max_retries=0)
        self.opened.append(sdk)
        return sdk

    def count(self, table: str, **where: object) -> int:
        """Rows of ``table`` (optionally only those whose columns equal ``where``)."""

        async def go() -> int:
            db = Database(self.database_url)
            try:
                t = tables.metadata.tables[table]
                query = sa.select(sa.func.count()).select_from(t)
                query = query.where(*(t.c[k] == v for k, v in where.items()))
                async with db.read() as conn:
                    return int((await conn.execute(query)).scalar_one())
            finally:
                await db.dispose()

        return asyncio.run(go())

    def stored_files(self) -> list[Path]:
        """Every file under the server's blob directory (uploads, partial or whole)."""
        root = self.data_dir / "files"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@contextmanager
def serve(engine: str, data_dir: Path, **overrides: object) -> Iterator[Served]:
    """Start a server on a fresh database of ``engine`` with settings ``overrides``."""
    urls = (
        iter([f"sqlite+aiosqlite:///{data_dir / 'threadline.db'}"])
        if engine == "sqlite"
        else _postgres_database()
    )
    for db_url in urls:
        with serve_in_thread(make_settings(data_dir, db_url, **overrides)) as url:
            served = Served(url, db_url, data_dir)
            try:
                yield served
            finally:
                for sdk in served.opened:
                    sdk.close()


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
