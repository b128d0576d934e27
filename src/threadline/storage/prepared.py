"""Statements built once, executed straight on the database's driver when they can be.

Through SQLAlchemy, each statement of a run costs several times what the database
takes to run it: a greenlet, an execution context, parameter and result processing,
event dispatch. A run executes about ten, so that overhead was a third of the
server's CPU per run on SQLite and more on PostgreSQL. A ``Prepared`` statement is
compiled the first time (for INSERT and UPDATE, once per set of value names) and
then runs:

- inside a transaction on an inline SQLite connection (``sqlite_fast``), on
  ``sqlite3`` at once, its JSON values encoded and decoded here as SQLAlchemy's
  ``JSON`` type does;
- on PostgreSQL, inside a transaction or in autocommit, on asyncpg under SQLAlchemy's
  connection (``asyncpg_direct``);
- anywhere else (a connection outside a transaction, plain aiosqlite, an engine that
  logs its SQL) through SQLAlchemy unchanged.

Every path reads and writes the same rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections import namedtuple
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

from threadline.storage import asyncpg_direct
from threadline.storage.sqlite_fast.inline import sqlite_of

_REQUIRED = object()  # a parameter with no value of its own: the call must give one


class Rows:
    """A statement's outcome, read in full: its rows and the count of rows changed."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # For each ``?`` in order: the parameter's name, the value it was built with (or
    # _REQUIRED), and whether it is JSON (encoded as SQLAlchemy's JSON type does).
    binds: tuple[tuple[str, Any, bool], ...]
    row: Any  # the namedtuple class of the rows (None: the statement returns none)
    json_columns: tuple[int, ...]


class Prepared:
    """One statement, its parameters named with ``sa.bindparam`` (or, for INSERT and
    UPDATE, by the names of the values passed at execution)."""

    def __init__(self, statement: sa.Select[Any] | sa.UpdateBase) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...] | None], _Compiled] = {}
        self._row: Any = None
        if isinstance(statement, sa.Select):
            columns = list(statement.selected_columns)
            for column in columns:
                _check_convertible(column.type, f"column {column.key!r}")
            self._row = namedtuple(  # type: ignore[misc]
                "Row", [str(column.key) for column in columns], rename=True
            )

    async def execute(self, conn: AsyncConnection, params: Mapping[str, Any] | None = None) -> Rows:
        params = params or {}
        sqlite = _inline_sqlite(conn)
        if sqlite is None:
            postgres = asyncpg_direct.asyncpg_of(conn)
            if postgres is not None:
                return await self._execute_on_asyncpg(conn, postgres, params)
            result = await conn.execute(self.statement, dict(params))
            if not result.returns_rows:
                return Rows([], result.rowcount)
            # The same row type either way (SQLAlchemy's rows would behave alike
            # for attribute access, but not for equality or pickling).
            make = self._row._make if self._row is not None else tuple
            return Rows([make(tuple(row)) for row in result], result.rowcount)
        compiled = self._compile(conn.dialect, params)
        values = _values(compiled, params)
        try:
            cursor = sqlite.execute(compiled.sql, values)
            try:
                fetched = cursor.fetchall() if compiled.row is not None else []
                count = cursor.rowcount
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(
                compiled.sql, values, exc, sqlite3.Error, dialect=conn.dialect
            ) from exc
        if compiled.row is None:
            return Rows([], count)
        make = compiled.row._make
        if not compiled.json_columns:
            return Rows([make(row) for row in fetched], count)
        decoded = []
        for raw in fetched:
            row = list(raw)
            for index in compiled.json_columns:
                if row[index] is not None:
                    row[index] = json.loads(row[index])
            decoded.append(make(row))
        return Rows(decoded, count)

    async def _execute_on_asyncpg(
        self, conn: AsyncConnection, adapted: Any, params: Mapping[str, Any]
    ) -> Rows:
        compiled = self._compile(conn.dialect, params)
        # JSON goes as the text SQLAlchemy's JSON type writes; the dialect's codec
        # decodes JSON columns of the rows.
        values = _values(compiled, params)
        rows, count = await asyncpg_direct.fetch(conn, adapted, compiled.sql, values)
        if compiled.row is None:
            return Rows([], count)
        make = compiled.row._make
        return Rows([make(tuple(row)) for row in rows], count)

    def _compile(self, dialect: Dialect, params: Mapping[str, Any]) -> _Compiled:
        # INSERT and UPDATE name their columns after the values given; a SELECT's
        # text is the same whatever they are. One statement may serve both engines.
        keys = tuple(params) if isinstance(self.statement, sa.UpdateBase) else None
        found = self._compiled.get((dialect.name, keys))
        if found is None:
            found = _compile(self.statement, dialect, keys, self._row)
            self._compiled[(dialect.name, keys)] = found
        return found


def _values(compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
    """The statement's parameters in order, JSON ones encoded."""
    values = []
    for name, given, is_json in compiled.binds:
        value = params.get(name, given)
        if value is _REQUIRED:
            raise sa.exc.InvalidRequestError(f"A value is required for parameter {name!r}.")
        values.append(json.dumps(value) if is_json else value)
    return values


def _compile(
    statement: sa.ClauseElement, dialect: Dialect, keys: tuple[str, ...] | None, row: Any
) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    assert isinstance(compiled, SQLCompiler)
    binds = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        if bind.expanding:
            raise ValueError("a prepared statement cannot expand a parameter list (IN)")
        given = _REQUIRED if bind.required else bind.effective_value
        _check_convertible(bind.type, f"parameter {name!r}")
        binds.append((name, given, isinstance(bind.type, sa.JSON)))
    json_columns: tuple[int, ...] = ()
    if isinstance(statement, sa.Select):
        columns = list(statement.selected_columns)
        json_columns = tuple(i for i, c in enumerate(columns) if isinstance(c.type, sa.JSON))
    return _Compiled(compiled.string, tuple(binds), row, json_columns)


# What ``sqlite3`` and asyncpg take and give back as SQLAlchemy would (JSON is
# converted here, and decoded by the dialect's codec on asyncpg). Anything else
# (booleans read back as 0/1, dates, decimals, enums, binary, vectors) would silently
# differ from the SQLAlchemy path, so a statement using it is refused.
_CONVERTIBLE = (sa.String, sa.Integer, sa.Float, sa.JSON, sa.types.NullType)


class UnsupportedType(TypeError):
    """A ``Prepared`` statement reads or writes a type the fast path cannot convert."""


def _check_convertible(type_: Any, what: str) -> None:
    if isinstance(type_, sa.Float) and type_.asdecimal:
        raise UnsupportedType(f"{what}: a decimal Float is not converted by the fast path")
    if isinstance(type_, sa.Enum) or not isinstance(type_, _CONVERTIBLE):
        raise UnsupportedType(
            f"{what}: {type_!r} is not converted by the fast path; "
            "run this statement through SQLAlchemy"
        )


def _inline_sqlite(conn: AsyncConnection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under ``conn`` if statements may run on it directly:
    an inline connection, inside a transaction, on an engine that does not log SQL."""
    sync = conn.sync_connection
    if sync is None or sync.engine.echo:
        return None
    sqlite = sqlite_of(conn)
    return sqlite if sqlite is not None and sqlite.in_transaction else None
