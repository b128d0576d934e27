"""Tool declarations, tool resources, tool choice and response formats."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from threadline.domain import limits
from threadline.schemas.common import INTEGRAL, Request, not_null
from threadline.schemas.vector_store import ChunkingStrategy


class FunctionDefinition(Request):
    name: Annotated[str, Field(pattern=limits.FUNCTION_NAME_PATTERN)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class RankingOptions(Request):
    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)]


class FileSearchOptions(Request):
    max_num_results: (
        Annotated[int, Field(ge=1, le=limits.FILE_SEARCH_MAX_NUM_RESULTS), INTEGRAL] | None
    ) = None
    ranking_options: RankingOptions | None = None


class CodeInterpreterTool(Request):
    type: Literal["code_interpreter"]


class FileSearchTool(Request):
    type: Literal["file_search"]
    file_search: FileSearchOptions | None = None


class FunctionTool(Request):
    type: Literal["function"]
    function: FunctionDefinition


Tool = Annotated[CodeInterpreterTool | FileSearchTool | FunctionTool, Field(discriminator="type")]


class FileSearchTypeOnly(Request):
    type: Literal["file_search"]


AttachmentTool = Annotated[CodeInterpreterTool | FileSearchTypeOnly, Field(discriminator="type")]


class CodeInterpreterResources(Request):
    file_ids: Annotated[list[str], Field(max_length=limits.CODE_INTERPRETER_FILES_MAX)] = []


class NewVectorStore(Request):
    file_ids: Annotated[list[str], Field(max_length=limits.VECTOR_STORE_FILE_IDS_MAX)] = []
    chunking_strategy: ChunkingStrategy | None = None
    metadata: dict[str, str] | None = None


class FileSearchResources(Request):
    vector_store_ids: Annotated[
        list[str], Field(max_length=limits.FILE_SEARCH_VECTOR_STORES_MAX)
    ] = []
    vector_stores: Annotated[
        list[NewVectorStore], Field(max_length=limits.FILE_SEARCH_VECTOR_STORES_MAX)
    ] = []


class ToolResources(Request):
    # Left out, not null: the schema documents no null (`SkipJsonSchema`) and
    # `not_null` refuses one.
    code_interpreter: CodeInterpreterResources | SkipJsonSchema[None] = None
    file_search: FileSearchResources | SkipJsonSchema[None] = None

    _present = field_validator("code_interpreter", "file_search", mode="before")(not_null)


class JsonSchemaFormat(Request):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: bool | None = None


class TextFormat(Request):
    type: Literal["text"]


class JsonObjectFormat(Request):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(Request):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = (
    Literal["auto"]
    | Annotated[
        TextFormat | JsonObjectFormat | JsonSchemaResponseFormat, Field(discriminator="type")
    ]
)


def dump_tool_resources(resources: ToolResources | None) -> dict[str, Any]:
    """Tool resources as stored on assistants and threads (no creation helpers)."""
    if resources is None:
        return {}
    out: dict[str, Any] = {}
    if resources.code_interpreter is not None:
        out["code_interpreter"] = {"file_ids": list(resources.code_interpreter.file_ids)}
    if resources.file_search is not None:
        out["file_search"] = {"vector_store_ids": list(resources.file_search.vector_store_ids)}
    return out


def dump_response_format(value: ResponseFormat | None) -> Any:
    if value is None or isinstance(value, str):
        return value
    return value.model_dump(by_alias=True, exclude_none=True)
