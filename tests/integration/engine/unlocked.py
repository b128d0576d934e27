"""Something made to happen between an unlocked move's read of the run's row and
its write (``storage.run_writes``): a turn's end or a claim on PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from threadline.storage import run_writes

Meanwhile = Callable[[], Awaitable[None]]


class _ReadThen:
    """``run_writes``' read of the run's row, then ``meanwhile`` (before the write),
    the first time only: ``meanwhile``'s own moves (a claim) read the row too."""

    def __init__(self, read: Any, meanwhile: Meanwhile) -> None:
        self.read = read
        self.meanwhile = meanwhile
        self.reads = 0

    async def execute(self, conn: Any, params: Any) -> Any:
        rows = await self.read.execute(conn, params)
        self.reads += 1
        if self.reads == 1:
            await self.meanwhile()
        return rows


def between_read_and_write(
    engine: str, monkeypatch: pytest.MonkeyPatch, meanwhile: Meanwhile
) -> Callable[[], Awaitable[None]]:
    """Make ``meanwhile`` happen after an unlocked move read the run and before it
    writes it: on PostgreSQL inside the unlocked read; on SQLite, which has none
    (its moves read and write in one locked transaction), before the move
    begins (the returned call, to await just before it)."""
    if engine == "postgres":
        monkeypatch.setattr(run_writes, "_READ", _ReadThen(run_writes._READ, meanwhile))

        async def nothing() -> None:
            pass

        return nothing
    return meanwhile
