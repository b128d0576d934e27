"""Tool-use evaluation of the embedded ``local`` model: does it generalise?

    python bench/tool_use_eval/run.py                       # development part
    python bench/tool_use_eval/run.py --sets travel shop -v # some tool sets, every case shown
    python bench/tool_use_eval/run.py --slice 0/4           # every 4th case, from the first
    python bench/tool_use_eval/run.py --part heldout        # the held-out part: scores only

The cases live in ``cases/dev.yaml`` and ``cases/heldout.yaml``, the tool sets in
``toolsets.yaml`` (the format is in README.md beside this file). Every case is one model
call through the backend, as a run makes it: the tool set's system message, its tools
with ``tool_choice: "auto"`` and parallel calls allowed, and the model's default
sampling. Calls are checked against each tool's JSON schema with ``jsonschema``, and
their arguments against the values the request names. The held-out part prints its
scores only, never a case: it is there to be scored, not tuned on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import unicodedata
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from threadline.engine.tools import code_interpreter, file_search
from threadline.models.base import (
    ChatMessage,
    Finish,
    FunctionTool,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from threadline.models.local import LocalBackend, call, prompt
from threadline.models.local.facts import Facts
from threadline.models.local.need import NeedGate
from threadline.models.local.route import ToolRouter
from threadline.models.local.sentences import SentenceCache
from threadline.retrieval.embedders.local import LocalEmbedder
from threadline.settings import Settings

HERE = Path(__file__).parent
BUILTINS = {
    "file_search": FunctionTool("file_search", file_search.DESCRIPTION, file_search.PARAMETERS),
    "code_interpreter": FunctionTool(
        "code_interpreter", code_interpreter.DESCRIPTION, code_interpreter.PARAMETERS
    ),
}
CALL_KINDS = ("implicit", "explicit", "parallel", "search_needed", "code_needed")
TEXT_KINDS = ("no_tool", "search_not_needed", "code_not_needed")
KINDS = (*CALL_KINDS, *TEXT_KINDS, "answer")
MAX_TOKENS = {"answer": 100, "no_tool": 40, "search_not_needed": 40, "code_not_needed": 40}
"""Token budgets: enough for an answer to state its facts and for a text reply to show
it is not a call, so that a rambling answer does not cost minutes on two shared cores."""


@dataclass
class ToolSet:
    system: str
    tools: list[FunctionTool]

    def tool(self, name: str) -> FunctionTool | None:
        return next((t for t in self.tools if t.name == name), None)


@dataclass
class Case:
    toolset: str
    kind: str
    ask: str
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return f"[{self.toolset}/{self.kind}] {self.ask}"


@dataclass
class Outcome:
    text: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)
    finish: str = ""
    seconds: float = 0.0


def load_toolsets() -> dict[str, ToolSet]:
    raw = yaml.safe_load((HERE / "toolsets.yaml").read_text())
    sets = {}
    for name, spec in raw.items():
        tools = []
        for tool in spec["tools"]:
            if "builtin" in tool:
                tools.append(BUILTINS[tool["builtin"]])
            else:
                jsonschema.Draft202012Validator.check_schema(tool["parameters"])
                tools.append(FunctionTool(tool["name"], tool["description"], tool["parameters"]))
        sets[name] = ToolSet(spec["system"], tools)
    return sets


def load_cases(part: str, toolsets: dict[str, ToolSet]) -> list[Case]:
    raw = yaml.safe_load((HERE / "cases" / f"{part}.yaml").read_text())
    cases = []
    for toolset, items in raw.items():
        if toolset not in toolsets:
            raise SystemExit(f"{part}: unknown tool set {toolset!r}")
        for item in items:
            kind = item["k"]
            if kind not in KINDS:
                raise SystemExit(f"{part}: unknown kind {kind!r} in {item}")
            cases.append(Case(toolset, kind, item["ask"], item))
    return cases


# -- checks -------------------------------------------------------------------------


def norm(value: Any) -> str:
    """Lower case, accents and thousands separators dropped: what "contains" compares."""
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode()
    return " ".join(text.lower().replace(",", "").split())


def matches(expected: Any, actual: Any) -> bool:
    """Whether an argument value carries what the request named: a string is contained
    (case and accents aside), a number is equal, a dict matches key by key, and a list
    offers alternatives."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return any(matches(option, actual) for option in expected)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float):
        try:
            return abs(float(actual) - float(expected)) < 1e-6
        except (TypeError, ValueError):
            return False
    return norm(expected) in norm(actual)


def check_calls(case: Case, out: Outcome, toolset: ToolSet) -> str | None:
    expected: list[dict[str, Any]] = case.spec.get("calls") or [case.spec["call"]]
    wanted = [(name, args) for item in expected for name, args in item.items()]
    if out.finish != "tool_calls" or not out.calls:
        return f"expected calls, got {out.finish}: {out.text[:100]!r}"
    got: list[tuple[str, Any]] = []
    for name, raw in out.calls:
        tool = toolset.tool(name)
        if tool is None:
            return f"called {name}, which is not offered"
        try:
            args = json.loads(raw)
            jsonschema.validate(args, tool.parameters or {"type": "object"})
        except (ValueError, jsonschema.ValidationError) as exc:
            return f"{name} arguments {raw!r} are invalid: {str(exc).splitlines()[0]}"
        got.append((name, args))
    if Counter(n for n, _ in got) != Counter(n for n, _ in wanted):
        return f"expected {[n for n, _ in wanted]}, got {out.calls}"
    remaining = list(got)
    for name, fragments in wanted:
        hit = next(
            (i for i, (n, a) in enumerate(remaining) if n == name and matches(fragments, a)), None
        )
        if hit is None:
            return f"no {name} call with {fragments}: {out.calls}"
        remaining.pop(hit)
    return None


def check_text(out: Outcome) -> str | None:
    if out.calls:
        return f"called {out.calls}"
    if out.finish not in ("stop", "length") or not out.text.strip():
        return f"no answer ({out.finish})"
    return None


def check_answer(case: Case, out: Outcome) -> str | None:
    problem = check_text(out)
    if problem:
        return problem
    text = norm(out.text)
    for fact in case.spec["facts"]:
        options = fact if isinstance(fact, list) else [fact]
        if not any(norm(o) in text for o in options):
            return f"answer lacks {options}: {out.text[:160]!r}"
    return None


def check(case: Case, out: Outcome, toolset: ToolSet) -> str | None:
    """None when the outcome is right, else what is wrong."""
    if case.kind in CALL_KINDS:
        return check_calls(case, out, toolset)
    if case.kind == "answer":
        return check_answer(case, out)
    return check_text(out)


# -- running ------------------------------------------------------------------------


def messages_for(case: Case, toolset: ToolSet) -> list[ChatMessage]:
    messages = [ChatMessage("system", toolset.system), ChatMessage("user", case.ask)]
    if case.kind != "answer":
        return messages
    ((name, args),) = case.spec["called"].items()
    call = ToolCall("call_eval00000000000000000001", name, json.dumps(args))
    if "found" in case.spec:
        results = [
            {"file_id": f"file-{i}", "file_name": file, "score": 0.9,
             "content": [{"type": "text", "text": text}]}
            for i, (file, text) in enumerate(case.spec["found"])
        ]  # fmt: skip
        content = file_search.render(0, results, query=args.get("query"))
    else:
        result = case.spec["result"]
        content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return [
        *messages,
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage("tool", content, tool_call_id=call.id),
    ]


async def run_case(backend: LocalBackend, case: Case, toolset: ToolSet) -> Outcome:
    request = ModelRequest(
        model="gpt-4o-mini",
        messages=messages_for(case, toolset),
        tools=toolset.tools,
        max_tokens=MAX_TOKENS.get(case.kind, 400),
    )
    out = Outcome()
    started = time.perf_counter()
    pending: dict[int, list[str]] = defaultdict(lambda: ["", ""])
    async for event in backend.stream(request):
        if isinstance(event, TextDelta):
            out.text += event.text
        elif isinstance(event, ToolCallDelta):
            pending[event.index][0] += event.name or ""
            pending[event.index][1] += event.arguments
        elif isinstance(event, Finish):
            out.finish = event.reason
    out.calls = [(pending[i][0], pending[i][1]) for i in sorted(pending)]
    out.seconds = time.perf_counter() - started
    return out


def pick(cases: list[Case], args: argparse.Namespace) -> list[Case]:
    if args.sets:
        cases = [c for c in cases if c.toolset in args.sets]
    if args.kinds:
        cases = [c for c in cases if c.kind in args.kinds]
    if args.slice:
        start, step = (int(x) for x in args.slice.split("/"))
        cases = cases[start::step]
    return cases


def report(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Print and return the scores of some results (``kind``, ``passed``, ``called``)."""
    total: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for record in records:
        total[record["kind"]] += 1
        passed[record["kind"]] += bool(record["passed"])
    no_tool = [r for r in records if r["kind"] in TEXT_KINDS]

    def share(kinds: tuple[str, ...]) -> tuple[int, int]:
        return sum(passed[k] for k in kinds), sum(total[k] for k in kinds)

    summary = {
        "overall": share(KINDS),
        "implicit need, called with valid arguments": share(("implicit",)),
        "no-tool question, called a tool": (sum(r["called"] for r in no_tool), len(no_tool)),
        "answer after a result, carries its facts": share(("answer",)),
        **{f"kind {k}": share((k,)) for k in KINDS if total[k]},
    }
    for label, (hits, count) in summary.items():
        rate = f"{hits / count:6.1%}" if count else "     -"
        print(f"  {label:44s} {hits:3d}/{count:3d} {rate}")
    return {k: {"hits": h, "count": n} for k, (h, n) in summary.items()}


def record(case: Case, out: Outcome, problem: str | None) -> dict[str, Any]:
    """What a results file keeps of a case: enough to score, not to read the case."""
    return {"toolset": case.toolset, "kind": case.kind, "passed": problem is None,
            "called": bool(out.calls), "seconds": round(out.seconds, 2)}  # fmt: skip


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("dev", "heldout"), default="dev")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="THREADLINE_LOCAL_MODEL")
    parser.add_argument("--model-path", type=Path, help="THREADLINE_LOCAL_MODEL_PATH")
    parser.add_argument("--threads", type=int, default=None, help="THREADLINE_LOCAL_THREADS")
    parser.add_argument("--data-dir", default=os.environ.get("THREADLINE_DATA_DIR", "data"))
    parser.add_argument("--sets", nargs="*", help="tool sets to run")
    parser.add_argument("--kinds", nargs="*", choices=KINDS, help="kinds of case to run")
    parser.add_argument("--slice", help="START/STEP: every STEP-th case from START")
    parser.add_argument("--rotate", help="K/N: start at the K-th of N points of the list, so "
                        "that a run stopped early still covers every tool set")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the scores here")
    parser.add_argument("--results", type=Path, help="append one line per case here")
    parser.add_argument("--score", type=Path, nargs="*", help="only score these results files")
    parser.add_argument("-v", "--verbose", action="store_true", help="show passing cases too")
    parser.add_argument("--guidance", help="try this tool instruction instead of the shipped one")
    parser.add_argument("--no-gate", action="store_true", help="without the tool-need gate")
    parser.add_argument("--no-route", action="store_true", help="without the tool router")
    parser.add_argument("--no-hold", action="store_true",
                        help="let answers from results end before they state a fact")  # fmt: skip
    parser.add_argument("--seed", type=int, help="sample each case from this seed and its "
                        "label, so that two runs differ only by the code they run")  # fmt: skip
    args = parser.parse_args()
    if args.guidance is not None:
        prompt.TOOL_GUIDANCE = args.guidance
    if args.no_hold:
        call.facts_of = lambda results, question: Facts()
    if args.score:
        lines = [line for path in args.score for line in path.read_text().splitlines()]
        report([json.loads(line) for line in lines if line.strip()])
        return 0
    toolsets = load_toolsets()
    cases = pick(load_cases(args.part, toolsets), args)
    if args.rotate:
        k, n = (int(x) for x in args.rotate.split("/"))
        cases = cases[k * len(cases) // n :] + cases[: k * len(cases) // n]
    reveal = args.part == "dev"
    settings = Settings(
        data_dir=Path(args.data_dir),
        local_model=args.model,
        local_model_path=args.model_path,
        local_threads=args.threads,
    )
    embed = SentenceCache(LocalEmbedder().embed_sync)  # shared, as a server shares it
    gate = None if args.no_gate else NeedGate(embed)
    route = None if args.no_route else ToolRouter(embed)
    backend = LocalBackend(settings, need=gate, route=route)
    started = time.perf_counter()
    await backend.warm_up()
    print(f"{args.part}: {len(cases)} cases on {backend.resolve_model('gpt-4o-mini')}", flush=True)
    results = []
    try:
        for case in cases:
            toolset = toolsets[case.toolset]
            if args.seed is not None:
                engine = backend._engine(backend._key_for("gpt-4o-mini"))  # its one engine
                engine.rng = np.random.default_rng([args.seed, zlib.crc32(case.label.encode())])
            out = await run_case(backend, case, toolset)
            problem = check(case, out, toolset)
            results.append((case, out, problem))
            if args.results:
                with args.results.open("a") as sink:
                    sink.write(json.dumps(record(case, out, problem)) + "\n")
            if reveal and (problem or args.verbose):
                shown = problem or (out.calls or out.text[:100])
                mark = "ok  " if problem is None else "FAIL"
                print(f"  {mark} {case.label}: {shown}", flush=True)
            elif len(results) % 10 == 0:
                print(f"  {len(results)}/{len(cases)} done", flush=True)
    finally:
        await backend.aclose()
    elapsed = time.perf_counter() - started
    scores = report([record(c, o, p) for c, o, p in results])
    seconds = sorted(o.seconds for _, o, _ in results)
    median = seconds[len(seconds) // 2] if seconds else 0.0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  {elapsed:.0f}s in all, median {median:.2f}s a case, peak RSS {peak_mb:.0f} MB")
    if args.json:
        scores["seconds"] = {"total": round(elapsed, 1), "median_case": round(median, 2)}
        scores["peak_rss_mb"] = {"value": round(peak_mb)}
        args.json.write_text(json.dumps(scores, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
