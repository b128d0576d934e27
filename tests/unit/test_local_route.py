"""The local backend's tool router: which function a request is about, and the first
call decoded again for it when the model picked one far from it."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from threadline.models.base import (
    ChatMessage,
    Finish,
    FunctionTool,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from threadline.models.local.call import ModelCall
from threadline.models.local.engine import Decoded
from threadline.models.local.need import NeedGate
from threadline.models.local.route import MARGIN, ToolRouter, tool_text

LIGHTS = FunctionTool(
    "control_lights",
    "Switch the lights of a room on or off.",
    {
        "type": "object",
        "properties": {"room": {"type": "string"}, "brightness": {"type": "integer"}},
        "required": ["room"],
    },
)
THERMOSTAT = FunctionTool(
    "set_thermostat",
    "Set a room's target temperature.",
    {
        "type": "object",
        "properties": {"room": {"type": "string"}, "temperature": {"type": "number"}},
        "required": ["room", "temperature"],
    },
)
SEARCH = FunctionTool("file_search", "Search the user's files.", {"type": "object"})
CLOCK = FunctionTool("get_current_time", "The current time.", {"type": "object"})
ASK = "The living room is too warm, cool it down to 20."
# Unit vectors at chosen angles: the request is about the thermostat.
_DIRECTIONS = {
    ASK: 0.0,
    tool_text(THERMOSTAT): 0.3,  # cos 0.955
    tool_text(LIGHTS): 0.9,  # cos 0.622
    "Dim the living room lights to 20.": 0.85,  # closest to the lights
    tool_text(SEARCH): 0.1,
    "Good morning!": 0.0,
    tool_text(CLOCK): 1.2,
    # Follow-ups, as the gate and the router see them: about the thermostat.
    "And the living room, 20 again?": 0.0,
    "Thanks!": 0.0,
}


def _unit(angle: float) -> list[float]:
    return [float(np.cos(angle)), float(np.sin(angle))]


class Embedder:
    def __init__(self, fail: bool = False) -> None:
        self.texts: list[str] = []
        self.fail = fail

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if self.fail:
            raise RuntimeError("no model here")
        self.texts.extend(texts)
        return np.array([_unit(_DIRECTIONS[t]) for t in texts], dtype=np.float32)


def test_a_pick_far_from_the_request_is_routed_to_the_closest_function() -> None:
    router = ToolRouter(Embedder())
    assert router.better_than(ASK, "control_lights", [LIGHTS, THERMOSTAT]) == THERMOSTAT
    assert router.better_than(ASK, "set_thermostat", [LIGHTS, THERMOSTAT]) is None


def test_a_pick_within_the_margin_stands() -> None:
    # cos(0) - cos(0.3) = 0.045 and cos(0.85 - 0.9) - cos(0.85 - 0.3) ~ 0.15: the
    # margin decides; a router with a wider one keeps the pick.
    request = "Dim the living room lights to 20."
    router = ToolRouter(Embedder())
    assert router.better_than(request, "control_lights", [LIGHTS, THERMOSTAT]) is None
    assert router.better_than(ASK, "control_lights", [LIGHTS, THERMOSTAT]) == THERMOSTAT
    lenient = ToolRouter(Embedder(), margin=0.4)
    assert lenient.better_than(ASK, "control_lights", [LIGHTS, THERMOSTAT]) is None
    assert MARGIN < 0.4


def test_built_in_tools_and_lone_functions_are_left_alone() -> None:
    router = ToolRouter(Embedder())
    # file_search is not a function the router compares: a search stays a search.
    assert router.better_than(ASK, "file_search", [SEARCH, LIGHTS, THERMOSTAT]) is None
    assert router.better_than(ASK, "control_lights", [SEARCH, LIGHTS]) is None
    assert router.better_than(ASK, "unknown", [LIGHTS, THERMOSTAT]) is None
    assert router.better_than("  ", "control_lights", [LIGHTS, THERMOSTAT]) is None


def test_each_function_is_embedded_once() -> None:
    embed = Embedder()
    router = ToolRouter(embed)
    for _ in range(3):
        router.better_than(ASK, "control_lights", [LIGHTS, THERMOSTAT])
    assert embed.texts.count(tool_text(LIGHTS)) == 1
    assert embed.texts.count(tool_text(THERMOSTAT)) == 1
    assert embed.texts.count(ASK) == 1


def test_a_failing_embedder_leaves_the_picks_standing_and_is_not_asked_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    embed = Embedder(fail=True)
    router = ToolRouter(embed)
    with caplog.at_level(logging.ERROR, "threadline.models.local"):
        for _ in range(3):
            assert router.better_than(ASK, "control_lights", [LIGHTS, THERMOSTAT]) is None
    assert len([r for r in caplog.records if "tool router" in r.message]) == 1


# -- in a model call ------------------------------------------------------------------


class Engine:
    """Decodes a call of the first function its grammar admits, arguments scripted."""

    name = "fake"
    n_ctx = 4096
    newline = [10]

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text.split())

    def __init__(self, p_call: float = 0.9) -> None:
        self.grammars: list[list[str]] = []
        self.p_call = p_call

    def prefill(self, tokens: list[int], stop: threading.Event) -> None:
        pass

    def call_probability(self, json_mode: bool, stop: threading.Event) -> float:
        return self.p_call

    def decode(
        self,
        prompt: list[int],
        *,
        grammar_text: str | None = None,
        on_text: Callable[[str], Any] | None = None,
        **_: Any,
    ) -> Decoded:
        if grammar_text is None:  # a text answer
            if on_text is not None:
                on_text("It is done.")
            return Decoded(text="It is done.", ids=[5, 6, 7])
        names = re.findall(r'\\"name\\": \\"(\w+)\\"', grammar_text)
        self.grammars.append(names)
        arguments = {
            "control_lights": '{"room": "living room", "brightness": 20}',
            "set_thermostat": '{"room": "living room", "temperature": 20}',
            "get_current_time": "{}",
        }[names[0]]
        text = f'<tool_call>\n{{"name": "{names[0]}", "arguments": {arguments}}}\n</tool_call>'
        return Decoded(text=text, ids=[7] * 12)


def _call(
    route: ToolRouter | None, messages: list[ChatMessage] | None = None
) -> tuple[ModelCall, Engine]:
    engine = Engine()
    request = ModelRequest(
        model="m",
        messages=messages or [ChatMessage("user", ASK)],
        tools=[LIGHTS, THERMOSTAT],
        parallel_tool_calls=False,
    )
    call = ModelCall(engine, request, lambda _: None, threading.Event(), route=route)  # type: ignore[arg-type]
    return call, engine


def test_a_first_call_far_from_the_request_is_decoded_again_for_the_closest() -> None:
    call, engine = _call(ToolRouter(Embedder()))
    calls = call._calls()
    assert calls is not None
    assert [(c.name, c.arguments) for c in calls] == [
        ("set_thermostat", {"room": "living room", "temperature": 20})
    ]
    assert engine.grammars == [["control_lights", "set_thermostat"], ["set_thermostat"]]
    # The dropped call's tokens are not part of the reply.
    assert call.spent == 12
    assert call.used == 24


def test_without_the_router_the_models_pick_stands() -> None:
    call, engine = _call(None)
    calls = call._calls()
    assert calls is not None
    assert [c.name for c in calls] == ["control_lights"]
    assert len(engine.grammars) == 1


def _run(
    p_call: float,
    need_weights: list[float],
    ask: str = ASK,
    tools: tuple[FunctionTool, ...] = (LIGHTS, THERMOSTAT),
    earlier: tuple[ChatMessage, ...] = (),
) -> list[ModelEvent | BaseException | None]:
    """A whole auto call of ``ask`` (after ``earlier``), the model's call probability
    and the gate's weights given (ASK's vector is (1, 0): its need is the logistic
    of the first)."""
    events: list[ModelEvent | BaseException | None] = []
    gate = NeedGate(Embedder(), {"embedder": "t", "veto": 0.35, "bias": 0.0,
                                 "weights": need_weights})  # fmt: skip
    request = ModelRequest(
        model="m", messages=[*earlier, ChatMessage("user", ask)], tools=list(tools),
        parallel_tool_calls=False,
    )  # fmt: skip
    engine = Engine(p_call)
    ModelCall(engine, request, events.append, threading.Event(), gate, ToolRouter(Embedder())).run()  # type: ignore[arg-type]
    return events


def test_a_request_the_gate_finds_needing_a_tool_gets_a_call_the_model_did_not_start() -> None:
    # The model's call probability is under the threshold; the gate gives 0.73.
    events = _run(p_call=0.01, need_weights=[1.0, 0.0])
    names = [e.name for e in events if isinstance(e, ToolCallDelta) and e.name]
    assert names == ["set_thermostat"]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.reason == "tool_calls"


def test_below_the_gates_call_level_the_models_unlikely_call_is_not_made() -> None:
    # 0.45: over the veto (the tools are offered), under the level that calls anyway.
    events = _run(p_call=0.01, need_weights=[-0.2, 0.0])
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "It is done."


def test_a_call_pressed_by_the_gate_must_act_on_something_of_the_requests() -> None:
    """A greeting the gate scores over 0.5 is not answered with a call of a function
    that takes nothing from it; the model, had it started the call, would be let."""
    events = _run(p_call=0.01, need_weights=[1.0, 0.0], ask="Good morning!", tools=(CLOCK,))
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "It is done."
    events = _run(p_call=0.9, need_weights=[1.0, 0.0], ask="Good morning!", tools=(CLOCK,))
    assert [e.name for e in events if isinstance(e, ToolCallDelta) and e.name] == [
        "get_current_time"
    ]


def test_a_pressed_call_takes_its_values_from_the_last_message() -> None:
    """After the living room's lights were dimmed, "Thanks!" (which the gate may score
    over its call level) is not another dimming with the earlier message's values."""
    earlier = [
        ChatMessage("user", "Dim the living room lights to 20."),
        ChatMessage("assistant", "The living room lights are at 20."),
    ]
    thanks = [*earlier, ChatMessage("user", "Thanks!")]
    for p_call, made in ((0.01, []), (0.9, ["control_lights"])):  # pressed; the model's own
        call, _engine = _call(None, thanks)
        call.pressed = p_call < 0.15
        assert [c.name for c in call._calls() or []] == made
    call, _engine = _call(None, [*earlier, ChatMessage("user", "The living room again.")])
    call.pressed = True
    assert [c.name for c in call._calls() or []] == ["control_lights"]


def test_after_tool_results_an_extra_call_far_from_the_request_is_not_made() -> None:
    """ASK reads like several requests (its comma), so after the thermostat's result
    another function may be called; the lights, far from it, are not."""
    messages = [
        ChatMessage("user", ASK),
        ChatMessage("assistant", tool_calls=(ToolCall("call_1", "set_thermostat", "{}"),)),
        ChatMessage("tool", '{"ok": true}', tool_call_id="call_1"),
    ]
    call, engine = _call(ToolRouter(Embedder()), messages)
    assert call._calls() == []
    assert engine.grammars == [["control_lights", "set_thermostat"]]
    unrouted, _engine = _call(None, messages)
    assert [c.name for c in unrouted._calls() or []] == ["control_lights"]


def test_the_gate_and_the_router_embed_a_request_once() -> None:
    from threadline.models.local import LocalBackend
    from threadline.models.registry import build_backend
    from threadline.settings import Settings

    embed = Embedder()
    backend = build_backend(Settings(model_backend="local"), embed)
    assert isinstance(backend, LocalBackend)
    assert backend.need is not None
    assert backend.route is not None
    request = ModelRequest(
        model="m", messages=[ChatMessage("user", ASK)], tools=[LIGHTS, THERMOSTAT],
        parallel_tool_calls=False,
    )  # fmt: skip
    events: list[ModelEvent | BaseException | None] = []
    engine = Engine()
    ModelCall(engine, request, events.append, threading.Event(), backend.need, backend.route).run()  # type: ignore[arg-type]
    assert [e.name for e in events if isinstance(e, ToolCallDelta) and e.name] == ["set_thermostat"]
    assert engine.grammars == [["control_lights", "set_thermostat"], ["set_thermostat"]]
    assert embed.texts.count(ASK) == 1


def test_the_router_follows_its_setting() -> None:
    from threadline.models.local import LocalBackend
    from threadline.models.registry import build_backend
    from threadline.settings import Settings

    on = build_backend(Settings(model_backend="local"), Embedder())
    off = build_backend(Settings(model_backend="local", local_tool_router=False), Embedder())
    bare = build_backend(Settings(model_backend="local"))
    assert isinstance(on, LocalBackend)
    assert isinstance(on.route, ToolRouter)
    assert isinstance(off, LocalBackend)
    assert off.route is None
    assert isinstance(bare, LocalBackend)
    assert bare.route is None
    assert bare.need is None


@pytest.mark.smoke
def test_the_real_router_knows_what_a_request_is_about() -> None:
    from threadline.retrieval.embedders.local import LocalEmbedder

    weather = FunctionTool("get_weather", "Get the current weather for a city.")
    money = FunctionTool("convert_currency", "Convert an amount of money between currencies.")
    router = ToolRouter(LocalEmbedder().embed_sync)
    tools = [weather, money]
    yen, umbrella = "How many yen do I get for 50 pounds?", "Do I need an umbrella in Oslo?"
    assert router.better_than(yen, "get_weather", tools) == money
    assert router.better_than(umbrella, "convert_currency", tools) == weather
    assert router.better_than(umbrella, "get_weather", tools) is None
    assert router.better_than(yen, "convert_currency", tools) is None


# A thread that asked for the living room's thermostat and was answered: as a run
# sees an earlier run's turn, in text.
_EARLIER = (
    ChatMessage("user", "Set the living room to 20."),
    ChatMessage("assistant", "The living room is set to 20."),
)


def _called(events: list[ModelEvent | BaseException | None]) -> list[str]:
    return [e.name for e in events if isinstance(e, ToolCallDelta) and e.name]


def test_a_follow_up_the_gate_lets_through_is_tried_as_a_call() -> None:
    """0.45: over the veto, under the level that presses a first request's call. A
    follow-up (the assistant has answered before) is tried as one, which is kept if
    it acts on the follow-up; a thank-you gets none."""
    follow_up = "And the living room, 20 again?"
    assert _called(_run(p_call=0.01, need_weights=[-0.2, 0.0], ask=follow_up)) == []
    after = _run(p_call=0.01, need_weights=[-0.2, 0.0], ask=follow_up, earlier=_EARLIER)
    assert _called(after) == ["set_thermostat"]
    thanks = _run(p_call=0.01, need_weights=[-0.2, 0.0], ask="Thanks!", earlier=_EARLIER)
    assert _called(thanks) == []
    assert "".join(e.text for e in thanks if isinstance(e, TextDelta)) == "It is done."
    # Under the veto a follow-up is answered in text, however likely the model's call.
    vetoed = _run(p_call=0.9, need_weights=[-2.0, 0.0], ask=follow_up, earlier=_EARLIER)
    assert _called(vetoed) == []
