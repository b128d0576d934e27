"""When the local model's code_interpreter call is wanted: it carries code and the
request asks for a computation, data work or a chart."""

from __future__ import annotations

import pytest

from threadline.models.local.calls import ParsedCall
from threadline.models.local.policy import code_worthy


def call(code: object) -> ParsedCall:
    return ParsedCall("code_interpreter", {"input": code})


@pytest.mark.parametrize(
    "question",
    [
        "Compute the average amount per region in sales.csv",
        "Plot a bar chart of these values",
        "What is 2**100?",
        "How many rows does the file have?",
    ],
)
def test_computations_want_code(question: str) -> None:
    assert code_worthy(call("print(1)"), question)


@pytest.mark.parametrize("question", ["What is the capital of Italy?", "Tell me a joke."])
def test_other_questions_do_not(question: str) -> None:
    assert not code_worthy(call("print(1)"), question)


@pytest.mark.parametrize("code", ["", "   ", None, 42])
def test_a_call_without_code_is_not_wanted(code: object) -> None:
    assert not code_worthy(call(code), "Compute the sum of 1 to 10")
