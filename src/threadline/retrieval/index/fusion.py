"""Reciprocal-rank fusion of rankings, weighted, its score normalised to 0-1."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = 10
"""The constant of reciprocal-rank fusion (Cormack et al., 2009): a chunk ranked
``r`` (from 1) in a ranking earns ``weight / (K + r)`` from it. The paper's 60
flattens the top of each ranking (1/61 against 1/65 for first and fifth), so a
chunk both rankings put in their middle beat one that either ranked first; on the
labelled set (``bench/retrieval_quality.py``) 5 to 15 did equally well and 60
worst (``docs/retrieval-index.md``)."""

HYBRID_WEIGHTS = (1.0, 0.5)
"""The weights of the dense and the lexical ranking in a hybrid search: words
alone miss paraphrases, and at equal weight a lexical ranking of small chunks
that share the query's common words pulls the dense ranking's hits down."""

_T = TypeVar("_T", bound=Hashable)


def fuse(
    rankings: Sequence[Sequence[_T]],
    *,
    k: int = K,
    weights: Sequence[float] | None = None,
) -> list[tuple[_T, float]]:
    """Items of ``rankings`` (each best first) by fused score, best first.

    The score is the sum of ``weight / (k + rank)`` over the rankings (weights 1
    unless given, one per ranking), divided by its highest possible value (first
    in all of them): 1.0 for an item ranked first everywhere, at most a ranking's
    share of the weights for one found by that ranking alone. Ties keep the order
    in which items were first met."""
    if not rankings:
        return []
    shares = [1.0] * len(rankings) if weights is None else list(weights)
    if len(shares) != len(rankings) or any(w <= 0 for w in shares):
        raise ValueError(f"need one positive weight per ranking, got {shares}")
    best = sum(shares) / (k + 1)
    scores: dict[_T, float] = {}
    for weight, ranking in zip(shares, rankings, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    ordered = sorted(scores.items(), key=lambda pair: -pair[1])
    return [(item, min(1.0, score / best)) for item, score in ordered]
