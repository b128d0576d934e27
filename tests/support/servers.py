"""Test API keys, database engines and servers of one's own.

PostgreSQL databases are fresh ones on ``THREADLINE_TEST_POSTGRES_URL`` (default:
the machine's server, user ``postgres``). When it cannot be reached the PostgreSQL
cases are skipped, unless ``THREADLINE_REQUIRE_POSTGRES=1`` (CI), where they fail.
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


def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (its URL, yielded once), dropped afterwards."""
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


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: object) -> Settings:
    """Settings of a test server: the two test projects' keys, the scripted model,
    the deterministic embedder."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "api_keys": STATIC_KEYS,
        "model_backend": "scripted",
        "embedder": "hash",
    }
    values.update(overrides)
    return Settings.model_validate(values)


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

    def set_fields(self, table: str, object_id: str, **values: object) -> None:
        """Set fields of a stored object, both its columns and its ``data`` (tests
        that move an object's times, such as ``expires_at``, into the past)."""

        async def go() -> None:
            db = Database(self.database_url)
            try:
                t = tables.metadata.tables[table]
                async with db.write() as conn:
                    data = (
                        await conn.execute(sa.select(t.c.data).where(t.c.id == object_id))
                    ).scalar_one()
                    await conn.execute(
                        sa.update(t)
                        .where(t.c.id == object_id)
                        .values(data={**data, **values}, **values)
                    )
            finally:
                await db.dispose()

        asyncio.run(go())

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
        else postgres_database()
    )
    for db_url in urls:
        with serve_in_thread(make_settings(data_dir, db_url, **overrides)) as url:
            served = Served(url, db_url, data_dir)
            try:
                yield served
            finally:
                for sdk in served.opened:
                    sdk.close()
