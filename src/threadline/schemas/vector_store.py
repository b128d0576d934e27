"""Vector stores, their files and file batches, search: requests and wire objects."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from threadline.domain import limits
from threadline.schemas.common import INTEGRAL, Metadata, Request, WireObject

Name = str


class ExpiresAfter(Request):
    anchor: Literal["last_active_at"]
    days: Annotated[
        int,
        Field(ge=limits.VECTOR_STORE_EXPIRY_DAYS_MIN, le=limits.VECTOR_STORE_EXPIRY_DAYS_MAX),
        INTEGRAL,
    ]


class AutoChunking(Request):
    type: Literal["auto"]


class StaticChunkingConfig(Request):
    max_chunk_size_tokens: Annotated[
        int, Field(ge=limits.CHUNK_TOKENS_MIN, le=limits.CHUNK_TOKENS_MAX), INTEGRAL
    ]
    chunk_overlap_tokens: Annotated[int, Field(ge=0), INTEGRAL]

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> StaticChunkingConfig:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise PydanticCustomError(
                "value_error",
                "'chunk_overlap_tokens' must not exceed half of 'max_chunk_size_tokens' "
                "({limit}), got {overlap}.",
                {"limit": self.max_chunk_size_tokens // 2, "overlap": self.chunk_overlap_tokens},
            )
        return self


class StaticChunking(Request):
    type: Literal["static"]
    static: StaticChunkingConfig


ChunkingStrategy = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]


def resolved_chunking(strategy: AutoChunking | StaticChunking | None) -> dict[str, Any]:
    """The strategy as a file reports it: ``auto`` becomes the static sizes it means."""
    if isinstance(strategy, StaticChunking):
        return {"type": "static", "static": strategy.static.model_dump()}
    return {
        "type": "static",
        "static": {
            "max_chunk_size_tokens": limits.CHUNK_TOKENS_AUTO,
            "chunk_overlap_tokens": limits.CHUNK_OVERLAP_AUTO,
        },
    }


AttributeValue = (
    Annotated[str, Field(max_length=limits.ATTRIBUTE_VALUE_MAX_CHARS)] | bool | int | float
)


def _check_attributes(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(value) > limits.ATTRIBUTES_MAX_KEYS:
        raise PydanticCustomError(
            "object_above_max_properties",
            "too many properties. Expected an object with at most {max} properties, "
            "but got an object with {actual} properties instead",
            {"max": limits.ATTRIBUTES_MAX_KEYS, "actual": len(value)},
        )
    return value


Attributes = Annotated[
    dict[Annotated[str, Field(max_length=limits.ATTRIBUTE_KEY_MAX_CHARS)], AttributeValue] | None,
    AfterValidator(_check_attributes),
]


class CreateVectorStoreRequest(Request):
    file_ids: Annotated[list[str], Field(max_length=limits.VECTOR_STORE_FILE_IDS_MAX)] = []
    name: Name | None = None
    description: str | None = None
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata = None


class ModifyVectorStoreRequest(Request):
    name: Name | None = None
    expires_after: ExpiresAfter | None = None
    metadata: Metadata = None


class CreateVectorStoreFileRequest(Request):
    file_id: str
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes = None


class UpdateVectorStoreFileRequest(Request):
    attributes: Attributes


BatchFileIds = Annotated[
    list[str], Field(min_length=1, max_length=limits.VECTOR_STORE_BATCH_FILES_MAX)
]
BatchFiles = Annotated[
    list[CreateVectorStoreFileRequest],
    Field(min_length=1, max_length=limits.VECTOR_STORE_BATCH_FILES_MAX),
]


class CreateFileBatchRequest(Request):
    # One of the two lists, never null: the schema says so as OpenAI's does.
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["file_ids"]}, {"required": ["files"]}]}
    )

    file_ids: BatchFileIds | SkipJsonSchema[None] = None
    files: BatchFiles | SkipJsonSchema[None] = None
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes = None

    @field_validator("file_ids", "files", mode="before")
    @classmethod
    def _list_not_null(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError("list_type", "Input should be a valid list")
        return value

    @model_validator(mode="after")
    def _one_list(self) -> CreateFileBatchRequest:
        if (self.file_ids is None) == (self.files is None):
            raise PydanticCustomError(
                "value_error", "Exactly one of 'file_ids' and 'files' must be given."
            )
        return self

    def entries(self) -> list[CreateVectorStoreFileRequest]:
        """Each file with the chunking and attributes it gets."""
        if self.files is not None:
            return list(self.files)
        return [
            CreateVectorStoreFileRequest(
                file_id=file_id,
                chunking_strategy=self.chunking_strategy,
                attributes=self.attributes,
            )
            for file_id in self.file_ids or []
        ]


FilterValue = str | bool | int | float | list[str | int | float]


class ComparisonFilter(Request):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: Annotated[str, Field(min_length=1, max_length=limits.ATTRIBUTE_KEY_MAX_CHARS)]
    value: FilterValue


class CompoundFilter(Request):
    type: Literal["and", "or"]
    filters: Annotated[
        list[Annotated[ComparisonFilter | CompoundFilter, Field(discriminator="type")]],
        Field(min_length=1),
    ]


Filter = Annotated[ComparisonFilter | CompoundFilter, Field(discriminator="type")]


class SearchRankingOptions(Request):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


class SearchRequest(Request):
    query: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    )
    rewrite_query: bool = False
    max_num_results: Annotated[int, Field(ge=1, le=limits.SEARCH_MAX_NUM_RESULTS), INTEGRAL] = 10
    filters: Filter | None = None
    ranking_options: SearchRankingOptions | None = None

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)


class FileCounts(WireObject):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int


class VectorStore(WireObject):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str | None
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["expired", "in_progress", "completed"]
    last_active_at: int | None
    metadata: dict[str, str] | None


class VectorStoreFile(WireObject):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    last_error: dict[str, str] | None


class VectorStoreFileBatch(WireObject):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: FileCounts


class TextContent(WireObject):
    type: Literal["text"] = "text"
    text: str


class SearchResult(WireObject):
    file_id: str
    filename: str
    score: Annotated[float, Field(ge=0, le=1)]
    attributes: dict[str, Any] | None
    content: list[TextContent]


class SearchResultsPage(WireObject):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool
    next_page: str | None


class FileContentPage(WireObject):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[TextContent]
    has_more: bool
    next_page: str | None
