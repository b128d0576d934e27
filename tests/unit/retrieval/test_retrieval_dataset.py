"""The benchmark's labelled set stays usable: every relevant passage is in its document."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import threadline

ROOT = Path(__file__).resolve().parents[3]


def test_labelled_set_is_complete_and_consistent() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(threadline.__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "retrieval_dataset.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    documents, queries, passages = result.stdout.splitlines()
    assert documents.startswith("50 documents")
    for extension in ("csv", "docx", "html", "json", "md", "pdf", "txt"):
        assert f"'{extension}'" in documents
    assert int(queries.split()[0]) >= 200
    assert "keyword" in queries
    assert "paraphrase" in queries
    assert passages.endswith("all found")
