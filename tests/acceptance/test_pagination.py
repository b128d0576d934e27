"""Lists: ``{object: "list", data, first_id, last_id, has_more}``, limit 1..100
(default 20), order (default desc), after, before, and a stable order for objects
created in the same second; SDK auto-pagination walks them all."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.servers import KEY_A

SECOND = 1_750_000_000


@pytest.fixture
def same_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything the (in-process) server creates gets the same ``created_at``."""
    for module in ("assistants", "threads", "messages", "files"):
        monkeypatch.setattr(f"threadline.services.{module}.now", lambda: SECOND)


@pytest.fixture
def five(client: openai.OpenAI, same_second: None) -> list[str]:
    """Five assistants of project A, made last, in one second (oldest first)."""
    ids = [client.beta.assistants.create(model="gpt-4o", name=f"p{i}").id for i in range(5)]
    assert {client.beta.assistants.retrieve(i).created_at for i in ids} == {SECOND}
    return ids


def ids(page: object) -> list[str]:
    return [item.id for item in page.data]  # type: ignore[attr-defined]


def test_envelope(live_server: str, five: list[str]) -> None:
    body = httpx.get(
        f"{live_server}/assistants?limit=2", headers={"Authorization": f"Bearer {KEY_A}"}
    ).json()
    assert list(body) == ["object", "data", "first_id", "last_id", "has_more"]
    assert body["object"] == "list"
    assert [a["id"] for a in body["data"]] == five[::-1][:2]
    assert body["first_id"] == five[4]
    assert body["last_id"] == five[3]
    assert body["has_more"] is True


def test_empty_list_envelope(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    page = client.beta.threads.messages.list(thread.id)
    assert (page.data, page.first_id, page.last_id, page.has_more) == ([], None, None, False)


def test_order_and_limit(client: openai.OpenAI, five: list[str]) -> None:
    assert ids(client.beta.assistants.list(limit=5)) == five[::-1]
    assert ids(client.beta.assistants.list(limit=3, order="desc")) == five[::-1][:3]
    first = client.beta.assistants.list(limit=1)
    assert ids(first) == [five[4]]
    assert first.has_more is True


def test_after_in_both_orders(client: openai.OpenAI, five: list[str]) -> None:
    page = client.beta.assistants.list(order="asc", after=five[0], limit=2)
    assert ids(page) == five[1:3]
    assert page.has_more is True
    page = client.beta.assistants.list(order="asc", after=five[2], limit=2)
    assert ids(page) == five[3:5]
    assert page.has_more is False
    page = client.beta.assistants.list(order="desc", after=five[3], limit=2)
    assert ids(page) == [five[2], five[1]]
    assert page.has_more is True


def test_before_in_both_orders(client: openai.OpenAI, five: list[str]) -> None:
    page = client.beta.assistants.list(order="desc", before=five[1], limit=2)
    assert ids(page) == [five[3], five[2]]
    assert page.has_more is True
    page = client.beta.assistants.list(order="desc", before=five[3])
    assert ids(page) == [five[4]]
    assert page.has_more is False
    page = client.beta.assistants.list(order="asc", before=five[4], limit=2)
    assert ids(page) == [five[2], five[3]]
    assert page.has_more is True


def test_after_and_before_together(client: openai.OpenAI, five: list[str]) -> None:
    page = client.beta.assistants.list(order="asc", after=five[0], before=five[4])
    assert ids(page) == five[1:4]


def test_auto_pagination_visits_each_once_in_order(client: openai.OpenAI, five: list[str]) -> None:
    walked = [a.id for a in client.beta.assistants.list(limit=2)]
    assert len(walked) == len(set(walked))
    assert walked[:5] == five[::-1]
    assert walked == [a.id for a in client.beta.assistants.list(limit=100)][: len(walked)]
    ascending = [a.id for a in client.beta.assistants.list(limit=2, order="asc")]
    assert ascending == walked[::-1]


def test_default_limit_is_20(client: openai.OpenAI, same_second: None) -> None:
    made = [client.beta.assistants.create(model="gpt-4o").id for _ in range(21)]
    page = client.beta.assistants.list()
    assert ids(page) == made[::-1][:20]
    assert page.has_more is True
    assert len(ids(client.beta.assistants.list(limit=100))) >= 21


def test_messages_paginate_in_the_same_second(client: openai.OpenAI, same_second: None) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"m{i}"} for i in range(3)]
    ).id
    made = [
        client.beta.threads.messages.create(thread, role="user", content=f"m{i}").id
        for i in range(3, 7)
    ]
    every = client.beta.threads.messages.list(thread, order="asc", limit=100)
    assert [m.content[0].text.value for m in every.data] == [f"m{i}" for i in range(7)]  # type: ignore[union-attr]
    assert ids(every)[3:] == made
    assert {m.created_at for m in every.data} == {SECOND}
    walked = [m.id for m in client.beta.threads.messages.list(thread, limit=3)]
    assert walked == ids(every)[::-1]
    page = client.beta.threads.messages.list(thread, after=made[2], limit=2)
    assert ids(page) == [made[1], made[0]]
    page = client.beta.threads.messages.list(thread, order="asc", before=made[0], limit=2)
    assert ids(page) == ids(every)[1:3]
    assert page.has_more is True


def test_files_paginate_with_after(client: openai.OpenAI, same_second: None) -> None:
    made = [client.files.create(file=(f"{i}.txt", b"x"), purpose="user_data").id for i in range(4)]
    newest = client.files.list(purpose="user_data", limit=4)
    assert ids(newest) == made[::-1]
    page = client.files.list(purpose="user_data", order="asc", after=made[1], limit=1)
    assert ids(page) == [made[2]]
    assert page.has_more is True
    walked = [f.id for f in client.files.list(purpose="user_data", limit=3)]
    assert walked[:4] == made[::-1]
    assert len(walked) == len(set(walked))


@pytest.mark.parametrize("limit", [1, 100])
def test_limit_bounds_are_inclusive(client: openai.OpenAI, limit: int) -> None:
    assert len(client.beta.assistants.list(limit=limit).data) <= limit


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_limit_out_of_bounds(client: openai.OpenAI, limit: int) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.assistants.list(limit=limit)
    assert caught.value.param == "limit"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.list(client.beta.threads.create().id, limit=limit)
