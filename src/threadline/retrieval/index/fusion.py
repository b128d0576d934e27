"""Reciprocal-rank fusion of rankings, its score normalised to 0-1."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = 60
"""The constant of reciprocal-rank fusion (Cormack et al., 2009): a chunk ranked
``r`` (from 1) in a ranking earns ``1 / (K + r)`` from it."""

_T = TypeVar("_T", bound=Hashable)


def fuse(rankings: Sequence[Sequence[_T]], *, k: int = K) -> list[tuple[_T, float]]:
    """Items of ``rankings`` (each best first) by fused score, best first.

    The score is the sum of ``1 / (k + rank)`` over the rankings, divided by its
    highest possible value (first in all of them): 1.0 for an item ranked first
    everywhere, at most ``1 / len(rankings)`` for one found by a single
    ranking. Ties keep the order in which items were first met."""
    if not rankings:
        return []
    best = len(rankings) / (k + 1)
    scores: dict[_T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    ordered = sorted(scores.items(), key=lambda pair: -pair[1])
    return [(item, min(1.0, score / best)) for item, score in ordered]
