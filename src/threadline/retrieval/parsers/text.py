"""Bytes to text: byte-order marks, UTF-8, then charset detection; binary is refused.

Order of attempts: a BOM names the encoding outright (UTF-8, UTF-16/32 LE/BE); then
strict UTF-8 (nearly every text file today); then ``charset-normalizer`` guesses
legacy encodings (cp1252, latin-1, Shift-JIS...). Data with NUL bytes and no UTF-16/32
BOM, or that the detector cannot place, is binary and raises ``InvalidFile``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json

from charset_normalizer import from_bytes

from threadline.retrieval.errors import InvalidFile

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Control characters other than tab, newline, form feed and carriage return: a few in
# a long text are noise, many mean the bytes were never text.
_CONTROL = frozenset(range(32)) - {9, 10, 12, 13}
_MAX_CONTROL_FRACTION = 0.01


def decode_text(data: bytes, filename: str) -> str:
    """The text ``data`` holds; ``InvalidFile`` when it is empty or not text."""
    if not data:
        raise InvalidFile(f"{filename} is empty")
    text = _decode(data, filename)
    controls = sum(1 for char in text if ord(char) in _CONTROL)
    if controls > max(1, len(text) * _MAX_CONTROL_FRACTION):
        raise InvalidFile(f"{filename} is not a text file (it holds binary data)")
    return _require_text(text.replace("\r\n", "\n").replace("\r", "\n"), filename)


def _decode(data: bytes, filename: str) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise InvalidFile(f"{filename} is not valid {encoding}: {exc.reason}") from exc
    if b"\x00" in data:
        raise InvalidFile(f"{filename} is not a text file (it holds binary data)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None:
        raise InvalidFile(f"{filename} is not a text file (no text encoding fits it)")
    return str(best)


def _require_text(text: str, filename: str) -> str:
    if not text.strip():
        raise InvalidFile(f"{filename} holds no text")
    return text


def parse_plain(data: bytes, filename: str) -> str:
    """Plain text, Markdown, source code: the decoded text as it is."""
    return decode_text(data, filename)


def parse_json(data: bytes, filename: str) -> str:
    """JSON: checked to be well-formed, kept as written (its layout helps the reader)."""
    text = decode_text(data, filename)
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidFile(f"{filename} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError as exc:
        raise InvalidFile(f"{filename} nests JSON too deeply to read") from exc
    return text


def parse_jsonl(data: bytes, filename: str) -> str:
    """JSON Lines: each non-blank line must be a JSON document."""
    text = decode_text(data, filename)
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidFile(f"{filename} line {number} is not valid JSON: {exc.msg}") from exc
        except RecursionError as exc:
            raise InvalidFile(f"{filename} line {number} nests JSON too deeply") from exc
    return text


def parse_csv(data: bytes, filename: str) -> str:
    """CSV/TSV: each row as one line of ``header: value`` pairs.

    A bare row of values loses its meaning once a chunk boundary separates it from the
    header line; naming each value keeps every chunk self-explaining and searchable by
    column name.
    """
    text = decode_text(data, filename)
    delimiter = "\t" if filename.lower().endswith(".tsv") else ","
    try:
        rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
    except csv.Error as exc:
        raise InvalidFile(f"{filename} is not valid CSV: {exc}") from exc
    if len(rows) < 2:
        return text
    header = [name.strip() for name in rows[0]]
    lines = []
    for row in rows[1:]:
        pairs = []
        for position, value in enumerate(row):
            name = header[position] if position < len(header) and header[position] else None
            pairs.append(f"{name}: {value.strip()}" if name else value.strip())
        lines.append("; ".join(pairs))
    return "\n".join(lines)
