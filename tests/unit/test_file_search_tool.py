"""The file_search built-in's pure parts: what the model reads, how markers
become annotations, how results are fitted to the room the model has."""

from __future__ import annotations

from typing import Any

from threadline.engine.tools.file_search import FileSearch, _fitted, _query, render
from threadline.retrieval.pipeline import Hit


def _call(*names: str) -> dict[str, Any]:
    results = [
        {"file_id": f"file-{n}", "file_name": n, "score": 0.5,
         "content": [{"type": "text", "text": f"text of {n}"}]}
        for n in names
    ]  # fmt: skip
    return {"id": "call_1", "type": "file_search", "file_search": {"results": results}}


def test_results_are_numbered_with_their_markers() -> None:
    call = _call("a.md", "b.md")
    shown = render(3, call["file_search"]["results"], query="q")
    assert "【3:0†a.md】\ntext of a.md" in shown
    assert "【3:1†b.md】\ntext of b.md" in shown
    assert render(0, [], query="q") == "File search found nothing relevant."
    assert "non-empty 'query'" in render(0, [], query="")


def test_replay_tells_the_model_what_it_read() -> None:
    tool = FileSearch.__new__(FileSearch)  # replay needs neither database nor pipeline
    call = _call("a.md")
    assert tool.replay(call, 2) == ("{}", render(2, call["file_search"]["results"], query=None))


def test_markers_become_file_citations() -> None:
    tool = FileSearch.__new__(FileSearch)
    text = "See 【0:1†b.md】 and [1:0†c.md], not 【5:0†x.md】 or 【0:9†a.md】."
    notes = tool.annotate(text, [_call("a.md", "b.md"), _call("c.md")])
    assert [(n["text"], n["file_citation"]["file_id"]) for n in notes] == [
        ("【0:1†b.md】", "file-b.md"),
        ("[1:0†c.md]", "file-c.md"),
    ]
    first = notes[0]
    assert text[first["start_index"] : first["end_index"]] == "【0:1†b.md】"
    assert first["type"] == "file_citation"


def test_results_fit_the_room_the_model_has() -> None:
    hits = [Hit(f"f{i}", f"{i}.md", "x" * 400, 1 - i / 10, {}) for i in range(5)]
    assert len(_fitted(hits, 1000)) == 2
    [only] = _fitted(hits, 100)  # the best one, cut to the room
    assert only["content"] == [{"type": "text", "text": "x" * 100}]
    assert only["score"] == 1.0


def test_queries_as_models_write_them() -> None:
    assert _query('{"query": " tides "}') == "tides"
    assert _query('"tides"') == "tides"
    assert _query("tides at noon") == "tides at noon"
    assert _query('{"q": 1}') == ""
