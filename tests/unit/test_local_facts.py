"""What an answer from tool results must carry before it may end, and the model
call holding its end back until it does."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from threadline.models.base import ChatMessage, FunctionTool, ModelRequest, TextDelta, ToolCall
from threadline.models.local.call import ModelCall
from threadline.models.local.engine import Decoded
from threadline.models.local.facts import HOLD_CHARS, Facts, facts_of

SENSOR = '{"value": 24.5, "unit": "C"}'
ORDER = '{"status": "in_transit", "carrier": "UPS", "expected_delivery": "2026-12-03"}'


def test_a_results_numbers_and_short_strings_are_its_facts() -> None:
    facts = facts_of([SENSOR, ORDER], "How warm is the bathroom?")
    # A date's digits count too: "December 3" is a way of stating it.
    assert facts.numbers == {24.5, 2026.0, 12.0, 3.0}
    # "C" is too short to tell anything; underscores read as spaces.
    assert facts.texts == {"in transit", "ups", "2026-12-03"}


def test_what_the_question_holds_is_not_a_fact() -> None:
    facts = facts_of(['{"ok": true, "room": "bedroom", "target": 19, "current": 21.5}'],
                     "Set the bedroom to 19.")  # fmt: skip
    assert facts == Facts(frozenset({21.5}), frozenset())
    assert not facts_of(['{"ok": true, "note": null}'], "Lights off.")
    assert not facts_of(['{"room": "bedroom"}'], "Is the bedroom free?")


def test_a_long_text_gives_its_long_words_and_numbers_not_its_citation_marker() -> None:
    searched = "\n【0:0†handbook.pdf】\nStaff may work remotely up to 3 days a week, with approval."
    facts = facts_of([searched], "What does the handbook say about remote work?")
    assert facts.numbers == {3.0}  # in digits: "a week" is not a fact of 1
    assert {"remotely", "approval"} <= facts.texts
    assert facts.carried_by("Up to three days.")
    assert not facts.carried_by("【0:0†handbook.pdf】")
    assert facts.carried_by("【0:0†handbook.pdf】 You may work remotely.")


def test_nested_results_are_read_to_their_leaves() -> None:
    flights = json.dumps({"flights": [{"flight": "AZ319", "price_eur": 89}]})
    facts = facts_of([flights], "Flights from Paris to Rome?")
    assert facts.numbers == {89.0}
    assert facts.texts == {"az319"}


def test_a_fact_is_carried_as_whole_words_and_as_a_number_however_written() -> None:
    facts = facts_of([ORDER, '{"rows": 1284, "growth": 0.14}'], "Where is my order?")
    assert facts.carried_by("It is In Transit.")
    assert facts.carried_by("Shipped with UPS.")
    assert not facts.carried_by("It is upstairs, in transition.")
    assert facts.carried_by("The file has 1,284 rows.")
    assert facts.carried_by("Growth was 14%.")
    assert not facts.carried_by("The file has 128 rows.")


def test_the_end_is_held_only_while_a_short_answer_carries_no_fact() -> None:
    facts = facts_of([SENSOR], "How warm is the bathroom?")
    assert facts.hold_end("The bathroom is warm.")
    assert not facts.hold_end("The bathroom is at 24.5 degrees.")
    assert not facts.hold_end("x" * HOLD_CHARS)
    assert not Facts(frozenset(), frozenset()).hold_end("The bathroom is warm.")


# -- in a model call ------------------------------------------------------------------


class Engine:
    """Answers in pieces; ends after a piece unless ``hold_end`` holds the end back."""

    name = "fake"
    n_ctx = 4096
    newline = [10]
    PIECES = ("The bathroom is warm.", " It reads 24.5 C.", " Stay cosy.")

    def __init__(self) -> None:
        self.holds: list[Callable[[str], bool] | None] = []

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text.split())

    def prefill(self, tokens: list[int], stop: threading.Event) -> None:
        pass

    def decode(
        self,
        prompt: list[int],
        *,
        on_text: Callable[[str], Any] | None = None,
        hold_end: Callable[[str], bool] | None = None,
        **_: Any,
    ) -> Decoded:
        self.holds.append(hold_end)
        out = Decoded()
        for piece in self.PIECES:
            out.text += piece
            out.ids.append(5)
            if on_text is not None:
                on_text(piece)
            if hold_end is None or not hold_end(out.text):
                break
        return out


def _answer(response_format: dict[str, Any] | None = None) -> tuple[str, Engine]:
    sensor = FunctionTool("get_sensor_reading", "Read a sensor.", {"type": "object"})
    messages = [
        ChatMessage("user", "How warm is the bathroom?"),
        ChatMessage("assistant", tool_calls=(ToolCall("call_1", sensor.name, "{}"),)),
        ChatMessage("tool", SENSOR, tool_call_id="call_1"),
    ]
    request = ModelRequest(model="m", messages=messages, tools=[sensor],
                           response_format=response_format)  # fmt: skip
    events: list[Any] = []
    engine = Engine()
    ModelCall(engine, request, events.append, threading.Event())._text(allow_calls=True)  # type: ignore[arg-type]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), engine


def test_an_answer_from_results_goes_on_until_it_states_a_fact() -> None:
    text, engine = _answer()
    assert text == "The bathroom is warm. It reads 24.5 C."
    assert engine.holds[0] is not None


def test_a_json_answer_is_not_held() -> None:
    _text, engine = _answer({"type": "json_object"})
    assert engine.holds == [None]
