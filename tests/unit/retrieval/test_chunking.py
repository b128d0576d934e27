"""Chunking: bounds of the strategies, sizes, overlap and cut points, on o200k_base."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threadline.models.tokens import get_encoding
from threadline.retrieval.chunking import (
    ChunkingStrategy,
    OrdinaryTokenizer,
    TextChunk,
    chunk,
    token_spans,
)
from threadline.retrieval.errors import InvalidChunkingStrategy

TOKENIZER = OrdinaryTokenizer(get_encoding("o200k_base"))
WORDS = [
    "the",
    "pump",
    "valve",
    "pressure",
    "sensor",
    "reading",
    "exceeds",
    "threshold",
    "operator",
    "must",
    "reset",
    "calibration",
    "weekly",
    "naïve",
    "café",
    "東京",
    "données",
    "émoji",
    "🎉",
    "résumé",
    "value=42",
    "x_y-z",
]


def prose(rng: random.Random, sentences: int) -> str:
    out = []
    for n in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 25))]
        out.append(" ".join(words).capitalize() + rng.choice([".", "!", "?", ","]))
        if n % 7 == 6:
            out.append("\n\n")
        elif n % 3 == 2:
            out.append("\n")
        else:
            out.append(" ")
    return "".join(out)


def test_auto_is_800_with_400_overlap() -> None:
    auto = ChunkingStrategy.auto()
    assert (auto.max_chunk_size_tokens, auto.chunk_overlap_tokens, auto.type) == (800, 400, "auto")
    assert ChunkingStrategy.from_request(None) == auto
    assert ChunkingStrategy.from_request({"type": "auto"}) == auto
    assert auto.to_object() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }


@pytest.mark.parametrize(
    ("size", "overlap", "param"),
    [
        (99, 0, "chunking_strategy.static.max_chunk_size_tokens"),
        (4097, 0, "chunking_strategy.static.max_chunk_size_tokens"),
        (0, 0, "chunking_strategy.static.max_chunk_size_tokens"),
        (200, 101, "chunking_strategy.static.chunk_overlap_tokens"),
        (200, -1, "chunking_strategy.static.chunk_overlap_tokens"),
    ],
)
def test_static_bounds_are_enforced(size: int, overlap: int, param: str) -> None:
    with pytest.raises(InvalidChunkingStrategy) as caught:
        ChunkingStrategy.static(size, overlap)
    assert caught.value.param == param


def test_static_limits_are_inclusive() -> None:
    assert ChunkingStrategy.static(100, 50).chunk_overlap_tokens == 50
    assert ChunkingStrategy.static(4096, 2048).max_chunk_size_tokens == 4096


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"type": "fancy"}, "chunking_strategy.type"),
        ({"type": "static"}, "chunking_strategy.static"),
        ({"type": "static", "static": {"max_chunk_size_tokens": "800"}}, "max_chunk_size_tokens"),
        (
            {
                "type": "static",
                "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": True},
            },
            "chunk_overlap_tokens",
        ),
        (
            {
                "type": "static",
                "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 401},
            },
            "chunk_overlap_tokens",
        ),
    ],
)
def test_from_request_rejects_malformed_objects(
    request_body: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidChunkingStrategy) as caught:
        ChunkingStrategy.from_request(request_body)
    assert caught.value.param.endswith(param)


def test_from_request_static() -> None:
    body = {"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 0}}
    assert ChunkingStrategy.from_request(body) == ChunkingStrategy.static(300, 0)


def test_empty_and_blank_text_give_no_chunks() -> None:
    assert chunk("", ChunkingStrategy.auto(), TOKENIZER) == []
    assert chunk(" \n\n\t", ChunkingStrategy.auto(), TOKENIZER) == []


def test_short_text_is_one_chunk_with_its_token_count() -> None:
    text = "Reset the pump after calibration."
    assert chunk(text, ChunkingStrategy.auto(), TOKENIZER) == [
        TextChunk(index=0, text=text, tokens=len(TOKENIZER.encode(text)))
    ]


def test_special_token_text_is_chunked_as_plain_text() -> None:
    text = "before <|endoftext|> after " * 200
    chunks = chunk(text, ChunkingStrategy.static(100, 0), TOKENIZER)
    assert "".join(c.text for c in chunks) == text


def test_cuts_prefer_paragraphs_then_sentences() -> None:
    paragraph = "Sentence number {n} talks about pumps and valves in some detail here. "
    paragraphs = ["".join(paragraph.format(n=n) for n in range(6)) for _ in range(20)]
    text = "\n\n".join(paragraphs)
    chunks = chunk(text, ChunkingStrategy.static(300, 0), TOKENIZER)
    assert len(chunks) > 3
    for piece in chunks[:-1]:
        assert piece.text.endswith(("\n\n", ". ", "."))
    assert "".join(c.text for c in chunks) == text


def test_text_without_spaces_is_cut_at_full_size() -> None:
    text = "abcdefghij" * 2000
    chunks = chunk(text, ChunkingStrategy.static(100, 20), TOKENIZER)
    assert max(c.tokens for c in chunks) == 100
    assert all(c.tokens <= 100 for c in chunks)


def test_multibyte_characters_are_not_split() -> None:
    text = "東京都の天気は晴れです" * 300 + "🎉" * 300
    for piece in chunk(text, ChunkingStrategy.static(100, 30), TOKENIZER):
        assert "\ufffd" not in piece.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    sentences=st.integers(1, 160),
    size=st.integers(100, 600),
    overlap_fraction=st.floats(0, 0.5),
)
def test_spans_respect_size_and_overlap_and_cover_the_text(
    seed: int, sentences: int, size: int, overlap_fraction: float
) -> None:
    text = prose(random.Random(seed), sentences)
    tokens = TOKENIZER.encode(text)
    overlap = int(size * overlap_fraction)
    strategy = ChunkingStrategy.static(size, overlap)
    spans = token_spans(tokens, strategy, TOKENIZER)
    assert spans[0][0] == 0
    assert spans[-1][1] == len(tokens)
    assert all(0 < end - start <= size for start, end in spans)
    # Every chunk but the last is at least three quarters full.
    assert all(end - start >= size * 3 // 4 for start, end in spans[:-1])
    for (_, previous_end), (start, _) in itertools.pairwise(spans):
        assert overlap <= previous_end - start <= overlap + 4
    chunks = chunk(text, strategy, TOKENIZER)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert [(c.text, c.tokens) for c in chunks] == [
        (TOKENIZER.decode(tokens[a:b]), b - a) for a, b in spans
    ]
    if len(tokens) <= size:
        assert [c.text for c in chunks] == [text]
