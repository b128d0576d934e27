"""What an answer from tool results must carry: at least one of their facts.

Asked "How warm is the bathroom?" with ``{"value": 24.5, "unit": "C"}`` returned,
the 0.5B model may answer "The bathroom is warm." and end there; asked what a
handbook says, it may write the search result's citation marker and end. Both end
before stating anything the results hold. The answer's end of turn is held back
(``Engine.decode``'s ``hold_end``) while it carries none of the results' facts, so
the model goes on to state one ("The temperature is 24.5 C"), for at most
``HOLD_CHARS`` of text: past that the answer may end as the model likes.

A fact is a value of a JSON result, or a plain-text result: a number; a string of up
to ``SHORT`` characters; the numbers a string writes in digits; and the words of ``LONG_WORD``
or more letters of a string of more than ``SHORT_WORDS`` words. None counts where
the user's question already holds it:
"bedroom" returned for "Set the bedroom to 19" tells nothing new. Results whose
every value the question holds, or that hold no such value (``{"ok": true}``),
hold nothing back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from threadline.models.local.policy import mentioned_numbers, written_numbers

HOLD_CHARS = 300
"""The longest answer whose end is held back for want of a fact."""
SHORT = 60
"""A string value up to this long is a fact as a whole."""
SHORT_WORDS = 3
"""A string of more words is also a fact by each of its long words."""
LONG_WORD = 6
"""The fewest letters a word of a long text needs to count as one of its facts."""
_MARKER = re.compile(r"[【\[]\d+:\d+†[^】\]\n]*[】\]]")
_LONG_WORD = re.compile(rf"[^\W\d_]{{{LONG_WORD},}}")
_WORDS_ONLY = re.compile(r"[^\w.:/-]+|[.:/-](?!\w)")
"""Punctuation between words, where a fact matches whole words: "UPS." is "UPS"."""


@dataclass(frozen=True)
class Facts:
    """The facts of some tool results an answer should carry one of."""

    numbers: frozenset[float]
    texts: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.numbers or self.texts)

    def carried_by(self, answer: str) -> bool:
        """Whether ``answer`` states one of the facts (citation markers aside)."""
        answer = _MARKER.sub(" ", answer)
        text = _normal(answer)
        if any(f" {fact} " in f" {text} " for fact in self.texts):
            return True
        said = mentioned_numbers(answer)
        return any(n in said or round(n * 100, 6) in said for n in self.numbers)

    def hold_end(self, answer: str) -> bool:
        """Whether ``answer`` may not end yet: it is short and carries no fact."""
        return bool(self) and len(answer) < HOLD_CHARS and not self.carried_by(answer)


def facts_of(results: Sequence[str], question: str) -> Facts:
    """The facts of tool ``results`` (their message contents) that ``question``
    does not already hold."""
    asked, asked_numbers = _normal(question), mentioned_numbers(question)
    numbers: set[float] = set()
    texts: set[str] = set()
    for result in results:
        for value in _leaves(_parsed(result)):
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int | float):
                if float(value) not in asked_numbers:
                    numbers.add(float(value))
                continue
            raw = _MARKER.sub(" ", str(value))
            text = _normal(raw)
            numbers |= written_numbers(raw) - asked_numbers
            if len(text.split()) > SHORT_WORDS:
                texts |= {w for w in _LONG_WORD.findall(text) if w not in asked}
            if 2 <= len(text) <= SHORT and f" {text} " not in f" {asked} ":
                texts.add(text)
    return Facts(frozenset(numbers), frozenset(texts))


def _parsed(result: str) -> Any:
    try:
        return json.loads(result)
    except ValueError:
        return result


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield from _all(value.values())
    elif isinstance(value, list):
        yield from _all(value)
    else:
        yield value


def _all(values: Iterable[Any]) -> Iterator[Any]:
    for value in values:
        yield from _leaves(value)


def _normal(text: str) -> str:
    """Lower case, words apart: "In_transit, by UPS." is "in transit by ups"."""
    return " ".join(_WORDS_ONLY.sub(" ", text.lower().replace("_", " ")).split())
