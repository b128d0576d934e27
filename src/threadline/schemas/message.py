"""The Message object and the requests that create and modify it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from threadline.domain import limits
from threadline.schemas.common import Metadata, Request, WireObject
from threadline.schemas.tools import AttachmentTool

Detail = Literal["auto", "low", "high"]


class ImageFile(Request):
    file_id: Annotated[str, Field(min_length=1)]
    detail: Detail = "auto"


class ImageUrl(Request):
    url: Annotated[str, Field(min_length=1)]
    detail: Detail = "auto"


class ImageFilePart(Request):
    type: Literal["image_file"]
    image_file: ImageFile


class ImageUrlPart(Request):
    type: Literal["image_url"]
    image_url: ImageUrl


class TextPart(Request):
    type: Literal["text"]
    text: Annotated[str, Field(max_length=limits.MESSAGE_CONTENT_MAX_CHARS)]


ContentPart = Annotated[ImageFilePart | ImageUrlPart | TextPart, Field(discriminator="type")]


class Attachment(Request):
    file_id: Annotated[str, Field(min_length=1)]
    tools: list[AttachmentTool] = []


class CreateMessageRequest(Request):
    role: Literal["user", "assistant"]
    content: (
        Annotated[str, Field(max_length=limits.MESSAGE_CONTENT_MAX_CHARS)]
        | Annotated[list[ContentPart], Field(min_length=1)]
    )
    attachments: (
        Annotated[list[Attachment], Field(max_length=limits.MESSAGE_ATTACHMENTS_MAX)] | None
    ) = None
    metadata: Metadata = None


class ModifyMessageRequest(Request):
    metadata: Metadata = None


class Message(WireObject):
    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: Literal["in_progress", "incomplete", "completed"]
    incomplete_details: dict[str, Any] | None
    completed_at: int | None
    incomplete_at: int | None
    role: Literal["user", "assistant"]
    content: list[dict[str, Any]]
    assistant_id: str | None
    run_id: str | None
    attachments: list[dict[str, Any]] | None
    metadata: dict[str, str] | None


def content_parts(content: str | list[Any]) -> list[dict[str, Any]]:
    """A request's content as stored message content parts."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": {"value": part.text, "annotations": []}})
        else:
            parts.append(part.model_dump())
    return parts
