"""PDF (``pypdf``) and Word ``.docx`` (``python-docx``) to text.

Both libraries raise a variety of exceptions on damaged input (their own, ``zipfile``'s,
``lxml``'s, ``struct``'s, ``KeyError`` from a missing part...); each is turned into
``InvalidFile`` here so a corrupt upload fails the one file, never the worker.
"""

from __future__ import annotations

import io
import zipfile

from docx import Document
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml.etree import LxmlError
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from threadline.retrieval.errors import InvalidFile

# Parsing a hostile file can raise nearly anything from deep inside a library; all of
# it means "this file cannot be read". MemoryError and the like are not Exceptions of
# this kind and still propagate.
_PARSE_FAILURES = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
    RecursionError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    LookupError,
    ArithmeticError,
)


def parse_pdf(data: bytes, filename: str) -> tuple[str, int]:
    """The text layer of every page, pages separated by a blank line; and the page count."""
    if not data:
        raise InvalidFile(f"{filename} is empty")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidFile(f"{filename} is encrypted with a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except InvalidFile:
        raise
    except (PyPdfError, *_PARSE_FAILURES) as exc:
        raise InvalidFile(f"{filename} is not a readable PDF: {exc}") from exc
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise InvalidFile(f"{filename} has no text layer (a scanned PDF needs OCR first)")
    return text, len(pages)


def parse_docx(data: bytes, filename: str) -> str:
    """Paragraphs and table rows of a Word document, in document order."""
    if not data:
        raise InvalidFile(f"{filename} is empty")
    try:
        document = Document(io.BytesIO(data))
        blocks: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                blocks.append(block.text)
            elif isinstance(block, Table):
                blocks.extend(
                    " | ".join(cell.text.strip() for cell in row.cells) for row in block.rows
                )
    except (PackageNotFoundError, LxmlError, *_PARSE_FAILURES) as exc:
        raise InvalidFile(f"{filename} is not a readable .docx: {exc}") from exc
    text = "\n".join(block.rstrip() for block in blocks).strip()
    if not text:
        raise InvalidFile(f"{filename} holds no text")
    return text
