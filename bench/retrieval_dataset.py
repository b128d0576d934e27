"""The labelled retrieval set in ``bench/retrieval_data/``: documents, queries, relevance.

- ``documents/``: 44 files written as they would be uploaded (md, txt, html, json, csv);
- ``sources/NAME.pdf.txt`` / ``NAME.docx.txt``: the text of 6 more documents, turned
  into real PDF (fpdf2) and Word (python-docx) files by ``materialise`` so that no
  binary is committed;
- ``queries.jsonl``: 204 queries, each ``{"id", "query", "type", "relevant"}`` where
  ``type`` is ``keyword`` (ids, names, rare terms: lexical search should win) or
  ``paraphrase`` (a question in other words: dense search should win), and
  ``relevant`` lists ``[filename, passage]`` pairs: a chunk of that file is relevant
  when it contains the passage (whitespace-insensitively), whatever the chunking.

``python bench/retrieval_dataset.py`` checks that every passage is found in its parsed
document and prints the set's make-up.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import docx
from fpdf import FPDF

from threadline.retrieval.parsers import parse

DATA = Path(__file__).resolve().parent / "retrieval_data"
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    type: str
    relevant: tuple[tuple[str, str], ...]

    def passage_ids(self) -> list[str]:
        return [f"{self.id}:{n}" for n in range(len(self.relevant))]


def squash(text: str) -> str:
    """Whitespace folded to single spaces (PDF text layers break lines anywhere)."""
    return _SPACE.sub(" ", text).strip()


def _pdf(text: str) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    for paragraph in text.split("\n\n"):
        pdf.multi_cell(0, 6, paragraph.strip())
        pdf.ln(4)
    return bytes(pdf.output())


def _docx(text: str) -> bytes:
    document = docx.Document()
    for line in text.splitlines():
        if line.strip():
            document.add_paragraph(line.strip())
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def materialise() -> dict[str, bytes]:
    """Every document's bytes by filename, the PDF and Word ones generated now."""
    files = {path.name: path.read_bytes() for path in sorted((DATA / "documents").iterdir())}
    for source in sorted((DATA / "sources").glob("*.txt")):
        name = source.name.removesuffix(".txt")
        text = source.read_text(encoding="utf-8")
        files[name] = _pdf(text) if name.endswith(".pdf") else _docx(text)
    return files


def load_queries() -> list[Query]:
    queries = []
    for line in (DATA / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        relevant = tuple((str(name), str(passage)) for name, passage in row["relevant"])
        queries.append(Query(row["id"], row["query"], row["type"], relevant))
    return queries


def check(files: dict[str, bytes], queries: list[Query]) -> dict[str, str]:
    """Parsed text by filename, after checking every query's passages are in it."""
    texts = {name: parse(data, name).text for name, data in files.items()}
    folded = {name: squash(text) for name, text in texts.items()}
    missing = [
        f"{query.id}: {passage!r} not in {name}"
        for query in queries
        for name, passage in query.relevant
        if squash(passage) not in folded.get(name, "")
    ]
    if missing:
        raise SystemExit("relevance passages not found:\n" + "\n".join(missing))
    return texts


def main() -> None:
    files = materialise()
    queries = load_queries()
    check(files, queries)
    kinds = Counter(name.rsplit(".", 1)[1] for name in files)
    print(f"{len(files)} documents: {dict(sorted(kinds.items()))}")
    print(f"{len(queries)} queries: {dict(Counter(q.type for q in queries))}")
    print(f"{sum(len(q.relevant) for q in queries)} relevant passages; all found")


if __name__ == "__main__":
    sys.exit(main())
