"""The ``file_search`` built-in: searches the run's vector stores (those of its
thread and of its assistant) and shows the model numbered results it cites with
OpenAI's markers, ``【{call}:{result}†{filename}】``, which become the stored
message's ``file_citation`` annotations."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import now
from threadline.engine.tools import BuiltinCall, BuiltinTool, ToolOutcome, ToolScope
from threadline.models.base import FunctionTool
from threadline.retrieval.pipeline import Hit, Pipeline
from threadline.storage import objects
from threadline.storage import vector_stores as stores
from threadline.storage.db import Database

DEFAULT_MAX_RESULTS = 20  # OpenAI's default for gpt-4* models
RANKER = "default_2024_08_21"  # what ``auto`` ranks with, as steps report it
# OpenAI's marker; small models often write it with ASCII brackets, taken too.
MARKER = re.compile(r"[【\[](\d+):(\d+)†([^】\]\n]*)[】\]]")

DESCRIPTION = (
    "Search the files the user uploaded for passages relevant to a query. Use it when "
    "the answer may be in those files. Cite each result you use with its marker, "
    "for example 【0:1†notes.md】."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to look for."}},
    "required": ["query"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Stores:
    """The vector stores a run searches, read with its turn."""

    ids: tuple[str, ...]


class FileSearch(BuiltinTool):
    type = "file_search"

    def __init__(self, db: Database, pipeline: Pipeline) -> None:
        self.db = db
        self.pipeline = pipeline

    async def load(self, conn: AsyncConnection, project_id: str, run: dict[str, Any]) -> Stores:
        """The thread's stores, then the assistant's; only the project's own, and
        not expired."""
        wanted: list[str] = []
        for repo, object_id in (
            (objects.threads, run["thread_id"]),
            (objects.assistants, run["assistant_id"]),
        ):
            owner = await repo.find(conn, project_id, object_id)
            resources = (owner or {}).get("tool_resources") or {}
            wanted.extend((resources.get("file_search") or {}).get("vector_store_ids") or [])
        moment = now()
        found: list[str] = []
        for store_id in dict.fromkeys(wanted):
            data = await stores.stores.find(conn, project_id, store_id)
            if data is None:
                continue
            if data.get("expires_at") is not None and data["expires_at"] <= moment:
                continue
            found.append(store_id)
        return Stores(tuple(found))

    def offer(self, scope: ToolScope) -> FunctionTool | None:
        if not _stores(scope).ids:
            return None
        return FunctionTool("file_search", DESCRIPTION, PARAMETERS)

    async def execute(self, scope: ToolScope, call: BuiltinCall) -> ToolOutcome:
        options = _options(scope.run)
        ranking = {
            "ranker": RANKER if options.ranker == "auto" else options.ranker,
            "score_threshold": options.score_threshold,
        }
        query = _query(call.arguments)
        results: list[dict[str, Any]] = []
        if query:
            ids = list(_stores(scope).ids)
            async with self.db.write() as conn:
                await stores.touch_stores(conn, scope.project_id, ids, now())
            hits = await self.pipeline.search(
                ids,
                query,
                max_results=options.max_results,
                filters=None,
                score_threshold=options.score_threshold,
                ranker=options.ranker,
            )
            results = _fitted(hits, scope.output_chars)
        found = {
            "type": "file_search",
            "file_search": {"ranking_options": ranking, "results": results},
        }
        return ToolOutcome(render(call.index, results, query=query), {"id": call.id, **found})

    def replay(self, call: dict[str, Any], index: int) -> tuple[str, str]:
        results = call["file_search"].get("results") or []
        return "{}", render(index, results, query=None)

    def annotate(self, text: str, calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        notes: list[dict[str, Any]] = []
        for match in MARKER.finditer(text):
            call_no, result_no = int(match.group(1)), int(match.group(2))
            if call_no >= len(calls):
                continue
            results = calls[call_no]["file_search"].get("results") or []
            if result_no >= len(results):
                continue
            notes.append(
                {
                    "type": "file_citation",
                    "text": match.group(0),
                    "start_index": match.start(),
                    "end_index": match.end(),
                    "file_citation": {"file_id": results[result_no]["file_id"]},
                }
            )
        return notes


def render(index: int, results: Sequence[dict[str, Any]], *, query: str | None) -> str:
    """What the model reads for a search: each result under its marker."""
    if query == "":
        return "The file_search call needs a non-empty 'query' string."
    if not results:
        return "File search found nothing relevant."
    lines = ["File search results. Cite a result you use with its marker."]
    for number, result in enumerate(results):
        text = "".join(part["text"] for part in result.get("content") or [])
        lines.append(f"\n【{index}:{number}†{result['file_name']}】\n{text}")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Options:
    max_results: int
    ranker: str
    score_threshold: float


def _options(run: dict[str, Any]) -> _Options:
    declared: dict[str, Any] = next(
        (t for t in run.get("tools") or [] if t.get("type") == "file_search"), {}
    )
    settings = declared.get("file_search") or {}
    ranking = settings.get("ranking_options") or {}
    return _Options(
        int(settings.get("max_num_results") or DEFAULT_MAX_RESULTS),
        str(ranking.get("ranker") or "auto"),
        float(ranking.get("score_threshold") or 0.0),
    )


def _stores(scope: ToolScope) -> Stores:
    return scope.loaded if isinstance(scope.loaded, Stores) else Stores(())


def _query(arguments: str) -> str:
    """The call's query ('' when the model gave none the tool can use)."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return arguments.strip()  # a model that wrote the query bare
    if isinstance(parsed, str):
        return parsed.strip()
    if isinstance(parsed, dict) and isinstance(parsed.get("query"), str):
        return str(parsed["query"]).strip()
    return ""


def _fitted(hits: Sequence[Hit], budget: int) -> list[dict[str, Any]]:
    """The hits as step results, best first, as many as ``budget`` characters of
    text hold (the first always, cut to the budget)."""
    results: list[dict[str, Any]] = []
    used = 0
    for hit in hits:
        text = hit.text
        if results and used + len(text) > budget:
            break
        text = text[: max(budget - used, 0)] if not results else text
        used += len(text)
        results.append(
            {
                "file_id": hit.file_id,
                "file_name": hit.filename,
                "score": min(1.0, max(0.0, float(hit.score))),
                "content": [{"type": "text", "text": text}],
            }
        )
    return results
