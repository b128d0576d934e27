"""Train the tool-need gate (``threadline.models.local.need``) and write its weights.

    .venv/bin/python bench/tool_use_eval/train_need.py            # writes the shipped file
    .venv/bin/python bench/tool_use_eval/train_need.py --check    # only compare with it
    .venv/bin/python bench/tool_use_eval/train_need.py --dev      # scores on the dev part

A logistic regression over all-MiniLM-L6-v2 sentence vectors of ``need_train.jsonl``
(requests written for this, ``tool`` true when they need live data, the user's own
records or an action; none is an evaluation case), fitted by full-batch gradient
descent from zeros: deterministic, a few seconds. ``--dev`` prints, for each
threshold, how many development requests that need a call keep it and how many
that need none are vetoed (the development part is what the veto was chosen on;
the held-out part is never read here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from threadline.models.local import need
from threadline.retrieval.embedders.local import MINILM, LocalEmbedder

HERE = Path(__file__).parent
DATA = HERE / "need_train.jsonl"
OUT = Path(need.__file__).with_name(need.WEIGHTS)
L2 = 0.01
STEPS = 3000
RATE = 0.5
VETO = 0.35
TOLERANCE = 1e-4
"""How far a shipped weight may be from a retrained one (``--check``)."""
CALL_KINDS = {"implicit", "explicit", "parallel", "search_needed", "code_needed"}
TEXT_KINDS = {"no_tool", "search_not_needed", "code_not_needed"}


def fit(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[list[float], float]:
    weights = np.zeros(x.shape[1])
    bias = 0.0
    for _ in range(STEPS):
        p = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
        error = p - y
        weights -= RATE * (x.T @ error / len(y) + L2 * weights)
        bias -= RATE * float(error.mean())
    return [round(float(w), 6) for w in weights], round(bias, 6)


def train(embedder: LocalEmbedder) -> dict[str, Any]:
    raw = DATA.read_bytes()
    rows = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    x = embedder.embed_sync([row["text"] for row in rows]).astype(np.float64)
    y = np.array([1.0 if row["tool"] else 0.0 for row in rows])
    weights, bias = fit(x, y)
    p = 1.0 / (1.0 + np.exp(-(x @ np.array(weights) + bias)))
    return {
        "embedder": MINILM.name,
        "veto": VETO,
        "trained_on": {
            "file": DATA.name,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "requests": len(rows),
            "needing_a_tool": int(y.sum()),
            "accuracy": round(float(((p >= 0.5) == (y == 1)).mean()), 4),
        },
        "bias": bias,
        "weights": weights,
    }


def same_fit(shipped: dict[str, Any], trained: dict[str, Any]) -> bool:
    """Whether ``shipped`` is what the training set trains: the same data and
    settings, the same weights to within ``TOLERANCE`` (CPUs differ in the last
    digits of the sentence vectors, and so of the weights, from one to the next)."""
    numbers = ("bias", "weights")
    if {k: v for k, v in shipped.items() if k not in numbers} != {
        k: v for k, v in trained.items() if k not in numbers
    }:
        return False
    old = np.array([shipped["bias"], *shipped["weights"]])
    new = np.array([trained["bias"], *trained["weights"]])
    return old.shape == new.shape and bool(np.abs(old - new).max() <= TOLERANCE)


def dev_scores(embedder: LocalEmbedder, spec: dict[str, object]) -> None:
    gate = need.NeedGate(embedder.embed_sync, dict(spec))
    cases = yaml.safe_load((HERE / "cases" / "dev.yaml").read_text())
    scored = [
        (gate.probability(case["ask"]) or 0.0, case["k"] in CALL_KINDS)
        for items in cases.values()
        for case in items
        if case["k"] in CALL_KINDS | TEXT_KINDS
    ]
    calls = sum(wants for _p, wants in scored)
    texts = len(scored) - calls
    print("threshold   calls kept   no-call requests vetoed")
    for threshold in (0.25, 0.3, 0.35, 0.4, 0.45, 0.5):
        kept = sum(wants and p >= threshold for p, wants in scored)
        vetoed = sum(not wants and p < threshold for p, wants in scored)
        print(f"  {threshold:4.2f}      {kept:3d}/{calls}       {vetoed:3d}/{texts}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the shipped file differs")
    parser.add_argument("--dev", action="store_true", help="print development-part scores")
    args = parser.parse_args()
    embedder = LocalEmbedder()
    spec = train(embedder)
    text = json.dumps(spec, indent=1) + "\n"
    if args.dev:
        dev_scores(embedder, spec)
    if args.check:
        if not same_fit(json.loads(OUT.read_text()), spec):
            print(f"{OUT} is not what {DATA.name} trains", file=sys.stderr)
            return 1
        print(f"{OUT.name} matches {DATA.name}")
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({spec['trained_on']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
