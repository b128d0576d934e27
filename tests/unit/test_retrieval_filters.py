"""Search filters: the spec's ComparisonFilter / CompoundFilter, parsed and evaluated."""

from __future__ import annotations

from typing import Any

import pytest

from threadline.retrieval.errors import InvalidFilter
from threadline.retrieval.filters import (
    MAX_DEPTH,
    Comparison,
    Compound,
    matches,
    parse_filter,
)

DOC: dict[str, Any] = {"author": "ada", "year": 2021, "score": 4.5, "public": True, "lang": "en"}


def passes(raw: dict[str, Any], attributes: dict[str, Any] | None = None) -> bool:
    return matches(parse_filter(raw), DOC if attributes is None else attributes)


def test_parses_into_a_typed_tree() -> None:
    tree = parse_filter(
        {
            "type": "and",
            "filters": [
                {"type": "eq", "key": "author", "value": "ada"},
                {"type": "in", "key": "year", "value": [2020, 2021]},
            ],
        }
    )
    assert tree == Compound(
        "and",
        (Comparison("eq", "author", "ada"), Comparison("in", "year", (2020.0, 2021.0))),
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "eq", "key": "author", "value": "ada"}, True),
        ({"type": "eq", "key": "author", "value": "bob"}, False),
        ({"type": "ne", "key": "author", "value": "bob"}, True),
        ({"type": "eq", "key": "year", "value": 2021.0}, True),
        ({"type": "gt", "key": "year", "value": 2020}, True),
        ({"type": "gt", "key": "year", "value": 2021}, False),
        ({"type": "gte", "key": "year", "value": 2021}, True),
        ({"type": "lt", "key": "score", "value": 4.5}, False),
        ({"type": "lte", "key": "score", "value": 4.5}, True),
        ({"type": "lt", "key": "author", "value": "bob"}, True),  # strings: code point order
        ({"type": "eq", "key": "public", "value": True}, True),
        ({"type": "ne", "key": "public", "value": True}, False),
        ({"type": "in", "key": "lang", "value": ["fr", "en"]}, True),
        ({"type": "nin", "key": "lang", "value": ["fr", "de"]}, True),
        ({"type": "nin", "key": "lang", "value": ["en"]}, False),
    ],
)
def test_comparisons(raw: dict[str, Any], expected: bool) -> None:
    assert passes(raw) is expected


@pytest.mark.parametrize(
    "raw",
    [
        # kinds never mix: the number 1 is not the boolean true, "2021" is not 2021
        {"type": "eq", "key": "public", "value": 1},
        {"type": "eq", "key": "year", "value": "2021"},
        {"type": "gt", "key": "author", "value": 1},
        {"type": "in", "key": "public", "value": [1]},
        # a key the file lacks fails every operator, ne and nin included
        {"type": "ne", "key": "missing", "value": "x"},
        {"type": "nin", "key": "missing", "value": ["x"]},
    ],
)
def test_mismatched_kinds_and_missing_keys_do_not_match(raw: dict[str, Any]) -> None:
    assert passes(raw) is False


def test_compounds_nest() -> None:
    raw = {
        "type": "or",
        "filters": [
            {"type": "eq", "key": "author", "value": "bob"},
            {
                "type": "and",
                "filters": [
                    {"type": "gte", "key": "year", "value": 2020},
                    {"type": "eq", "key": "public", "value": True},
                ],
            },
        ],
    }
    assert passes(raw)
    assert not passes(raw, {**DOC, "public": False})
    assert passes(raw, {"author": "bob"})
    assert not passes(raw, {})
    assert not matches(parse_filter(raw), None)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ("eq", "filters"),
        ({"key": "a", "value": 1}, "filters"),
        ({"type": "like", "key": "a", "value": 1}, "filters"),
        ({"type": "eq", "value": 1}, "filters.key"),
        ({"type": "eq", "key": "", "value": 1}, "filters.key"),
        ({"type": "eq", "key": 7, "value": 1}, "filters.key"),
        ({"type": "eq", "key": "k" * 65, "value": 1}, "filters.key"),
        ({"type": "eq", "key": "a"}, "filters.value"),
        ({"type": "eq", "key": "a", "value": None}, "filters.value"),
        ({"type": "eq", "key": "a", "value": {"x": 1}}, "filters.value"),
        ({"type": "eq", "key": "a", "value": ["x"]}, "filters.value"),
        ({"type": "eq", "key": "a", "value": float("nan")}, "filters.value"),
        ({"type": "eq", "key": "a", "value": 10**400}, "filters.value"),
        ({"type": "gt", "key": "a", "value": True}, "filters.value"),
        ({"type": "in", "key": "a", "value": "x"}, "filters.value"),
        ({"type": "in", "key": "a", "value": []}, "filters.value"),
        ({"type": "in", "key": "a", "value": ["x", True]}, "filters.value[1]"),
        ({"type": "in", "key": "a", "value": ["x", ["y"]]}, "filters.value[1]"),
        ({"type": "eq", "key": "a", "value": 1, "extra": 1}, "filters.extra"),
        ({"type": "and"}, "filters.filters"),
        ({"type": "and", "filters": []}, "filters.filters"),
        ({"type": "or", "filters": {"type": "eq"}}, "filters.filters"),
        (
            {"type": "and", "filters": [{"type": "eq", "key": "a", "value": 1}, 5]},
            "filters.filters[1]",
        ),
        (
            {"type": "or", "filters": [{"type": "and", "filters": [{"type": "eq", "key": "a"}]}]},
            "filters.filters[0].filters[0].value",
        ),
        ({"type": "and", "filters": [], "key": "a"}, "filters.key"),
    ],
)
def test_malformed_filters_name_the_offending_param(raw: object, param: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(raw)
    assert caught.value.param == param
    assert caught.value.message


def test_nesting_and_size_are_bounded() -> None:
    leaf: dict[str, Any] = {"type": "eq", "key": "a", "value": 1}
    deep: dict[str, Any] = leaf
    for _ in range(MAX_DEPTH):
        deep = {"type": "and", "filters": [deep]}
    with pytest.raises(InvalidFilter, match="nest"):
        parse_filter(deep)
    wide = {"type": "or", "filters": [leaf] * 300}
    with pytest.raises(InvalidFilter, match="at most"):
        parse_filter(wide)
    within = leaf
    for _ in range(MAX_DEPTH - 1):
        within = {"type": "and", "filters": [within]}
    assert matches(parse_filter(within), {"a": 1})
