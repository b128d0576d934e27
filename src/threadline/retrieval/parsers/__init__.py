"""File bytes to text: ``parse(data, filename, mime)`` picks a parser by extension.

The extension decides (it is what the uploader named the file); the MIME type is a
fallback for names without a known extension. Supported:

- plain text, Markdown, reStructuredText, LaTeX, logs, source code and config files
  (see ``TEXT_EXTENSIONS``): the decoded text as it is;
- ``.json`` (validated), ``.jsonl``; ``.csv``/``.tsv`` (rows as ``header: value`` pairs);
- ``.html``/``.htm`` (visible text); ``.pdf`` (text layer); ``.docx``.

Anything else raises ``UnsupportedFile``; a supported file that cannot be read (corrupt,
binary under a text name, empty, no text) raises ``InvalidFile``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from threadline.retrieval.errors import UnsupportedFile
from threadline.retrieval.parsers.documents import parse_docx, parse_pdf
from threadline.retrieval.parsers.html import parse_html
from threadline.retrieval.parsers.text import parse_csv, parse_json, parse_jsonl, parse_plain

__all__ = ["SUPPORTED_EXTENSIONS", "TEXT_EXTENSIONS", "ParsedText", "parse"]


@dataclass(frozen=True)
class ParsedText:
    text: str
    pages: int | None = None
    """Page count for paged formats (PDF), else ``None``."""


TEXT_EXTENSIONS = frozenset(
    {
        # prose
        "txt", "text", "md", "markdown", "rst", "tex", "log", "org", "adoc",
        # source code
        "py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "tsx", "java", "kt", "kts", "scala",
        "go", "rs", "c", "h", "cpp", "cc", "cxx", "hpp", "hh", "cs", "fs", "rb", "php",
        "sh", "bash", "zsh", "ps1", "swift", "m", "mm", "lua", "pl", "pm", "r", "jl",
        "dart", "ex", "exs", "erl", "hs", "ml", "clj", "sql", "css", "scss", "less",
        "vue", "svelte", "proto", "graphql",
        # configuration and data written as text
        "yaml", "yml", "toml", "ini", "cfg", "conf", "env", "xml", "properties",
    }
)  # fmt: skip

_Parser = Callable[[bytes, str], ParsedText]


def _text(parser: Callable[[bytes, str], str]) -> _Parser:
    return lambda data, filename: ParsedText(parser(data, filename))


def _pdf(data: bytes, filename: str) -> ParsedText:
    text, pages = parse_pdf(data, filename)
    return ParsedText(text, pages)


_BY_EXTENSION: dict[str, _Parser] = {
    **{ext: _text(parse_plain) for ext in TEXT_EXTENSIONS},
    "json": _text(parse_json),
    "jsonl": _text(parse_jsonl),
    "csv": _text(parse_csv),
    "tsv": _text(parse_csv),
    "html": _text(parse_html),
    "htm": _text(parse_html),
    "xhtml": _text(parse_html),
    "pdf": _pdf,
    "docx": _text(parse_docx),
}

_BY_MIME: dict[str, str] = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/json": "json",
    "text/html": "html",
    "text/csv": "csv",
    "text/markdown": "md",
}

SUPPORTED_EXTENSIONS = frozenset(_BY_EXTENSION)


def parse(data: bytes, filename: str, mime: str | None = None) -> ParsedText:
    """The text of the file ``filename`` holding ``data``.

    Raises ``UnsupportedFile`` for a type no parser handles and ``InvalidFile`` for a
    file of a supported type that cannot be read.
    """
    parser = _BY_EXTENSION.get(_extension(filename))
    if parser is None and mime:
        base = mime.split(";", 1)[0].strip().lower()
        known = _BY_MIME.get(base) or ("txt" if base.startswith("text/") else None)
        parser = _BY_EXTENSION.get(known) if known else None
    if parser is None:
        raise UnsupportedFile(
            f"{filename or 'the file'} is not a supported type for retrieval "
            f"(supported extensions: {', '.join(sorted(SUPPORTED_EXTENSIONS))})"
        )
    return parser(data, filename)


def _extension(filename: str) -> str:
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix
    return suffix[1:].lower()
