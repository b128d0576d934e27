"""Stored API keys: a key revoked through the service stops at once; another
process's copy of the keys (another server) follows within its ``ttl``."""

from __future__ import annotations

import pytest

from threadline.errors import AuthenticationError
from threadline.services.keys import KeyService
from threadline.storage.db import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_revocation_is_immediate_here_and_within_ttl_elsewhere(db: Database) -> None:
    clock = Clock()
    here = KeyService(db, {"sk-static": "proj_s"}, ttl=5.0, clock=clock)
    elsewhere = KeyService(db, {"sk-static": "proj_s"}, ttl=5.0, clock=clock)
    key = await here.create("proj_x")
    bearer = f"Bearer {key.key}"
    assert await here.project_for(bearer) == "proj_x"
    assert await elsewhere.project_for(bearer) == "proj_x"

    await here.revoke(key.id)
    with pytest.raises(AuthenticationError):
        await here.project_for(bearer)
    clock.now += 4.9
    assert await elsewhere.project_for(bearer) == "proj_x"  # its copy, within the bound
    clock.now += 0.2
    with pytest.raises(AuthenticationError) as caught:
        await elsewhere.project_for(bearer)
    assert caught.value.code == "invalid_api_key"


async def test_a_ttl_of_zero_reads_the_keys_on_every_request(db: Database) -> None:
    here = KeyService(db, {"sk-static": "proj_s"})
    elsewhere = KeyService(db, {"sk-static": "proj_s"}, ttl=0.0, clock=Clock())
    key = await here.create("proj_y")
    assert await elsewhere.project_for(f"Bearer {key.key}") == "proj_y"
    await here.revoke(key.id)
    with pytest.raises(AuthenticationError):
        await elsewhere.project_for(f"Bearer {key.key}")
    assert await elsewhere.project_for("Bearer sk-static") == "proj_s"


async def test_revoking_the_last_key_does_not_open_the_server(db: Database) -> None:
    keys = KeyService(db, {}, ttl=0.0)
    assert await keys.dev_mode()  # nothing configured yet: development mode
    key = await keys.create("proj_z")
    assert not await keys.dev_mode()
    await keys.revoke(key.id)
    assert not await keys.dev_mode()
    with pytest.raises(AuthenticationError):
        await keys.project_for(f"Bearer {key.key}")
    with pytest.raises(AuthenticationError):
        await keys.project_for(None)
