"""HTML to text with the standard library's ``html.parser``.

Chosen over BeautifulSoup or selectolax because extraction needs no tree: one pass
that drops ``<script>``/``<style>``/``<template>`` bodies, turns block elements into
line breaks and unescapes entities. The stdlib parser is kept with Python, tolerant of
broken markup (it never raises on tag soup), and adds no dependency.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from threadline.retrieval.errors import InvalidFile
from threadline.retrieval.parsers.text import decode_text

_SKIPPED = frozenset({"script", "style", "template", "noscript", "svg", "head"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "tbody", "td", "tfoot", "th", "thead", "title", "tr", "ul",
    }
)  # fmt: skip
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.title: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED:
            self.skip_depth += 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIPPED and self.skip_depth:
            self.skip_depth -= 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data
        elif not self.skip_depth:
            self.parts.append(data)


def parse_html(data: bytes, filename: str) -> str:
    """The visible text of an HTML page, its ``<title>`` first."""
    extractor = _TextExtractor()
    extractor.feed(decode_text(data, filename))
    extractor.close()
    body = "".join(extractor.parts)
    lines = (_SPACES.sub(" ", line).strip() for line in body.split("\n"))
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    title = _SPACES.sub(" ", extractor.title or "").strip()
    if title and not text.startswith(title):
        text = f"{title}\n\n{text}" if text else title
    if not text:
        raise InvalidFile(f"{filename} has no visible text")
    return text
