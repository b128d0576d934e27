"""OpenAI's wording for a request that fails validation: the message, the dotted
``param`` path and the ``code`` its validator gave for each kind of mistake, from
pydantic's errors."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError

from threadline.errors import InvalidRequestError

# How OpenAI's validator worded each kind of mistake: pydantic error type -> code.
_CODES = {
    "missing": "missing_required_parameter",
    "union_tag_not_found": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "literal_error": "invalid_value",
    "enum": "invalid_value",
    "union_tag_invalid": "invalid_value",
    "string_pattern_mismatch": "invalid_value",
    "value_error": "invalid_value",
}
# What a type error expected, in OpenAI's words.
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}
_JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)"
)
_LABEL_NAMES = {"str", "int", "float", "bool", "dict", "list", "none", "constrained-str"}


def _is_label(part: Any) -> bool:
    """A segment pydantic adds to name a union branch or a key, not a field."""
    text = str(part)
    return "[" in text or text in _LABEL_NAMES


def _param(loc: Sequence[Any], body: Any = None) -> str | None:
    """OpenAI's dotted path (``tools[0].function.name``) for a pydantic location.

    Walks the request body along ``loc`` so that the tags and branch labels pydantic
    inserts for unions are left out."""
    parts = list(loc)
    if not parts:
        return None
    where, parts = parts[0], parts[1:]
    if where != "body":  # a query, path or header parameter: its name
        return str(parts[0]) if parts else None
    value = body
    out = ""
    tag_skipped = False
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if isinstance(part, int):
            out += f"[{part}]"
            value = (
                value[part]
                if isinstance(value, list) and -len(value) <= part < len(value)
                else None
            )
            tag_skipped = False
            continue
        if isinstance(value, dict):
            following = None if last else parts[index + 1]
            # The tag, or a field named like it (`tool_choice.function.name`): a tag
            # is followed by a key of this same object.
            tagged = part not in value or following in value
            if not tag_skipped and part == value.get("type") and not last and tagged:
                tag_skipped = True  # the discriminator's tag, inserted before the fields
                continue
            if part in value:
                out = key_path(out, str(part))
                value = value[part]
                tag_skipped = False
                continue
        if last and not _is_label(part):
            out = key_path(out, str(part))
    return out or None


_NAME = re.compile(r"[A-Za-z0-9_-]+")


def key_path(path: str, key: str) -> str:
    """``path`` and one object key after it: ``path.key``, or ``path["a key"]`` for a
    key that is not a plain name (empty, dots, brackets, spaces…)."""
    if not _NAME.fullmatch(key):
        return f"{path}[{json.dumps(key, ensure_ascii=False)}]"
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    """A number as OpenAI quoted it: ``2`` not ``2.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _choices(expected: str) -> str:
    """``'a', 'b' or 'c'`` (pydantic) as ``'a', 'b', and 'c'`` (OpenAI)."""
    items = re.findall(r"'([^']*)'", expected)
    quoted = [f"'{item}'" for item in items]
    if len(quoted) <= 1:
        return "".join(quoted) or expected
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _is_mismatch(error: Mapping[str, Any]) -> bool:
    """An error that only says the value is not of one union branch's type."""
    kind = str(error.get("type", ""))
    if kind in _EXPECTED or kind == "none_required":  # `X | None`: not the None branch
        return True
    return kind == "literal_error" and not isinstance(error.get("input"), str | int | float)


def _pick(errors: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The error to report: the deepest one that is not a union branch's type mismatch,
    else the deepest mismatch (the branch that matched the longest)."""
    informative = [e for e in errors if not _is_mismatch(e)]
    return max(informative or errors, key=lambda e: len(e.get("loc", ())))


def _message(error: Mapping[str, Any], param: str | None, errors: Sequence[Any]) -> str:
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    name = f"'{param}'" if param else "request body"
    if kind in ("missing", "union_tag_not_found"):
        return f"Missing required parameter: {name}."
    if kind == "extra_forbidden":
        return f"Unknown parameter: {name}."
    if kind in ("literal_error", "enum"):
        return (
            f"Invalid value: '{value}'. Supported values are: {_choices(str(ctx.get('expected')))}."
        )
    if kind == "union_tag_invalid":
        expected = _choices(str(ctx.get("expected_tags")))
        return f"Invalid value: '{ctx.get('tag')}'. Supported values are: {expected}."
    if kind == "string_too_long":
        limit: Any = ctx.get("max_length")
        size: Any = len(value) if isinstance(value, str) else "?"
        if str(error.get("loc", ("",))[-1]) == "[key]":
            return (
                f"Invalid {name}: key too long. Expected a key with maximum length {limit}, "
                f"but got a key with length {size} instead."
            )
        return (
            f"Invalid {name}: string too long. Expected a string with maximum length {limit}, "
            f"but got a string with length {size} instead."
        )
    if kind == "string_too_short":
        limit = ctx.get("min_length")
        if value == "":
            return (
                f"Invalid {name}: empty string. Expected a string with minimum length {limit}, "
                "but got an empty string instead."
            )
        return (
            f"Invalid {name}: string too short. Expected a string with minimum length {limit}, "
            f"but got a string with length {len(str(value))} instead."
        )
    if kind in ("too_long", "too_short"):
        bound_len = ctx.get("max_length" if kind == "too_long" else "min_length")
        size = ctx.get("actual_length")
        if kind == "too_short" and size == 0:
            return (
                f"Invalid {name}: empty array. Expected an array with minimum length {bound_len}, "
                "but got an empty array instead."
            )
        which = "maximum" if kind == "too_long" else "minimum"
        return (
            f"Invalid {name}: array too {'long' if kind == 'too_long' else 'short'}. Expected an "
            f"array with {which} length {bound_len}, but got an array with length {size} instead."
        )
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = ctx.get({">=": "ge", ">": "gt", "<=": "le", "<": "lt"}[op])
        number = "integer" if isinstance(bound, int) else "decimal"
        side = "below minimum" if op.startswith(">") else "above maximum"
        return (
            f"Invalid {name}: {number} {side} value. Expected a value {op} {_show(bound)}, "
            f"but got {_show(value)} instead."
        )
    if kind == "string_pattern_mismatch":
        return (
            f"Invalid {name}: string does not match pattern. Expected a string that matches "
            f"the pattern '{ctx.get('pattern')}'."
        )
    if kind in _EXPECTED:
        wanted_types = [_EXPECTED[str(e["type"])] for e in errors if str(e["type"]) in _EXPECTED]
        unique = list(dict.fromkeys(wanted_types))
        wanted = unique[0] if len(unique) == 1 else "one of " + " or ".join(unique)
        return f"Invalid type for {name}: expected {wanted}, but got {_kind_of(value)} instead."
    text = str(error.get("msg", "invalid value")).removeprefix("Value error, ").rstrip(".")
    return f"Invalid {name}: {text}."


def _code(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if kind in _CODES:
        return _CODES[kind]
    if kind in _EXPECTED:
        return "invalid_type"
    if kind == "string_too_long":
        return "string_above_max_length"
    if kind == "string_too_short":
        return "empty_string" if value == "" else "string_below_min_length"
    if kind == "too_long":
        return "array_above_max_length"
    if kind == "too_short":
        return "empty_array" if ctx.get("actual_length") == 0 else "array_below_min_length"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), None)
        number = "integer" if isinstance(bound, int) else "decimal"
        side = "below_min" if kind.startswith("greater") else "above_max"
        return f"{number}_{side}_value"
    return kind or "invalid_value"


def validation_error(exc: RequestValidationError) -> InvalidRequestError:
    """One pydantic failure, worded and coded as OpenAI's validator reported it."""
    errors = list(exc.errors())
    if not errors:
        return InvalidRequestError("Invalid request.")
    body = getattr(exc, "body", None)
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidRequestError(_JSON_HINT)
    first = _pick(errors)
    loc = tuple(first.get("loc", ()))
    is_key = bool(loc) and loc[-1] == "[key]"
    param = _param(loc[:-2] if is_key else loc, body)
    if first.get("type") == "missing" and param is None:
        return InvalidRequestError(
            "The request body is missing.", code="missing_required_parameter"
        )
    if first.get("type") == "union_tag_invalid" or (first.get("type") == "union_tag_not_found"):
        param = f"{param}.type" if param else "type"
    same = [e for e in errors if _is_mismatch(e) and _param(e.get("loc", ()), body) == param]
    return InvalidRequestError(
        _message(first, param, same or [first]), param=param, code=_code(first)
    )
