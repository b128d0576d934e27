"""What an answer from tool results must state before it may end.

Asked "How warm is the bathroom?" with ``{"value": 24.5, "unit": "C"}`` returned,
the 0.5B model may answer "The bathroom is warm." and end there; given a flight's
number, time and price, it may state two and end; asked what a handbook says, it
may write the search result's citation marker and end. The answer's end of turn is
held back (``Engine.decode``'s ``hold_end``) while it leaves out a value of the
results, so the model goes on to state it ("The temperature is 24.5 degrees"), for
at most ``HOLD_CHARS`` of text: past that the answer may end as the model likes.

The values are a JSON result's numbers and short strings (up to ``SHORT_WORDS``
words): each must be stated, a number however written ("1,284", "14%" for 0.14), a
date as itself or as its day and month ("December 3rd"). A longer string, or a
plain-text result (a search's passages, code's output), gives its words of
``LONG_WORD`` or more letters and its numbers instead, of which one must be stated
where the results have no values. Nothing the user's question already holds counts
("bedroom" returned for "Set the bedroom to 19" tells nothing new): results whose
every value the question holds, or that hold none (``{"ok": true}``), hold nothing
back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from threadline.models.local.policy import mentioned_numbers, written_numbers
from threadline.models.local.prompt import MARKER

HOLD_CHARS = 300
"""The longest answer whose end is held back for want of a value."""
SHORT_WORDS = 3
"""A string of up to this many words is a value to state whole."""
LONG_WORD = 6
"""The fewest letters a word of a longer text needs to count as one of its facts."""
_LONG_WORD = re.compile(rf"[^\W\d_]{{{LONG_WORD},}}")
_WORDS_ONLY = re.compile(r"[^\w.:/-]+|[.:/-](?!\w)")
"""Punctuation between words, where a fact matches whole words: "UPS." is "UPS"."""
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august",
    "september", "october", "november", "december",
)  # fmt: skip


@dataclass(frozen=True)
class Facts:
    """What an answer from some tool results must state."""

    numbers: frozenset[float] = frozenset()
    texts: frozenset[str] = frozenset()
    """The results' values: each to be stated."""
    words: frozenset[str] = frozenset()
    word_numbers: frozenset[float] = frozenset()
    """Of the results' longer texts: one to be stated, where there are no values."""

    def __bool__(self) -> bool:
        return bool(self.numbers or self.texts or self.words or self.word_numbers)

    def missing_from(self, answer: str) -> bool:
        """Whether ``answer`` leaves out what it must state (citation markers aside)."""
        answer = MARKER.sub(" ", answer)
        text, said = f" {_normal(answer)} ", mentioned_numbers(answer)
        if self.numbers or self.texts:
            return not (
                all(_states(fact, text) for fact in self.texts)
                and all(_says(number, said) for number in self.numbers)
            )
        return not (
            any(f" {word} " in text for word in self.words)
            or any(_says(number, said) for number in self.word_numbers)
        )

    def hold_end(self, answer: str) -> bool:
        """Whether ``answer`` may not end yet: it is short and leaves something out."""
        return bool(self) and len(answer) < HOLD_CHARS and self.missing_from(answer)


def facts_of(results: Sequence[str], question: str) -> Facts:
    """What an answer must state of tool ``results`` (their message contents) that
    ``question`` does not already hold."""
    asked, asked_numbers = f" {_normal(question)} ", mentioned_numbers(question)
    numbers: set[float] = set()
    texts: set[str] = set()
    words: set[str] = set()
    word_numbers: set[float] = set()
    for result in results:
        parsed = _parsed(result)
        for value in _leaves(parsed):
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int | float):
                numbers.add(float(value))
                continue
            raw = MARKER.sub(" ", str(value))
            text = _normal(raw)
            if (
                isinstance(parsed, dict | list)
                and len(text) >= 2
                and len(text.split()) <= SHORT_WORDS
            ):
                if f" {text} " not in asked:
                    texts.add(text)
            else:
                words |= {w for w in _LONG_WORD.findall(text) if f" {w} " not in asked}
                word_numbers |= written_numbers(raw)
    return Facts(
        frozenset(numbers - asked_numbers),
        frozenset(texts),
        frozenset(words),
        frozenset(word_numbers - asked_numbers),
    )


def _states(fact: str, text: str) -> bool:
    """Whether normalised ``text`` (space-padded) states the value ``fact``."""
    if f" {fact} " in text:
        return True
    date = _DATE.match(fact)
    if date is None or not 1 <= int(date[2]) <= 12:
        return False
    month, day = _MONTHS[int(date[2]) - 1], int(date[3])
    named = f" {month} " in text or f" {month[:3]} " in text
    return named and re.search(rf"(?<!\d)0?{day}(?:st|nd|rd|th)?(?!\d)", text) is not None


def _says(number: float, said: set[float]) -> bool:
    return number in said or round(number * 100, 6) in said


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
