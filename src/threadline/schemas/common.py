"""Wire pieces shared by many objects: metadata, deletions, lists."""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from threadline.domain import limits


class Request(BaseModel):
    """A request body: unknown fields are refused, as the spec's
    ``additionalProperties: false`` says. Types are strict, as JSON Schema's are:
    ``"0.5"`` is not a number."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _integral(value: object) -> object:
    """``256.0`` is an integer in JSON Schema (and in OpenAI's spec): taken as 256."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


INTEGRAL = BeforeValidator(_integral)
"""For an integer field of a request, after its constraints (so that the schema
keeps them): ``Annotated[int, Field(ge=1), INTEGRAL]`` takes any JSON number
without a fractional part."""


def not_null(value: object) -> object:
    """For fields that may be left out but not sent as ``null`` (the spec's type
    has no ``null``): use as a ``mode="before"`` field validator."""
    if value is None:
        raise PydanticCustomError("dict_type", "Input should be an object")
    return value


class WireObject(BaseModel):
    """A response object: extra fields pass through, absent values are ``null``."""

    model_config = ConfigDict(extra="allow")


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is not None and len(value) > limits.METADATA_MAX_KEYS:
        raise PydanticCustomError(
            "object_above_max_properties",
            "too many properties. Expected an object with at most {max} properties, "
            "but got an object with {actual} properties instead",
            {"max": limits.METADATA_MAX_KEYS, "actual": len(value)},
        )
    return value


MetadataKey = Annotated[str, Field(max_length=limits.METADATA_KEY_MAX_CHARS)]
MetadataValue = Annotated[str, Field(max_length=limits.METADATA_VALUE_MAX_CHARS)]
Metadata = Annotated[dict[MetadataKey, MetadataValue] | None, AfterValidator(_check_metadata)]

T = TypeVar("T")


class ListResponse(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletionStatus(BaseModel):
    id: str
    object: str
    deleted: bool
