"""One repository for every object table: insert, get, update, delete, page.

Each row's ``data`` is the object's whole wire form; the other columns copy the
fields storage filters on. Every call is scoped by ``project_id``: an object of
another project does not exist.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.pages import Page, PageParams
from threadline.errors import InvalidRequestError, NotFoundError
from threadline.storage.db import in_write
from threadline.storage.prepared import Prepared


class Repository:
    def __init__(self, table: sa.Table, kind: str) -> None:
        self.table = table
        self.kind = kind
        self.c = table.c
        # Statements built once and given their values at execution: building a
        # statement anew costs more than executing it (SQLite).
        self._insert = Prepared(table.insert())
        self._finds: dict[tuple[tuple[str, ...], bool], Prepared] = {}

    def _find_statement(self, names: tuple[str, ...], locked: bool) -> Prepared:
        found = self._finds.get((names, locked))
        if found is None:
            query = sa.select(self.c.data).where(
                self.c.id == sa.bindparam("_id"),
                self.c.project_id == sa.bindparam("_project_id"),
                *(self.c[name] == sa.bindparam(f"_scope_{name}") for name in names),
            )
            if locked:
                query = query.with_for_update(key_share=True)
            found = self._finds[(names, locked)] = Prepared(query)
        return found

    def _scope(self, project_id: str, scope: dict[str, Any]) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = [self.c.project_id == project_id]
        clauses.extend(self.c[name] == value for name, value in scope.items())
        return clauses

    async def insert(
        self, conn: AsyncConnection, project_id: str, data: dict[str, Any], **columns: Any
    ) -> dict[str, Any]:
        values = {
            "id": data["id"],
            "project_id": project_id,
            "created_at": data["created_at"],
            "data": data,
            **columns,
        }
        if any(isinstance(value, sa.ClauseElement) for value in columns.values()):
            await conn.execute(self.table.insert().values(**values))
        else:
            await self._insert.execute(conn, values)
        return data

    async def find(
        self, conn: AsyncConnection, project_id: str, object_id: str, **scope: Any
    ) -> dict[str, Any] | None:
        # Read-modify-write: hold the row until commit (PostgreSQL; SQLite's
        # BEGIN IMMEDIATE already serialises writers and renders no lock clause).
        locked = in_write(conn)
        if all(isinstance(value, str) for value in scope.values()):
            names = tuple(sorted(scope))
            params = {"_id": object_id, "_project_id": project_id}
            params.update({f"_scope_{name}": scope[name] for name in names})
            row = (await self._find_statement(names, locked).execute(conn, params)).first()
        else:
            query = sa.select(self.c.data).where(
                self.c.id == object_id, *self._scope(project_id, scope)
            )
            if locked:
                query = query.with_for_update(key_share=True)
            row = (await conn.execute(query)).first()
        return dict(row.data) if row is not None else None

    async def get(
        self,
        conn: AsyncConnection,
        project_id: str,
        object_id: str,
        *,
        param: str | None = None,
        **scope: Any,
    ) -> dict[str, Any]:
        found = await self.find(conn, project_id, object_id, **scope)
        if found is None:
            raise NotFoundError.for_object(self.kind, object_id, param)
        return found

    async def replace(
        self,
        conn: AsyncConnection,
        project_id: str,
        data: dict[str, Any],
        **columns: Any,
    ) -> dict[str, Any]:
        result = await conn.execute(
            self.table.update()
            .where(self.c.id == data["id"], self.c.project_id == project_id)
            .values(data=data, **columns)
        )
        if result.rowcount == 0:
            raise NotFoundError.for_object(self.kind, data["id"])
        return data

    async def delete(
        self, conn: AsyncConnection, project_id: str, object_id: str, **scope: Any
    ) -> None:
        result = await conn.execute(
            self.table.delete().where(self.c.id == object_id, *self._scope(project_id, scope))
        )
        if result.rowcount == 0:
            raise NotFoundError.for_object(self.kind, object_id)

    async def _cursor_seq(
        self, conn: AsyncConnection, project_id: str, cursor: str, param: str, scope: dict[str, Any]
    ) -> int:
        query = sa.select(self.c.seq).where(self.c.id == cursor, *self._scope(project_id, scope))
        seq = (await conn.execute(query)).scalar()
        if seq is None:
            raise InvalidRequestError.bad_cursor(self.kind, cursor, param)
        return int(seq)

    async def page(
        self, conn: AsyncConnection, project_id: str, params: PageParams, **scope: Any
    ) -> Page:
        clauses = self._scope(project_id, scope)
        descending = params.order == "desc"
        # Walk away from `after`, or towards `before` from its side, then flip back.
        walk_descending = descending
        if params.after is not None:
            seq = await self._cursor_seq(conn, project_id, params.after, "after", scope)
            clauses.append(self.c.seq < seq if descending else self.c.seq > seq)
        if params.before is not None:
            seq = await self._cursor_seq(conn, project_id, params.before, "before", scope)
            clauses.append(self.c.seq > seq if descending else self.c.seq < seq)
            if params.after is None:
                walk_descending = not descending
        order_by = self.c.seq.desc() if walk_descending else self.c.seq.asc()
        query = sa.select(self.c.data).where(*clauses).order_by(order_by).limit(params.limit + 1)
        rows = [dict(row.data) for row in await conn.execute(query)]
        has_more = len(rows) > params.limit
        rows = rows[: params.limit]
        if walk_descending != descending:
            rows.reverse()
        return Page(rows, has_more)
