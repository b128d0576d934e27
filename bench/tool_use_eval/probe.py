"""The auto tool choice's decision, probed case by case on the development part.

    python bench/tool_use_eval/probe.py --out probe.jsonl     # every non-answer dev case
    python bench/tool_use_eval/probe.py --sets travel -v

For each case that is not an answer after a result, it records what the decision
rests on: the probability of a call start at the reply's first token, and the call the
backend generates (greedy, under its grammar, through the call policy's checks) as if
that probability had crossed the threshold. Both are deterministic, so one pass
shows what any threshold would do, and what the argument checks catch, without
decoding text answers. A case "would pass" at threshold T when it expects a call and
the probability is at least T and the generated call passes ``run.py``'s checks, or
it expects text and the probability is below T or the policy rejects the call (a
text answer may still turn into a call; this probe does not decode those). Each
line also records the tool-need gate's score (``p_need``); the summary is printed
without the gate and with it (a request it vetoes makes no call).

Development part only: tuning looks at these cases, never at the held-out ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from run import (
    CALL_KINDS,
    Case,
    Outcome,
    ToolSet,
    check,
    load_cases,
    load_toolsets,
    messages_for,
)

from threadline.models.base import ModelRequest
from threadline.models.local import prompt
from threadline.models.local.assets import VARIANTS, ensure_model_file
from threadline.models.local.call import CALL_WHEN_NEEDED, ModelCall
from threadline.models.local.calls import ParsedCall
from threadline.models.local.engine import Engine
from threadline.models.local.need import NeedGate
from threadline.models.local.policy import FILE_SEARCH, carries_values
from threadline.models.local.route import ToolRouter
from threadline.retrieval.embedders.local import LocalEmbedder
from threadline.settings import Settings


def probe(
    engine: Engine,
    case: Case,
    toolset: ToolSet,
    gate: NeedGate,
    route: ToolRouter | None,
    ask_model: bool = True,
) -> dict[str, Any]:
    request = ModelRequest(
        model="gpt-4o-mini", messages=messages_for(case, toolset), tools=toolset.tools,
        max_tokens=400,
    )  # fmt: skip
    stop = threading.Event()
    call = ModelCall(engine, request, lambda _: None, stop, route=route)
    started = time.perf_counter()
    engine.prefill(call.prompt, stop)
    p_call = engine.call_probability(call.plan.json_mode, stop)
    p_yes = decision_probability(engine, call.plan.prompt, stop) if ask_model else None
    if call.plan.search_query is not None:
        calls = [ParsedCall(FILE_SEARCH, {"query": call.plan.search_query})]
    else:
        calls = call._calls() or []
    out = Outcome(
        calls=[(c.name, c.arguments_json) for c in calls],
        finish="tool_calls" if calls else "stop",
        text="" if calls else "(text)",
    )
    problem = check(case, out, toolset)
    return {
        "toolset": case.toolset, "kind": case.kind, "ask": case.ask,
        "wants_call": case.kind in CALL_KINDS, "p_call": round(p_call, 4),
        "p_yes": None if p_yes is None else round(p_yes, 4),
        "p_need": round(_need(gate, case.ask), 4),
        "search_planned": call.plan.search_query is not None,
        "calls": out.calls, "call_ok": problem is None if calls else False,
        "carries": bool(calls) and carries_values(calls[0], toolset.tools),
        "problem": problem, "seconds": round(time.perf_counter() - started, 2),
    }  # fmt: skip


DECISION = (
    "Does answering my last message need one of the functions listed above? Answer yes or no."
)
ASSISTANT = "<|im_start|>assistant\n"


def decision_probability(engine: Engine, prompt: str, stop: threading.Event) -> float:
    """P(yes) against P(no) when the model is asked whether a function is needed."""
    import numpy as np

    assert prompt.endswith(ASSISTANT)
    text = prompt[: -len(ASSISTANT)] + f"<|im_start|>user\n{DECISION}<|im_end|>\n" + ASSISTANT
    engine.prefill(engine.tokenize(text), stop)
    ids, logits = engine.candidates(None, None)
    probs = np.exp(logits - logits[0])
    probs /= probs.sum()
    yes = no = 0.0
    for token, p in zip(ids.tolist(), probs.tolist(), strict=True):
        word = engine.piece(token).strip().lower().strip(".,!")
        if word == "yes":
            yes += p
        elif word == "no":
            no += p
    return yes / (yes + no) if yes + no else 0.5


def _need(gate: NeedGate, ask: str) -> float:
    """The gate's score (1.0 where it could not judge: it then stays open)."""
    probability = gate.probability(ask)
    return 1.0 if probability is None else probability


def would_pass(row: dict[str, Any], threshold: float, veto: float = 0.0) -> bool:
    """With the gate's ``veto`` (0: no gate), as the backend decides: with the gate,
    a request it scores at ``CALL_WHEN_NEEDED`` or more is called whatever the
    model's probability, if the call carries a value of the request's."""
    if row["search_planned"]:
        return bool(row["wants_call"]) and bool(row["call_ok"])
    need = row.get("p_need", 1.0)
    pressed = bool(veto) and need >= CALL_WHEN_NEEDED and row.get("carries", True)
    likely = row["p_call"] >= threshold or pressed
    called = need >= veto and likely and bool(row["calls"])
    if row["wants_call"]:
        return called and bool(row["call_ok"])
    return not called


def summary(rows: list[dict[str, Any]], veto: float) -> None:
    implicit = [r for r in rows if r["kind"] == "implicit"]
    calls = [r for r in rows if r["wants_call"]]
    texts = [r for r in rows if not r["wants_call"]]
    for gate in (0.0, veto):
        print("without the tool-need gate" if not gate else f"with the gate (veto {gate})")
        print("threshold  implicit ok   all calls ok   text cases that call")
        for threshold in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5):
            ok_i = sum(would_pass(r, threshold, gate) for r in implicit)
            ok_c = sum(would_pass(r, threshold, gate) for r in calls)
            bad = sum(not would_pass(r, threshold, gate) for r in texts)
            print(
                f"  {threshold:5.2f}   {ok_i:3d}/{len(implicit):3d}     {ok_c:3d}/{len(calls):3d}"
                f"        {bad:3d}/{len(texts):3d}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--sets", nargs="*")
    parser.add_argument("--out", type=Path, help="write one line per case here")
    parser.add_argument("--score", type=Path, help="only summarise this probe file")
    parser.add_argument("--guidance", help="try this tool instruction instead of the shipped one")
    parser.add_argument("--no-route", action="store_true", help="without the tool router")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--no-ask",
        action="store_true",
        help="skip asking the model whether a function is needed (p_yes)",
    )
    args = parser.parse_args()
    if args.guidance is not None:
        prompt.TOOL_GUIDANCE = args.guidance
    embed = LocalEmbedder().embed_sync
    gate = NeedGate(embed)
    route = None if args.no_route else ToolRouter(embed)
    if args.score:
        lines = args.score.read_text().splitlines()
        summary([json.loads(line) for line in lines if line], gate.veto)
        return 0
    toolsets = load_toolsets()
    cases = [c for c in load_cases("dev", toolsets) if c.kind != "answer"]
    if args.sets:
        cases = [c for c in cases if c.toolset in args.sets]
    settings = Settings(data_dir=args.data_dir, local_model=args.model, local_threads=args.threads)
    variant = VARIANTS[args.model]
    engine = Engine(
        ensure_model_file(variant, settings.data_dir / "models"), variant.served_name, settings
    )
    rows = []
    for case in cases:
        row = probe(engine, case, toolsets[case.toolset], gate, route, not args.no_ask)
        rows.append(row)
        if args.out:
            with args.out.open("a") as sink:
                sink.write(json.dumps(row) + "\n")
        if args.verbose:
            print(
                f"  {row['p_call']:.3f} {row['p_yes'] or 0:.3f} {case.label}: "
                f"{row['calls']} {row['problem'] or ''}"
            )
    summary(rows, gate.veto)
    return 0


if __name__ == "__main__":
    sys.exit(main())
