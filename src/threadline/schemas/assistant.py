"""The Assistant object and the requests that create and modify it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from threadline.domain import limits
from threadline.schemas.common import Metadata, Request, WireObject
from threadline.schemas.tools import ResponseFormat, Tool, ToolResources

Temperature = Annotated[float, Field(ge=limits.TEMPERATURE_MIN, le=limits.TEMPERATURE_MAX)]
TopP = Annotated[float, Field(ge=0, le=1)]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class CreateAssistantRequest(Request):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    name: Annotated[str, Field(max_length=limits.ASSISTANT_NAME_MAX_CHARS)] | None = None
    description: Annotated[str, Field(max_length=limits.ASSISTANT_DESCRIPTION_MAX_CHARS)] | None = (
        None
    )
    instructions: (
        Annotated[str, Field(max_length=limits.ASSISTANT_INSTRUCTIONS_MAX_CHARS)] | None
    ) = None
    reasoning_effort: ReasoningEffort | None = None
    tools: Annotated[list[Tool], Field(max_length=limits.ASSISTANT_TOOLS_MAX)] = []
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    temperature: Temperature | None = 1.0
    top_p: TopP | None = 1.0
    response_format: ResponseFormat | None = "auto"


class ModifyAssistantRequest(Request):
    model: Annotated[str, Field(min_length=1, max_length=256)] | SkipJsonSchema[None] = None
    name: Annotated[str, Field(max_length=limits.ASSISTANT_NAME_MAX_CHARS)] | None = None
    description: Annotated[str, Field(max_length=limits.ASSISTANT_DESCRIPTION_MAX_CHARS)] | None = (
        None
    )
    instructions: (
        Annotated[str, Field(max_length=limits.ASSISTANT_INSTRUCTIONS_MAX_CHARS)] | None
    ) = None
    reasoning_effort: ReasoningEffort | None = None
    tools: Annotated[list[Tool], Field(max_length=limits.ASSISTANT_TOOLS_MAX)] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    response_format: ResponseFormat | None = None

    @field_validator("model")
    @classmethod
    def _model_not_null(cls, value: str | None) -> str | None:
        # Optional to leave out, but the spec gives it no null: an assistant has a model.
        if value is None:
            raise PydanticCustomError("string_type", "Input should be a valid string")
        return value


class Assistant(WireObject):
    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_resources: dict[str, Any] | None
    metadata: dict[str, str] | None
    temperature: float | None
    top_p: float | None
    response_format: Any
