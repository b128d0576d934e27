"""The Thread object and the requests that create and modify it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from threadline.schemas.common import Metadata, Request, WireObject
from threadline.schemas.message import CreateMessageRequest
from threadline.schemas.tools import ToolResources


class CreateThreadRequest(Request):
    messages: Annotated[list[CreateMessageRequest], Field(max_length=1000)] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None


class ModifyThreadRequest(Request):
    tool_resources: ToolResources | None = None
    metadata: Metadata = None


class Thread(WireObject):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    tool_resources: dict[str, Any] | None
    metadata: dict[str, str] | None
