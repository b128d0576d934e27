"""The local backend's tool-need gate: its score, its veto, where it applies, and
that the shipped weights are what their training set trains."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from threadline.models.base import ChatMessage, FunctionTool, ModelRequest, ToolCall
from threadline.models.local.call import _first_call_need
from threadline.models.local.need import NeedGate, load_weights
from threadline.models.local.planning import plan_request

ROOT = Path(__file__).resolve().parents[2]
WEATHER = FunctionTool(
    "get_weather",
    "Get the current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
SEARCH = FunctionTool("file_search", "Search the user's files.", {"type": "object"})
# Two made-up directions: "live" requests point along x, "general" ones along y.
VECTORS = {"live": [1.0, 0.0], "general": [0.0, 1.0], "between": [0.6, 0.8]}
WEIGHTS: dict[str, Any] = {"embedder": "test", "veto": 0.35, "bias": 0.0, "weights": [3.0, -3.0]}


class Embedder:
    def __init__(self, fail: bool = False, width: int = 2) -> None:
        self.calls = 0
        self.fail = fail
        self.width = width

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("no model here")
        return np.array([VECTORS[t][: self.width] for t in texts], dtype=np.float32)


def gate(embed: Embedder | None = None) -> NeedGate:
    return NeedGate(embed or Embedder(), WEIGHTS)


def test_probability_is_the_logistic_of_the_weighted_vector() -> None:
    assert gate().probability("live") == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert gate().probability("general") == pytest.approx(1 / (1 + np.exp(3.0)))
    assert gate().probability("between") == pytest.approx(1 / (1 + np.exp(0.6)))


def closed_for(g: NeedGate, request: str) -> bool:
    return g.vetoes(g.probability(request))


def test_closed_below_the_veto_only() -> None:
    assert closed_for(gate(), "general")  # 0.05
    assert not closed_for(gate(), "between")  # 0.354
    assert not closed_for(gate(), "live")
    assert not gate().vetoes(None)  # not judged: the model decides


def test_a_failing_embedder_leaves_the_gate_open_and_is_not_asked_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    embed = Embedder(fail=True)
    broken = gate(embed)
    with caplog.at_level(logging.ERROR, logger="threadline.models.local"):
        assert not closed_for(broken, "general")
        assert not closed_for(broken, "general")
    assert embed.calls == 1
    assert "gate stays open" in caplog.text


def test_vectors_of_another_width_leave_the_gate_open() -> None:
    embed = Embedder(width=1)
    assert gate(embed).probability("general") is None
    assert not closed_for(gate(embed), "general")


def _request(*messages: ChatMessage, tools: tuple[FunctionTool, ...] = (WEATHER,),
             choice: Any = "auto") -> ModelRequest:  # fmt: skip
    return ModelRequest(model="m", messages=messages, tools=tools, tool_choice=choice)


def _needs_no_tool(request: ModelRequest) -> bool:
    need = _first_call_need(plan_request(request), gate())
    return need is not None and need < WEIGHTS["veto"]


def test_the_gate_judges_an_auto_first_call_only() -> None:
    general = ChatMessage("user", "general")
    assert _needs_no_tool(_request(general))
    assert not _needs_no_tool(_request(ChatMessage("user", "live")))
    assert _first_call_need(plan_request(_request(ChatMessage("user", "live"))), gate()) == (
        pytest.approx(1 / (1 + np.exp(-3.0)))
    )
    # A forced call, or tool_choice none, is the caller's to decide.
    assert _first_call_need(plan_request(_request(general, choice="required")), gate()) is None
    assert _first_call_need(plan_request(_request(general, choice="none")), gate()) is None
    # After tool results the call policy decides.
    called = ChatMessage("assistant", "", tool_calls=(ToolCall("c1", "get_weather", "{}"),))
    result = ChatMessage("tool", "sunny", tool_call_id="c1")
    assert _first_call_need(plan_request(_request(general, called, result)), gate()) is None


def test_a_planned_search_of_the_users_documents_stands() -> None:
    question = "what does my uploaded report say about revenue?"
    VECTORS[question] = VECTORS["general"]
    try:
        plan = plan_request(_request(ChatMessage("user", question), tools=(SEARCH,)))
        assert plan.search_query == question
        assert _first_call_need(plan, gate()) is None
    finally:
        del VECTORS[question]


def test_shipped_weights_describe_their_model() -> None:
    spec = load_weights()
    assert spec["embedder"] == "all-MiniLM-L6-v2"
    assert len(spec["weights"]) == 384
    assert 0 < spec["veto"] < 0.5
    assert spec["trained_on"]["requests"] > 500


@pytest.mark.smoke
def test_shipped_weights_are_what_the_training_set_trains() -> None:
    script = ROOT / "bench" / "tool_use_eval" / "train_need.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.smoke
def test_the_real_gate_tells_live_needs_from_general_questions() -> None:
    from threadline.retrieval.embedders.local import LocalEmbedder

    real = NeedGate(LocalEmbedder().embed_sync)
    for request in (
        "Explain photosynthesis simply.",
        "What is the difference between weather and climate?",
        "How do I boil an egg?",
    ):
        assert closed_for(real, request), request
    for request in (
        "Is it raining in Lisbon right now?",
        "Has my order 5512 shipped yet?",
        "Turn off the lights in the garage.",
    ):
        assert not closed_for(real, request), request


def test_the_gate_follows_its_setting() -> None:
    from threadline.models.local import LocalBackend
    from threadline.models.registry import build_backend
    from threadline.settings import Settings

    on = build_backend(Settings(model_backend="local"), Embedder())
    off = build_backend(Settings(model_backend="local", local_tool_gate=False), Embedder())
    assert isinstance(on, LocalBackend)
    assert isinstance(on.need, NeedGate)
    assert isinstance(off, LocalBackend)
    assert off.need is None


def test_the_gate_has_an_embedder_of_its_own() -> None:
    """Not file_search's: a run's model call never waits for a large file's embedding,
    and the BLAS thread limit stays file_search's to set."""
    from threadline.retrieval.embedders import LocalEmbedder
    from threadline.wiring import sentence_embedder

    first, second = sentence_embedder(), sentence_embedder()
    owner = getattr(first, "__self__", None)
    assert isinstance(owner, LocalEmbedder)
    assert owner.name == "all-MiniLM-L6-v2"
    assert owner.threads is None
    assert getattr(second, "__self__", None) is not owner
