"""A page of a list: the cursor parameters every list endpoint takes, and what it
answers (OpenAI's list envelope)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class PageParams:
    limit: int = 20
    order: Order = "desc"
    after: str | None = None
    before: str | None = None


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    has_more: bool

    def envelope(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": self.data,
            "first_id": self.data[0]["id"] if self.data else None,
            "last_id": self.data[-1]["id"] if self.data else None,
            "has_more": self.has_more,
        }
