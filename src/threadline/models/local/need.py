"""Does a request need a tool at all? A small classifier the auto tool choice asks
before the model may call a function.

The embedded models judge this badly on their own: asked "What is Kubernetes?" or
"Good morning!" with functions offered, the 1.5B model starts a call for a third of
such questions, and no prompt wording or threshold on its own call probability
separated them from requests that need a call (``docs/local-model.md``). A request's
need is mostly in its wording, whatever the tools are: live or current data ("is it
cold in Oslo right now?"), the user's own records ("did my parcel ship?"), an action
("turn the hallway lights off") against general knowledge, advice, how-to, writing
and chat. So a logistic regression over the request's sentence embedding
(all-MiniLM-L6-v2, the embedder the server ships for file_search) scores that need;
below ``veto`` the request is answered in text, without offering the functions.

The weights (``need_weights.json``) are trained by
``bench/tool_use_eval/train_need.py`` on ``bench/tool_use_eval/need_train.jsonl``:
requests of their own, over some 70 domains, none taken from the evaluation's cases;
the threshold was chosen on the evaluation's development part.

The gate judges only a first call: after tool results the call policy decides as
before. Its score also presses the other way: at ``call.CALL_WHEN_NEEDED`` or more a
call is tried even when the model is unlikely to start one (``call.py``). When the
embedder cannot be loaded the gate stays open (every request may call, none is
pressed), once logged.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from importlib import resources
from typing import Any

import numpy as np

from threadline.models.local.sentences import Embed

log = logging.getLogger("threadline.models.local")

WEIGHTS = "need_weights.json"


class NeedGate:
    """Scores whether a request needs a tool; closed (no calls) below the veto."""

    def __init__(self, embed: Embed, weights: dict[str, Any] | None = None) -> None:
        spec = weights if weights is not None else load_weights()
        self._embed = embed
        self.veto: float = float(spec["veto"])
        self._weights = np.asarray(spec["weights"], dtype=np.float32)
        self._bias = float(spec["bias"])
        self._broken = threading.Event()

    def probability(self, request: str) -> float | None:
        """The probability that ``request`` needs a tool; None when the embedder
        could not be used (the gate then stays open)."""
        if self._broken.is_set():
            return None
        try:
            vector = self._embed([request])[0]
        except Exception:
            self._broken.set()
            log.exception("tool-need gate: the sentence embedder failed; the gate stays open")
            return None
        if vector.shape != self._weights.shape:
            self._broken.set()
            log.error(
                "tool-need gate: the embedder gives %s-dimensional vectors, the weights "
                "expect %s; the gate stays open", vector.shape[0], self._weights.shape[0],
            )  # fmt: skip
            return None
        score = float(vector @ self._weights) + self._bias
        return 1.0 / (1.0 + math.exp(-score))

    def vetoes(self, probability: float | None) -> bool:
        """Whether a request the gate gives ``probability`` is answered without a
        call (None, not judged: the model decides)."""
        return probability is not None and probability < self.veto


def load_weights() -> dict[str, Any]:
    text = resources.files(__package__).joinpath(WEIGHTS).read_text(encoding="utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec
