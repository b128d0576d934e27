"""Reciprocal-rank fusion and the making of full-text queries from user text."""

from __future__ import annotations

import sqlite3

import pytest

from threadline.retrieval.index.fusion import HYBRID_WEIGHTS, K, fuse
from threadline.retrieval.index.query_terms import MAX_TERMS, fts5_query, query_terms


def test_fusion_rewards_agreement_and_normalises_to_one() -> None:
    fused = dict(fuse([["a", "b", "c"], ["b", "a", "d"]]))
    assert fused["a"] == fused["b"] == pytest.approx((1 / (K + 1) + 1 / (K + 2)) / (2 / (K + 1)))
    assert fused["a"] > fused["c"]
    assert fused["a"] > fused["d"]
    assert dict(fuse([["x"], ["x"]]))["x"] == 1.0
    # absent from one of two rankings: one half at best
    assert dict(fuse([["a", "b"], ["c"]])) == pytest.approx(
        {"a": 0.5, "c": 0.5, "b": (K + 1) / (2 * (K + 2))}
    )


def test_fusion_orders_best_first_and_keeps_first_seen_order_on_ties() -> None:
    ranked = [item for item, _ in fuse([["a", "b", "c"], ["c", "b", "a"]])]
    assert ranked == ["a", "c", "b"]  # 1/61 + 1/63 > 2/62; a and c tie, a met first
    scores = [score for _, score in fuse([["a", "b", "c"], ["d"]])]
    assert scores == sorted(scores, reverse=True)
    assert [item for item, _ in fuse([["a"], ["b"]])] == ["a", "b"]
    assert fuse([]) == []
    assert fuse([[], []]) == []


def test_single_ranking_scores_fall_with_rank() -> None:
    scores = [score for _, score in fuse([["a", "b", "c"]])]
    assert scores[0] == 1.0
    assert scores == sorted(scores, reverse=True)
    assert scores[2] == pytest.approx((K + 1) / (K + 3))


def test_weights_scale_each_rankings_share() -> None:
    dense, lexical = HYBRID_WEIGHTS
    fused = dict(fuse([["a", "b"], ["c", "b"]], weights=HYBRID_WEIGHTS))
    total = dense + lexical
    assert fused["a"] == pytest.approx(dense / total)  # first in the dense ranking alone
    assert fused["c"] == pytest.approx(lexical / total)  # first in the lexical one alone
    assert fused["b"] == pytest.approx((K + 1) / (K + 2))  # second in both
    # agreement still wins: second in both beats first in one
    [(first, _), *_] = fuse([["a", "b"], ["c", "b"]], weights=HYBRID_WEIGHTS)
    assert first == "b"
    assert dict(fuse([["x"], ["x"]], weights=HYBRID_WEIGHTS))["x"] == 1.0
    for bad in ([1.0], [1.0, 0.0]):
        with pytest.raises(ValueError, match="weight"):
            fuse([["a"], ["b"]], weights=bad)


def test_query_terms_are_words_lowercased_distinct_and_bounded() -> None:
    assert query_terms('How do I "reset" my Router? router-reset, NEAR(a b)*') == [
        "how",
        "do",
        "i",
        "reset",
        "my",
        "router",
        "near",
        "a",
        "b",
    ]
    assert query_terms("Ünïcode naïve 東京 2024") == ["ünïcode", "naïve", "東京", "2024"]
    assert query_terms("--- ** ()") == []
    assert len(query_terms(" ".join(f"w{i}" for i in range(100)))) == MAX_TERMS


@pytest.mark.parametrize(
    "hostile",
    [
        'AND OR NOT "unclosed',
        "NEAR(a b, 3) col:term ^start * - + {x y}",
        "a\x00b ' \" \\ ; DROP TABLE x; --",
        "OR",
    ],
)
def test_no_user_text_is_an_fts5_syntax_error(hostile: str) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61')")
    conn.execute("INSERT INTO t(text) VALUES ('and or not near drop table a b x y')")
    terms = query_terms(hostile)
    assert terms
    rows = conn.execute("SELECT count(*) FROM t WHERE t MATCH ?", (fts5_query(terms),)).fetchone()
    assert rows[0] == 1
