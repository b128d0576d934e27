"""Text to overlapping chunks of at most N tokens, cut where the text allows.

The spec's strategies: ``auto`` is 800 tokens per chunk with 400 of overlap (as
OpenAI); ``static`` takes ``max_chunk_size_tokens`` (100-4096) and
``chunk_overlap_tokens`` (0 to half the chunk size).

A chunk ends at a token boundary within the last quarter of its window, preferring,
in order, a paragraph break, a line break, a sentence end, then a space; when the
window holds none of them (a long URL, text without spaces) it is cut at the full
size, never between the tokens of one multi-byte character if that can be avoided.
Consecutive chunks share ``chunk_overlap_tokens`` tokens (a few more when the exact
start would split a multi-byte character); no chunk is longer
than ``max_chunk_size_tokens``. Token counts come from the injected tokenizer, the
same one the runs count with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import tiktoken

from threadline.retrieval.errors import InvalidChunkingStrategy

MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096
AUTO_CHUNK_TOKENS = 800
AUTO_OVERLAP_TOKENS = 400

_PARAM = "chunking_strategy.static"


class Tokenizer(Protocol):
    def encode(self, text: str, /) -> list[int]: ...
    def decode(self, tokens: list[int], /) -> str: ...


class OrdinaryTokenizer:
    """A tiktoken encoding that reads special-token strings as plain text.

    ``Encoding.encode`` refuses text holding ``<|endoftext|>``; an uploaded document
    may hold it, and must be chunked like any other text.
    """

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.encoding = encoding

    def encode(self, text: str, /) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def decode(self, tokens: list[int], /) -> str:
        return self.encoding.decode(tokens)


@dataclass(frozen=True)
class ChunkingStrategy:
    max_chunk_size_tokens: int
    chunk_overlap_tokens: int
    type: Literal["auto", "static"] = "static"

    def __post_init__(self) -> None:
        size, overlap = self.max_chunk_size_tokens, self.chunk_overlap_tokens
        if not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS:
            raise InvalidChunkingStrategy(
                f"max_chunk_size_tokens must be between {MIN_CHUNK_TOKENS} and "
                f"{MAX_CHUNK_TOKENS}, got {size}",
                f"{_PARAM}.max_chunk_size_tokens",
            )
        if overlap < 0 or overlap * 2 > size:
            raise InvalidChunkingStrategy(
                f"chunk_overlap_tokens must be between 0 and half of max_chunk_size_tokens "
                f"({size // 2}), got {overlap}",
                f"{_PARAM}.chunk_overlap_tokens",
            )

    @classmethod
    def auto(cls) -> ChunkingStrategy:
        return cls(AUTO_CHUNK_TOKENS, AUTO_OVERLAP_TOKENS, "auto")

    @classmethod
    def static(cls, max_chunk_size_tokens: int, chunk_overlap_tokens: int) -> ChunkingStrategy:
        return cls(max_chunk_size_tokens, chunk_overlap_tokens, "static")

    @classmethod
    def from_request(cls, value: Mapping[str, Any] | None) -> ChunkingStrategy:
        """The strategy a request's ``chunking_strategy`` object asks for (``None``: auto)."""
        if value is None:
            return cls.auto()
        kind = value.get("type")
        if kind == "auto":
            return cls.auto()
        if kind != "static":
            raise InvalidChunkingStrategy(
                f"chunking_strategy.type must be 'auto' or 'static', got {kind!r}",
                "chunking_strategy.type",
            )
        static = value.get("static")
        if not isinstance(static, Mapping):
            raise InvalidChunkingStrategy("a static chunking strategy needs 'static'", _PARAM)
        fields = {}
        for name in ("max_chunk_size_tokens", "chunk_overlap_tokens"):
            number = static.get(name)
            if not isinstance(number, int) or isinstance(number, bool):
                raise InvalidChunkingStrategy(f"{name} must be an integer", f"{_PARAM}.{name}")
            fields[name] = number
        return cls.static(fields["max_chunk_size_tokens"], fields["chunk_overlap_tokens"])

    def to_object(self) -> dict[str, Any]:
        """The strategy as the API shows it on a vector store file (always ``static``)."""
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.max_chunk_size_tokens,
                "chunk_overlap_tokens": self.chunk_overlap_tokens,
            },
        }


@dataclass(frozen=True)
class TextChunk:
    index: int
    text: str
    tokens: int


def chunk(text: str, strategy: ChunkingStrategy, tokenizer: Tokenizer) -> list[TextChunk]:
    """``text`` cut into chunks as ``strategy`` asks; no chunk is only whitespace."""
    if not text.strip():
        return []
    tokens = tokenizer.encode(text)
    chunks: list[TextChunk] = []
    for begin, stop in token_spans(tokens, strategy, tokenizer):
        piece = tokenizer.decode(tokens[begin:stop])
        if piece.strip():
            chunks.append(TextChunk(index=len(chunks), text=piece, tokens=stop - begin))
    return chunks


def token_spans(
    tokens: list[int], strategy: ChunkingStrategy, tokenizer: Tokenizer
) -> list[tuple[int, int]]:
    """The ``[start, end)`` token ranges of the chunks of ``tokens``.

    Each range is at most ``max_chunk_size_tokens`` long; the next one starts
    ``chunk_overlap_tokens`` before the end of the previous one, or up to
    ``_MAX_CHAR_TOKENS`` earlier when that start would fall inside a character.
    """
    size, overlap = strategy.max_chunk_size_tokens, strategy.chunk_overlap_tokens
    pieces = _Pieces(tokens, tokenizer)
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + size, len(tokens))
        if end < len(tokens):
            end = _best_cut(pieces, low=start + max(1, size * 3 // 4), high=end)
        spans.append((start, end))
        if end >= len(tokens):
            return spans
        # end >= start + 3/4 size and overlap <= 1/2 size: the next start moves forward.
        next_start = end - overlap
        if overlap:
            for earlier in range(next_start, max(next_start - _MAX_CHAR_TOKENS, start + 1), -1):
                if _cut_score(pieces, earlier) >= 0:
                    next_start = earlier
                    break
        start = next_start


class _Pieces:
    """Each token's own text, decoded on demand (only cut candidates are looked at)."""

    def __init__(self, tokens: list[int], tokenizer: Tokenizer) -> None:
        self.tokens = tokens
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def __getitem__(self, position: int) -> str:
        piece = self.cache.get(position)
        if piece is None:
            piece = self.cache[position] = self.tokenizer.decode([self.tokens[position]])
        return piece


# A character spans at most 4 UTF-8 bytes, so at most 4 byte-level tokens.
_MAX_CHAR_TOKENS = 4
_SENTENCE_ENDS = (".", "!", "?", ":", ";", "\u3002", "\uff01", "\uff1f")  # and CJK . ! ?


def _cut_score(pieces: _Pieces, position: int) -> int:
    """How good a chunk end just before token ``position`` is (higher is better)."""
    before, after = pieces[position - 1], pieces[position]
    if "\ufffd" in before and "\ufffd" in after:
        return -1  # likely inside one multi-byte character
    if (
        before.endswith("\n\n")
        or after.startswith("\n\n")
        or (before.endswith("\n") and after.startswith("\n"))
    ):
        return 4
    if before.endswith("\n") or after.startswith("\n"):
        return 3
    stripped = before.rstrip()
    if stripped.endswith(_SENTENCE_ENDS) and (after[:1].isspace() or before[-1:].isspace()):
        return 2
    if after[:1].isspace() or before[-1:].isspace():
        return 1
    return 0


def _best_cut(pieces: _Pieces, *, low: int, high: int) -> int:
    """The best end in ``[low, high]``: highest score, the latest among equals."""
    best, best_score = high, _cut_score(pieces, high)
    for position in range(high - 1, low - 1, -1):
        if best_score >= 4:
            break
        score = _cut_score(pieces, position)
        if score > best_score:
            best, best_score = position, score
    return best
