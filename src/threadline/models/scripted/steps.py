"""The scripted model's steps: what one model call plays, and their JSON shape.

Every number a step carries is bounded, so a directive cannot make the run engine
compute or store values it cannot hold: token counts up to ``MAX_TOKENS`` (far above
any context window, and a run's usage summed over its steps stays exact in a 64-bit
column), ``chunks`` up to ``MAX_CHUNKS``, delays finite and up to
``MAX_DELAY_SECONDS`` (``{"hang": true}`` waits longer). A value out of range is a
``ValueError`` naming the field, raised when the step is built.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from threadline.models.base import ErrorCode, ModelRequest

MAX_TOKENS = 1_000_000_000
MAX_CHUNKS = 1_000_000
MAX_DELAY_SECONDS = 3600.0
_ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


def _check(key: str, value: float | None, low: float, high: float) -> None:
    """Refuse ``value`` outside ``[low, high]`` (NaN included), naming ``key``."""
    if value is not None and not low <= value <= high:
        raise ValueError(f"{key!r} must be between {low:,g} and {high:,.0f}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class StepOptions:
    """Timing and usage, common to every step."""

    delay: float = 0.0
    token_delay: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def __post_init__(self) -> None:
        _check("delay", self.delay, 0, MAX_DELAY_SECONDS)
        _check("token_delay", self.token_delay, 0, MAX_DELAY_SECONDS)
        _check("prompt_tokens", self.prompt_tokens, 0, MAX_TOKENS)
        _check("completion_tokens", self.completion_tokens, 0, MAX_TOKENS)


@dataclass(frozen=True)
class TextStep(StepOptions):
    text: str
    chunks: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check("chunks", self.chunks, 1, MAX_CHUNKS)


@dataclass(frozen=True)
class ScriptedCall:
    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class ToolCallsStep(StepOptions):
    tool_calls: Sequence[ScriptedCall]


@dataclass(frozen=True)
class ErrorStep(StepOptions):
    error: ErrorCode = "server_error"
    message: str = "The scripted model failed."


@dataclass(frozen=True)
class HangStep(StepOptions):
    pass


Step = TextStep | ToolCallsStep | ErrorStep | HangStep
StepLike = Step | Mapping[str, Any] | str
Handler = Callable[[ModelRequest], StepLike | Awaitable[StepLike]]


# ----------------------------------------------------------------------- parsing


def _number(raw: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key!r} must be a non-negative number")
    if kind is int and not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{key!r} must be a finite number")
    return value


def _options(raw: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "delay": float(_number(raw, "delay", float) or 0),
        "token_delay": float(_number(raw, "token_delay", float) or 0),
        "prompt_tokens": _number(raw, "prompt_tokens", int),
        "completion_tokens": _number(raw, "completion_tokens", int),
    }
    return options


def _call(raw: Any) -> ScriptedCall:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise ValueError('each tool call needs a "name" string')
    unknown = set(raw) - {"name", "arguments"}
    if unknown:
        raise ValueError(f"unknown tool call keys: {sorted(unknown)}")
    arguments = raw.get("arguments", {})
    if not isinstance(arguments, Mapping | str):
        raise ValueError('"arguments" must be an object or a string')
    return ScriptedCall(raw["name"], arguments)


def parse_step(raw: StepLike) -> Step:
    """A step from its JSON shape (a dataclass step is returned as is).

    Raises ``ValueError`` on an unknown kind, an unknown key or a wrong type.
    """
    if isinstance(raw, TextStep | ToolCallsStep | ErrorStep | HangStep):
        return raw
    if isinstance(raw, str):
        return TextStep(raw)
    if not isinstance(raw, Mapping):
        raise ValueError(f"a step must be an object, got {type(raw).__name__}")
    kinds = [key for key in ("text", "tool_calls", "error", "hang") if key in raw]
    if len(kinds) != 1:
        raise ValueError('a step needs exactly one of "text", "tool_calls", "error", "hang"')
    kind = kinds[0]
    allowed = {kind, *StepOptions.__dataclass_fields__}
    allowed |= {"text": {"chunks"}, "error": {"message"}}.get(kind, set())
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"unknown keys in a {kind!r} step: {sorted(unknown)}")
    options = _options(raw)
    if kind == "text":
        if not isinstance(raw["text"], str):
            raise ValueError('"text" must be a string')
        chunks = _number(raw, "chunks", int)
        if chunks == 0:
            raise ValueError('"chunks" must be at least 1')
        return TextStep(raw["text"], chunks, **options)
    if kind == "tool_calls":
        calls = raw["tool_calls"]
        if not isinstance(calls, list) or not calls:
            raise ValueError('"tool_calls" must be a non-empty list')
        return ToolCallsStep([_call(call) for call in calls], **options)
    if kind == "error":
        if raw["error"] not in _ERROR_CODES:
            raise ValueError(f'"error" must be one of {list(_ERROR_CODES)}')
        message = raw.get("message", ErrorStep.message)
        if not isinstance(message, str):
            raise ValueError('"message" must be a string')
        return ErrorStep(raw["error"], message, **options)
    if raw["hang"] is not True:
        raise ValueError('"hang" must be true')
    return HangStep(**options)
