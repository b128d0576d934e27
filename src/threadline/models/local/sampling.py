"""Sampling the local model's next token: the request's temperature and top-p,
calibrated for a small model, over llama.cpp's top-k / top-p / min-p chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from threadline.models.base import ModelRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_TEMPERATURE = 0.7
MODEL_TOP_P = 0.8
RESULTS_TEMPERATURE = 0.3
"""Answers from tool results are sampled cooler: their values are copied, not made up."""
STRUCTURED_TEMPERATURE = 0.0
"""Tool-call arguments are decoded greedily: sampled, the 0.5B model swapped in
values of its own (a down payment of 100000 where the user said 60000)."""


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    top_k: int = 20
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    """Applied to the tokens generated so far (not the prompt, whose values answers copy)."""

    def from_results(self) -> Sampling:
        """Sampling for an answer from tool results: cooler, as it copies their values."""
        return replace(self, temperature=self.temperature * RESULTS_TEMPERATURE)

    def structured(self) -> Sampling:
        """Sampling for tool-call arguments: greedy, as their values are copied, not made up."""
        return replace(self, temperature=self.temperature * STRUCTURED_TEMPERATURE)


def sampling_for(request: ModelRequest) -> Sampling:
    """The request's sampling, calibrated for the small model.

    The API's defaults (temperature 1, top-p 1) map to the model's recommended 0.7 and
    0.8; other values scale alike (temperature 0 stays greedy). Unset means default.
    """
    temperature = 1.0 if request.temperature is None else max(request.temperature, 0.0)
    top_p = 1.0 if request.top_p is None else min(max(request.top_p, 0.0), 1.0)
    return Sampling(temperature * MODEL_TEMPERATURE, top_p * MODEL_TOP_P)


def sample_token(
    ids: npt.NDArray[np.intc],
    logits: npt.NDArray[np.float32],
    s: Sampling,
    rng: Any,
    recent: Sequence[int] = (),
) -> int:
    """Pick one of ``ids`` (best first): repetition penalty over ``recent``, then
    llama.cpp's top-k, top-p, min-p and temperature chain; greedy at temperature 0."""
    import numpy as np

    if recent and s.repeat_penalty != 1.0:
        seen = np.isin(ids, np.asarray(recent, dtype=ids.dtype))
        if seen.any():
            logits = logits.copy()
            penalised = logits[seen]
            logits[seen] = np.where(
                penalised > 0, penalised / s.repeat_penalty, penalised * s.repeat_penalty
            )
            order = np.argsort(-logits, kind="stable")
            ids, logits = ids[order], logits[order]
    if s.temperature < 1e-4 or len(ids) == 1:
        return int(ids[0])
    ids, logits = ids[: s.top_k], logits[: s.top_k]
    probs = np.exp(logits - logits[0])
    probs /= probs.sum()
    keep = int(np.searchsorted(np.cumsum(probs), s.top_p)) + 1
    keep = max(1, min(keep, int((probs >= s.min_p * probs[0]).sum())))
    scaled = np.exp((logits[:keep] - logits[0]) / s.temperature)
    return int(rng.choice(ids[:keep], p=scaled / scaled.sum()))
