"""``tests/support/spec_schemas.json``: the spec's schemas kept in the repository.

It names the spec it was derived from, holds every schema its roots reach, and the
generator (``scripts/derive_spec_schemas.py``) rebuilds it the same way. Nothing the
tests run reaches outside the repository for the spec."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from scripts.derive_spec_schemas import ROOTS, SpecError, derive, main, refs, render, served
from tests.support.spec_schema import SCHEMAS_PATH, assert_schema, derived, schema_errors
from threadline.schemas import openai_responses

REPO = Path(__file__).resolve().parents[2]

SMALL_SPEC = """\
openapi: 3.1.0
info: {title: small, version: 9.9.9}
components:
  schemas:
    Thing:
      type: object
      required: [id, part]
      properties:
        id: {type: string}
        part: {$ref: '#/components/schemas/Part'}
        note: {type: string, nullable: true}
        made_on: {type: string, example: 2024-01-02}
    Part:
      type: object
      properties:
        size: {type: integer}
    Unrelated:
      type: string
"""


def all_keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for value in node.values() for k in all_keys(value)}
    if isinstance(node, list):
        return {k for item in node for k in all_keys(item)}
    return set()


def test_the_file_names_the_spec_it_came_from() -> None:
    source = derived()["source"]
    assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"]), source
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), source
    assert source["info_version"] == "2.3.0"
    assert source["openapi"].startswith("3.")
    assert derived()["derived_by"] == "scripts/derive_spec_schemas.py"


def test_the_file_is_closed_over_refs_and_has_no_openapi_30_nullable() -> None:
    schemas = derived()["schemas"]
    assert sorted(derived()["roots"]) == sorted(ROOTS)
    assert set(ROOTS) <= set(schemas)
    missing = {name for schema in schemas.values() for name in refs(schema)} - set(schemas)
    assert not missing, f"refs to schemas the file lacks: {sorted(missing)}"
    assert "nullable" not in all_keys(schemas)


def test_the_file_is_in_the_form_the_generator_writes() -> None:
    """Sorted keys, one-space indent, a final newline: a re-derived file diffs cleanly."""
    text = SCHEMAS_PATH.read_text()
    assert text == render(json.loads(text))


def test_a_name_outside_the_file_says_how_to_add_it() -> None:
    with pytest.raises(KeyError, match="ROOTS"):
        schema_errors({}, "CreateEmbeddingResponse")


def test_upcoming_objects_are_checkable() -> None:
    """Vector stores, file search and code interpreter steps, cited and image content."""
    citation = {
        "type": "file_citation",
        "text": "【4:0†source】",
        "file_citation": {"file_id": "file_1"},
        "start_index": 3,
        "end_index": 15,
    }
    path = {
        "type": "file_path",
        "text": "sandbox:/mnt/data/a.csv",
        "file_path": {"file_id": "file_2"},
        "start_index": 0,
        "end_index": 23,
    }
    image = {"type": "image_file", "image_file": {"file_id": "file_3", "detail": "auto"}}
    text = {
        "type": "text",
        "text": {"value": "see 【4:0†source】", "annotations": [citation, path]},
    }
    message = {
        "id": "msg_1",
        "object": "thread.message",
        "created_at": 1_700_000_000,
        "thread_id": "thread_1",
        "status": "completed",
        "incomplete_details": None,
        "completed_at": 1_700_000_001,
        "incomplete_at": None,
        "role": "assistant",
        "content": [text, image],
        "assistant_id": "asst_1",
        "run_id": "run_1",
        "attachments": None,
        "metadata": {},
    }
    assert_schema(message, "MessageObject")
    bad = copy.deepcopy(message)
    bad["content"][0]["text"]["annotations"][0]["start_index"] = -1
    assert schema_errors(bad, "MessageObject")

    search = {
        "id": "call_1",
        "type": "file_search",
        "file_search": {
            "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0},
            "results": [{"file_id": "file_1", "file_name": "a.txt", "score": 0.5}],
        },
    }
    code = {
        "id": "call_2",
        "type": "code_interpreter",
        "code_interpreter": {
            "input": "print(1)",
            "outputs": [
                {"type": "logs", "logs": "1\n"},
                {"type": "image", "image": {"file_id": "file_4"}},
            ],
        },
    }
    assert_schema(search, "RunStepDetailsToolCallsFileSearchObject")
    assert_schema(code, "RunStepDetailsToolCallsCodeObject")
    bad_search = copy.deepcopy(search)
    bad_search["file_search"]["results"][0]["score"] = 2
    assert schema_errors(bad_search, "RunStepDetailsToolCallsFileSearchObject")

    store = {
        "id": "vs_1",
        "object": "vector_store",
        "created_at": 1_700_000_000,
        "name": "docs",
        "usage_bytes": 0,
        "file_counts": {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0},
        "status": "completed",
        "expires_at": None,
        "last_active_at": None,
        "metadata": {},
    }
    assert_schema(store, "VectorStoreObject")
    assert schema_errors({**store, "status": "ready"}, "VectorStoreObject")
    for name in ("VectorStoreFileObject", "VectorStoreFileBatchObject"):
        assert schema_errors({}, name), name  # their required keys are known
    page = {"object": "vector_store.search_results.page", "search_query": ["q"], "data": []}
    assert_schema({**page, "has_more": False, "next_page": None}, "VectorStoreSearchResultsPage")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """``SMALL_SPEC`` in a file, under the name the generator records."""
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SPEC)
    return path


def test_the_generator_keeps_the_closure_and_records_the_source(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "schemas.json"
    monkeypatch.setattr("scripts.derive_spec_schemas.ROOTS", ("Thing",))
    assert main([str(spec), "--commit", "a" * 40, "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written == derive(
        SMALL_SPEC.encode(), name="small.yaml", commit="a" * 40, roots=["Thing"]
    )
    assert written["source"]["file"] == "small.yaml"
    assert written["source"]["info_version"] == "9.9.9"
    assert written["source"]["commit"] == "a" * 40
    assert len(written["source"]["sha256"]) == 64
    assert written["roots"] == ["Thing"]
    assert set(written["schemas"]) == {"Thing", "Part"}  # not the unreferenced one
    thing = written["schemas"]["Thing"]
    assert thing["properties"]["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert thing["properties"]["made_on"]["example"] == "2024-01-02"  # a YAML date, as text


def test_the_generator_refuses_a_spec_without_the_roots(spec: Path, tmp_path: Path) -> None:
    # The real ROOTS are missing from the small spec: a clear refusal, no file.
    assert main([str(spec), "--out", str(tmp_path / "none.json")]) == 2
    assert not (tmp_path / "none.json").exists()
    with pytest.raises(SpecError, match=r"the spec has no schema '\w+'"):
        derive(SMALL_SPEC.encode(), name="small.yaml")
    with pytest.raises(SpecError, match="not an OpenAPI document"):
        derive(b"just: text", name="x.yaml", roots=["Thing"])


def test_the_generator_check_mode_compares_without_writing(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "schemas.json"
    monkeypatch.setattr("scripts.derive_spec_schemas.ROOTS", ("Thing",))
    assert main([str(spec), "--out", str(out), "--check"]) == 1
    assert not out.exists()
    assert main([str(spec), "--out", str(out)]) == 0
    assert main([str(spec), "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace('"integer"', '"number"'))
    assert main([str(spec), "--out", str(out), "--check"]) == 1


SMALL_PATHS = """\
paths:
  /vector_stores/{id}:
    get:
      operationId: getThing
      responses:
        "200":
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Thing'}
  /chat/completions:
    post:
      operationId: createChatCompletion
      responses:
        "200":
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Unrelated'}
"""


def test_the_servers_copy_comes_from_the_same_spec() -> None:
    assert openai_responses.source() == derived()["source"]
    assert len(openai_responses.operations()) == 48
    answer = openai_responses.operations()["getRun"]["application/json"]
    assert answer == {"schema": {"$ref": "#/components/schemas/RunObject"}}
    assert "nullable" not in all_keys(openai_responses.schemas())


def test_the_generator_derives_what_the_server_declares(tmp_path: Path) -> None:
    spec = tmp_path / "small.yaml"
    small = (SMALL_SPEC + "    ErrorResponse:\n      type: object\n").replace(
        "components:", SMALL_PATHS + "components:", 1
    )
    spec.write_text(small)
    out = tmp_path / "served.json"
    assert main([str(spec), "--served", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert list(written["operations"]) == ["getThing"]  # chat completions are not served
    assert set(written["schemas"]) == {"Thing", "Part", "ErrorResponse"}
    assert written == served(small.encode(), name="small.yaml")
    assert main([str(spec), "--served", "--out", str(out), "--check"]) == 0


def test_nothing_the_tests_run_reads_beside_the_repository() -> None:
    outside = re.compile(r"\.\./" + "shared|" + "shared/" + "spec")
    found = [
        str(path.relative_to(REPO))
        for folder in ("src", "tests", "scripts", "bench", ".ci")
        for path in sorted((REPO / folder).rglob("*"))
        if path.suffix in {".py", ".sh", ".mjs", ".json", ".toml", ""}
        and path.is_file()
        and "node_modules" not in path.parts
        and outside.search(path.read_text(errors="replace"))
    ]
    assert not found, f"these read the spec outside the repository: {found}"
