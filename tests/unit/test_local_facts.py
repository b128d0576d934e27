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


def test_a_results_numbers_and_short_strings_are_its_values() -> None:
    facts = facts_of([SENSOR, ORDER], "How warm is the bathroom?")
    assert facts.numbers == {24.5}
    # "C" is too short to tell anything; underscores read as spaces.
    assert facts.texts == {"in transit", "ups", "2026-12-03"}
    assert not facts.words


def test_what_the_question_holds_is_not_to_be_stated() -> None:
    facts = facts_of(['{"ok": true, "room": "bedroom", "target": 19, "current": 21.5}'],
                     "Set the bedroom to 19.")  # fmt: skip
    assert facts == Facts(numbers=frozenset({21.5}))
    assert not facts_of(['{"ok": true, "note": null}'], "Lights off.")
    assert not facts_of(['{"room": "bedroom"}'], "Is the bedroom free?")


def test_every_value_must_be_stated() -> None:
    flights = json.dumps({"flights": [{"flight": "AZ319", "departs": "07:40", "price_eur": 89}]})
    facts = facts_of([flights], "Flights from Paris to Rome?")
    assert facts == Facts(numbers=frozenset({89.0}), texts=frozenset({"az319", "07:40"}))
    assert facts.hold_end("There is flight AZ319 at 07:40.")
    assert not facts.hold_end("There is flight AZ319 at 07:40, for 89 EUR.")


def test_a_longer_text_needs_one_of_its_long_words_or_numbers() -> None:
    searched = (
        "\n【0:0†handbook.pdf】\nStaff may work remotely up to 3 days a week, "
        "with their manager's approval."
    )
    facts = facts_of([searched], "What does the handbook say about remote work?")
    assert facts.word_numbers == {3.0}  # in digits: "a week" is not a fact of 1
    assert {"remotely", "approval", "manager"} <= facts.words
    assert not facts.texts
    assert facts.hold_end("【0:0†handbook.pdf】")
    assert not facts.hold_end("【0:0†handbook.pdf】 You may work remotely.")
    assert not facts.hold_end("Up to three days.")
    # A JSON result's sentence is read the same way; its short values must be stated.
    mixed = facts_of(['{"status": "degraded", "note": "Error rate above threshold"}'], "OK?")
    assert mixed.texts == {"degraded"}
    assert mixed.hold_end("The error rate is above the threshold.")
    assert not mixed.hold_end("It is degraded.")


def test_a_value_is_stated_as_whole_words_and_a_number_however_written() -> None:
    facts = facts_of([ORDER, '{"rows": 1284, "growth": 0.14}'], "Where is my order?")
    everything = "In Transit with UPS, due 2026-12-03; 1,284 rows, growth 14%."
    assert not facts.missing_from(everything)
    assert facts.missing_from(everything.replace("UPS", "UPStairs"))
    assert facts.missing_from(everything.replace("In Transit", "in transition"))
    assert facts.missing_from(everything.replace("1,284", "128"))
    assert not facts.missing_from(everything.replace("2026-12-03", "December 3rd"))
    assert not facts.missing_from(everything.replace("2026-12-03", "3 Dec"))
    assert facts.missing_from(everything.replace("2026-12-03", "December 13th"))


def test_the_end_is_held_only_while_a_short_answer_leaves_something_out() -> None:
    facts = facts_of([SENSOR], "How warm is the bathroom?")
    assert facts.hold_end("The bathroom is warm.")
    assert not facts.hold_end("The bathroom is at 24.5 degrees.")
    assert not facts.hold_end("x" * HOLD_CHARS)
    assert not Facts().hold_end("The bathroom is warm.")


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
