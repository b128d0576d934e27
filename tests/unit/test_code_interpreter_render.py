"""What the model reads of a code_interpreter execution, and how a call's code is
read from its arguments."""

from __future__ import annotations

from typing import Any

from threadline.engine.tools.code_interpreter import RESTARTED, _code, render
from threadline.sandbox import ExecutionResult, OutputFile


def test_logs_images_files_and_a_restart_are_said() -> None:
    result = ExecutionResult(
        logs="4\n",
        restarted=True,
        files=[OutputFile("big.bin", 99_000_000, None), OutputFile("out.csv", 3, b"a,b")],
    )
    outputs: list[dict[str, Any]] = [
        {"type": "logs", "logs": "4\n"},
        {"type": "image", "image": {"file_id": "f"}},
    ]
    text = render(result, outputs, {"out.csv": "file-1"}, 1000)
    assert text.startswith(RESTARTED + "4\n")
    assert "[1 image(s) shown to the user]" in text
    assert "[file saved: sandbox:/mnt/data/out.csv]" in text
    assert "too large to give the user: /mnt/data/big.bin, 99000000 bytes" in text


def test_long_logs_keep_their_start_and_end() -> None:
    logs = "a" * 5000 + "b" * 5000
    text = render(ExecutionResult(logs=logs), [{"type": "logs", "logs": logs}], {}, 1000)
    assert len(text) < 1100
    assert text.startswith("a" * 500)
    assert text.endswith("b" * 500)


def test_no_output_is_said() -> None:
    assert render(ExecutionResult(), [], {}, 1000) == "(no output)"


def test_the_code_of_a_call() -> None:
    assert _code('{"input": "print(1)"}') == "print(1)"
    assert _code('{"code": "x = 2"}') == "x = 2"
    assert _code('"print(3)"') == "print(3)"
    assert _code("print(4)") == "print(4)"  # written bare
    assert _code('{"other": 1}') == ""
