"""Attribute filters of a vector store search: the spec's ``ComparisonFilter`` and
``CompoundFilter``, parsed into a typed tree and evaluated against a file's
``attributes``.

Parsing is strict, as the spec's schemas are (``additionalProperties: false``): any
deviation raises ``InvalidFilter`` whose ``param`` is the path of the offending
field (``filters.filters[1].value``).

Evaluation, per file (attributes belong to a vector store file, not to a chunk):

- a comparison on a key the file does not have is false, whatever the operator
  (``ne`` and ``nin`` included): a filter selects files that carry the attribute;
- values compare only with values of the same kind: numbers with numbers (ints and
  floats alike), strings with strings (``gt``/``lt``... in code point order),
  booleans with booleans (``eq``/``ne`` only); a kind mismatch is false;
- ``in`` / ``nin`` take an array of strings and numbers; ``nin`` is true when the
  attribute is present and equals none of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

from threadline.retrieval.errors import InvalidFilter

ComparisonOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
CompoundOp = Literal["and", "or"]
Scalar: TypeAlias = str | float | bool
ListItem: TypeAlias = str | float
Attributes: TypeAlias = Mapping[str, str | float | bool]

COMPARISON_OPS: tuple[ComparisonOp, ...] = get_args(ComparisonOp)
COMPOUND_OPS: tuple[CompoundOp, ...] = get_args(CompoundOp)
MAX_DEPTH = 8
"""Compound filters nest at most this deep."""
MAX_NODES = 256
"""A filter tree holds at most this many comparisons and compounds together."""
MAX_KEY_LENGTH = 64
MAX_LIST_ITEMS = 1000

_ORDERING = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True)
class Comparison:
    op: ComparisonOp
    key: str
    value: Scalar | tuple[ListItem, ...]


@dataclass(frozen=True)
class Compound:
    op: CompoundOp
    filters: tuple[Filter, ...]


Filter: TypeAlias = Comparison | Compound


def parse_filter(raw: object, param: str = "filters") -> Filter:
    """The typed tree of a ``ComparisonFilter`` or ``CompoundFilter`` given as JSON."""
    return _Parser().parse(raw, param, depth=1)


def matches(flt: Filter, attributes: Attributes | None) -> bool:
    """Whether a file with ``attributes`` passes ``flt``."""
    if isinstance(flt, Compound):
        if flt.op == "and":
            return all(matches(sub, attributes) for sub in flt.filters)
        return any(matches(sub, attributes) for sub in flt.filters)
    if attributes is None or flt.key not in attributes:
        return False
    return _compare(flt.op, attributes[flt.key], flt.value)


def _kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _compare(op: ComparisonOp, actual: object, expected: Scalar | tuple[ListItem, ...]) -> bool:
    if isinstance(expected, tuple):
        found = any(_kind(item) == _kind(actual) and item == actual for item in expected)
        return found if op == "in" else _kind(actual) is not None and not found
    if _kind(actual) != _kind(expected):
        return False
    if op == "eq":
        return actual == expected
    if op == "ne":
        return actual != expected
    # Ordering: same kind, strings or numbers (the parser refuses booleans here).
    order = _order(actual, expected)
    if order is None:
        return False
    if op == "gt":
        return order > 0
    if op == "gte":
        return order >= 0
    if op == "lt":
        return order < 0
    return order <= 0


def _order(a: object, b: object) -> int | None:
    """-1, 0 or 1 as ``a`` is below, equal to or above ``b``; ``None``: not comparable."""
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return (a > b) - (a < b)
    return None


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def parse(self, raw: object, param: str, *, depth: int) -> Filter:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise InvalidFilter(f"A filter may hold at most {MAX_NODES} filters.", param)
        if not isinstance(raw, Mapping):
            raise InvalidFilter("A filter must be an object.", param)
        kind = raw.get("type")
        if kind in COMPOUND_OPS:
            return self._compound(raw, param, depth)
        if kind in COMPARISON_OPS:
            return _comparison(raw, param)
        allowed = ", ".join(f"'{op}'" for op in COMPARISON_OPS + COMPOUND_OPS)
        raise InvalidFilter(f"Invalid filter type {kind!r}: expected one of {allowed}.", param)

    def _compound(self, raw: Mapping[object, object], param: str, depth: int) -> Compound:
        _only_fields(raw, ("type", "filters"), param)
        if depth >= MAX_DEPTH:
            raise InvalidFilter(f"Compound filters may nest at most {MAX_DEPTH} deep.", param)
        filters = raw.get("filters")
        if not isinstance(filters, list) or not filters:
            raise InvalidFilter(
                "A compound filter needs 'filters', a non-empty array.", f"{param}.filters"
            )
        parsed = tuple(
            self.parse(sub, f"{param}.filters[{i}]", depth=depth + 1)
            for i, sub in enumerate(filters)
        )
        op = next(o for o in COMPOUND_OPS if o == raw["type"])
        return Compound(op, parsed)


def _comparison(raw: Mapping[object, object], param: str) -> Comparison:
    _only_fields(raw, ("type", "key", "value"), param)
    op = next(o for o in COMPARISON_OPS if o == raw["type"])  # known to be one
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        raise InvalidFilter("'key' must be a non-empty string.", f"{param}.key")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidFilter(f"'key' is longer than {MAX_KEY_LENGTH} characters.", f"{param}.key")
    if "value" not in raw:
        raise InvalidFilter("A comparison filter needs 'value'.", f"{param}.value")
    value = raw["value"]
    where = f"{param}.value"
    if op in ("in", "nin"):
        if not isinstance(value, list) or not value:
            raise InvalidFilter(f"'{op}' needs 'value', a non-empty array.", where)
        if len(value) > MAX_LIST_ITEMS:
            raise InvalidFilter(f"'value' may hold at most {MAX_LIST_ITEMS} items.", where)
        items = tuple(_list_item(item, f"{where}[{i}]") for i, item in enumerate(value))
        return Comparison(op, key, items)
    scalar = _scalar(value, where)
    if op in _ORDERING and isinstance(scalar, bool):
        raise InvalidFilter(f"'{op}' compares numbers or strings, not booleans.", where)
    return Comparison(op, key, scalar)


def _only_fields(raw: Mapping[object, object], allowed: Sequence[str], param: str) -> None:
    for name in raw:
        if name not in allowed:
            raise InvalidFilter(f"Unknown filter field {name!r}.", f"{param}.{name}")


def _scalar(value: object, param: str) -> Scalar:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return _number(value, param)
    raise InvalidFilter("'value' must be a string, number, boolean or array.", param)


def _list_item(value: object, param: str) -> ListItem:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value, param)
    raise InvalidFilter("Array items must be strings or numbers.", param)


def _number(value: float, param: str) -> float:
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidFilter("Numbers must be finite.", param)
    return number
