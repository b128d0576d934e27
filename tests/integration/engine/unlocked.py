"""Something made to happen between an unlocked move's read of the run's row and
its write (``storage.run_writes``): a turn's end or a claim on PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from threadline.storage import run_writes, tables

Meanwhile = Callable[[], Awaitable[None]]


class _ReadThen:
    """``run_writes``' read of the run's row, then ``meanwhile`` (before the write),
    once: at the first read that finds the run in ``status`` (a turn's end reads an
    ``in_progress`` run, a claim a ``queued`` one, and ``meanwhile``'s own moves
    read the row too)."""

    def __init__(self, read: Any, meanwhile: Meanwhile, status: str) -> None:
        self.read = read
        self.meanwhile = meanwhile
        self.status = status
        self.fired = False

    async def execute(self, conn: Any, params: Any) -> Any:
        rows = await self.read.execute(conn, params)
        query = sa.select(tables.runs.c.status).where(tables.runs.c.id == params["run_id"])
        if not self.fired and (await conn.execute(query)).scalar() == self.status:
            self.fired = True
            await self.meanwhile()
        return rows


def between_read_and_write(
    engine: str, monkeypatch: pytest.MonkeyPatch, meanwhile: Meanwhile, status: str = "in_progress"
) -> Callable[[], Awaitable[None]]:
    """Make ``meanwhile`` happen after an unlocked move read the run (in ``status``)
    and before it writes it: on PostgreSQL inside the unlocked read; on SQLite,
    which has none (its moves read and write in one locked transaction), before
    the move begins (the returned call, to await just before it)."""
    if engine == "postgres":
        monkeypatch.setattr(run_writes, "_READ", _ReadThen(run_writes._READ, meanwhile, status))

        async def nothing() -> None:
            pass

        return nothing
    return meanwhile
