"""The Message object and the requests that create and modify it."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from threadline.domain import limits
from threadline.schemas.common import Metadata, Request, WireObject
from threadline.schemas.tools import AttachmentTool

Detail = Literal["auto", "low", "high"]


class ImageFile(Request):
    file_id: Annotated[str, Field(min_length=1)]
    detail: Detail = "auto"


_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*"
)


def _uri(value: str) -> str:
    """An absolute URI (RFC 3986: a scheme, then only the characters a URI holds),
    as the spec's ``format: uri`` asks."""
    if not _URI.fullmatch(value):
        raise PydanticCustomError(
            "invalid_url", "Expected a valid URL, but got a value with an invalid format"
        )
    return value


Uri = Annotated[str, Field(min_length=1, json_schema_extra={"format": "uri"}), AfterValidator(_uri)]


class ImageUrl(Request):
    url: Uri
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
