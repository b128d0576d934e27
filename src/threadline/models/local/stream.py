"""Telling a streamed reply's text from a tool call as the tokens arrive.

The start of a reply is held back until it clearly is, or is not, a call
(``classify_start``); a ``<tool_call>`` after some text is captured rather than shown
(``MarkerSplitter``); ``AnswerStream`` puts both together for one answer attempt.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

_CALL_BODIES = (
    "<tool_call>",
    '{"name"',
    '{"function"',
    '{"tool',
    '{"type":"function"',
    '[{"name"',
    '[{"function"',
    "[<tool_call>",
)
_FENCES = ("", "```json", "```xml", "```tool_call", "```")
_CALL_STARTS = tuple(f + b for f in _FENCES for b in _CALL_BODIES)
_MAX_UNDECIDED = 48

StartKind = Literal["call", "text", "undecided"]


def classify_start(text: str) -> StartKind:
    """Whether the start of a reply is a tool call, plain text, or too short to tell."""
    compact = re.sub(r"\s+", "", text)
    if not compact:
        return "undecided" if len(text) < _MAX_UNDECIDED else "text"
    if any(compact.startswith(s) for s in _CALL_STARTS):
        return "call"
    if len(compact) < _MAX_UNDECIDED and any(s.startswith(compact) for s in _CALL_STARTS):
        return "undecided"
    return "text"


class MarkerSplitter:
    """Streams text, holding back anything that may be the start of ``<tool_call>``.

    ``feed`` returns the text safe to show; once the marker shows up, the rest of the
    reply (marker included) collects in ``captured`` instead.
    """

    MARKER = "<tool_call>"

    def __init__(self) -> None:
        self.pending = ""
        self.captured: str | None = None

    def feed(self, text: str) -> str:
        if self.captured is not None:
            self.captured += text
            return ""
        self.pending += text
        at = self.pending.find(self.MARKER)
        if at >= 0:
            shown, self.captured = self.pending[:at], self.pending[at:]
            self.pending = ""
            return shown
        keep = 0
        for n in range(min(len(self.MARKER) - 1, len(self.pending)), 0, -1):
            if self.MARKER.startswith(self.pending[-n:]):
                keep = n
                break
        shown = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(shown) :]
        return shown

    def flush(self) -> str:
        shown, self.pending = self.pending, ""
        return shown


class AnswerStream:
    """The text stream of one answer attempt, shown through ``show``.

    With ``screen``, the start is held back until it is clearly not a tool call; a start
    that is one makes ``feed`` return False to stop the attempt (``give_up``) or is let
    through. With ``split``, a ``<tool_call>`` after some text is captured, not shown.
    """

    def __init__(
        self, show: Callable[[str], None], *, screen: bool, split: bool, give_up: bool
    ) -> None:
        self.show, self.split, self.give_up = show, split, give_up
        self.head: str | None = "" if screen else None
        self.splitter = MarkerSplitter()
        self.turned_to_call = False

    def feed(self, text: str) -> bool:
        if self.head is not None:
            self.head += text
            kind = classify_start(self.head)
            if kind == "undecided":
                return True
            if kind == "call" and self.give_up:
                self.turned_to_call = True
                return False
            text, self.head = self.head, None
        self._show(self.splitter.feed(text) if self.split else text)
        return True

    def close(self) -> None:
        if self.head:  # undecided up to the end: it was text after all
            self._show(self.splitter.feed(self.head) if self.split else self.head)
        self._show(self.splitter.flush())

    def _show(self, text: str) -> None:
        if text:
            self.show(text)
