"""Fixtures of the storage tests: a migrated ``Database`` on each engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from threadline.storage.db import Database


@pytest.fixture
async def db(database_url: str, fast_path: bool) -> AsyncIterator[Database]:
    database = Database(database_url, fast_path=fast_path)
    await database.migrate()
    try:
        yield database
    finally:
        await database.dispose()
