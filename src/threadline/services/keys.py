"""API keys: each belongs to a project. Only a hash of a key is stored."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.errors import AuthenticationError, NotFoundError
from threadline.storage import keys as store
from threadline.storage.db import Database

DEV_PROJECT = "default"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    id: str
    project_id: str
    key: str


class KeyService:
    """Creates, lists and revokes keys, and tells which project a key belongs to.

    With no key anywhere (no static key, none in the database) the server runs in
    single-user development mode: every request belongs to project ``default``.
    Once it has seen a key it stays out of that mode: revoking the last key does
    not open the server to everyone.

    The stored keys are read again once ``ttl`` seconds have passed: a key created
    or revoked by another process (``threadline keys``) counts here within ``ttl``
    seconds; one revoked through this service stops working at once.
    """

    def __init__(
        self,
        db: Database,
        static_keys: dict[str, str],
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.static = {hash_key(k): project for k, project in static_keys.items()}
        self.ttl = ttl
        self.clock = clock
        self._stored: dict[str, str] = {}
        self._loaded_at = float("-inf")
        self._changes = 0  # keys created or revoked here; a read begun before is stale
        self._keyed = bool(self.static)

    async def create(self, project_id: str, name: str | None = None) -> NewKey:
        key = "sk-tl-" + secrets.token_urlsafe(32)
        key_id = new_id("key", 16).replace("sk-tl-", "key_")
        async with self.db.write() as conn:
            await store.insert_key(
                conn,
                key_id=key_id,
                project_id=project_id,
                name=name,
                key_hash=hash_key(key),
                key_hint=key[:6] + "…" + key[-4:],
                created_at=now(),
            )
        self._changed()
        return NewKey(key_id, project_id, key)

    async def list(self) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            return await store.list_keys(conn)

    async def revoke(self, key_id: str) -> None:
        async with self.db.write() as conn:
            deleted = await store.delete_key(conn, key_id)
        self._changed()
        if not deleted:
            raise NotFoundError.for_object("key", key_id)

    def _changed(self) -> None:
        self._changes += 1
        self._loaded_at = float("-inf")

    async def _stored_keys(self) -> dict[str, str]:
        if self.clock() - self._loaded_at >= self.ttl:
            changes, started = self._changes, self.clock()
            async with self.db.read() as conn:
                stored = await store.key_hashes(conn)
            if changes == self._changes:  # else read again next time: it may be stale
                self._stored, self._loaded_at = stored, started
            else:
                return stored
        return self._stored

    async def dev_mode(self) -> bool:
        if not self._keyed and await self._stored_keys():
            self._keyed = True
        return not self._keyed

    async def project_for(self, authorization: str | None) -> str:
        if await self.dev_mode():
            return DEV_PROJECT
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        digest = hash_key(key)
        project = self.static.get(digest) or (await self._stored_keys()).get(digest)
        if project is None:
            hint = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "****"
            raise AuthenticationError(
                f"Incorrect API key provided: {hint}.", code="invalid_api_key"
            )
        return project
