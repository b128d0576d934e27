"""Unit tests of the local model's call-or-answer decisions that run without the model:
made-up numbers in calls, codes in grounding, which functions a rejected first call is
tried again with, and how tool results are written into the answer prompt."""

from __future__ import annotations

from threadline.models.base import ChatMessage, FunctionTool, ToolCall
from threadline.models.local.calls import ParsedCall
from threadline.models.local.policy import (
    CODE_INTERPRETER,
    FILE_SEARCH,
    adds_information,
    grounded,
    mentioned_numbers,
    opens_refusal,
    retry_tools,
    without_made_up_numbers,
)
from threadline.models.local.prompt import readable, render_answer
from threadline.models.local.sampling import Sampling

FORECAST = FunctionTool(
    "get_forecast",
    "Forecast for a place.",
    {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "days": {"type": "integer"},
            "units": {"type": "string", "enum": ["metric", "imperial"]},
        },
        "required": ["location"],
    },
)
NUTRITION = FunctionTool(
    "get_nutrition",
    "Calories of an amount of food.",
    {
        "type": "object",
        "properties": {"food": {"type": "string"}, "grams": {"type": "number"}},
        "required": ["food", "grams"],
    },
)
TOOLS = [FORECAST, NUTRITION]


def test_mentioned_numbers_reads_digits_separators_and_words() -> None:
    found = mentioned_numbers("Send 1,200 EUR, two boxes at 6.5% on 2026-12-14 when it is -3")
    assert 1200.0 in found
    assert 2.0 in found
    assert 6.5 in found
    assert 14.0 in found
    assert -3.0 in found
    assert 7.0 not in found


def test_an_optional_number_nobody_mentioned_is_dropped() -> None:
    call = ParsedCall("get_forecast", {"location": "Oslo", "days": 3, "units": "metric"})
    checked = without_made_up_numbers(call, TOOLS, "Will it rain in Oslo?")
    assert checked == ParsedCall("get_forecast", {"location": "Oslo", "units": "metric"})


def test_a_mentioned_number_is_kept() -> None:
    call = ParsedCall("get_forecast", {"location": "Oslo", "days": 3})
    assert without_made_up_numbers(call, TOOLS, "Rain in Oslo in the next three days?") == call


def test_a_made_up_required_number_rejects_the_call() -> None:
    call = ParsedCall("get_nutrition", {"food": "water", "grams": 2000})
    assert without_made_up_numbers(call, TOOLS, "How much water should I drink a day?") is None


def test_a_call_without_numbers_passes_unchanged() -> None:
    call = ParsedCall("get_forecast", {"location": "Lima"})
    assert without_made_up_numbers(call, TOOLS, "Forecast for Lima") is call


def test_readable_writes_json_as_key_value_lines() -> None:
    text = readable('{"temp_c": 23, "sky": "sunny", "hits": [{"name": "A", "price": 1.5}]}')
    assert text.splitlines() == ["temp_c: 23", "sky: sunny", "hits 1 name: A", "hits 1 price: 1.5"]


def test_readable_keeps_plain_text() -> None:
    assert readable("338350\n") == "338350"
    assert readable("not json {") == "not json {"


def test_the_answer_prompt_carries_every_value_of_the_result() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    messages = [
        ChatMessage("user", "How warm is it in Paris?"),
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage("tool", '{"temp_c": 23, "sky": "sunny"}', tool_call_id="call_1"),
    ]
    last = render_answer(messages).split("<|im_start|>user\n")[-1]
    assert last.startswith("How warm is it in Paris?\n")
    assert 'get_weather(city="Paris") returned:\ntemp_c: 23\nsky: sunny' in last
    assert "(numbers, names, dates, statuses)" in last


def test_refusal_openings() -> None:
    assert opens_refusal("I")
    assert opens_refusal(" Sorry")
    assert opens_refusal("Unfortunately")
    assert not opens_refusal("The")
    assert not opens_refusal(" Your")
    assert not opens_refusal("In")


STOCK = FunctionTool(
    "get_stock_price",
    "Latest price of a stock.",
    {"type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]},
)
CONVERT = FunctionTool(
    "convert_currency",
    "Convert an amount between currencies.",
    {
        "type": "object",
        "properties": {
            "amount": {"type": "number"},
            "from_currency": {"type": "string"},
            "to_currency": {"type": "string"},
        },
        "required": ["amount", "from_currency", "to_currency"],
    },
)
SEARCH = FunctionTool(FILE_SEARCH, "Search the user's files.", {"type": "object"})
CODE = FunctionTool(CODE_INTERPRETER, "Run Python.", {"type": "object"})


def test_a_code_the_request_implies_is_not_held_against_a_first_call() -> None:
    dollars = ParsedCall("convert_currency", {"amount": 80, "from_currency": "USD",
                                              "to_currency": "EUR"})  # fmt: skip
    assert grounded(dollars, [CONVERT], "How much is 80 dollars in euros?")


def test_codes_still_count_where_every_value_must_be_grounded() -> None:
    context = "Prices of Apple and Alphabet?"
    apple = ParsedCall("get_stock_price", {"symbol": "AAPL"})
    google = ParsedCall("get_stock_price", {"symbol": "GOOGL"})
    assert not grounded(google, [STOCK], context, strict=True)
    assert grounded(google, [STOCK], "Prices of AAPL and GOOGL?", strict=True)
    # a second call with another code adds information, so parallel calls still work
    assert adds_information(google, [apple], [STOCK], "Prices of AAPL and GOOGL?")


def test_a_lower_case_or_made_up_word_is_no_code() -> None:
    assert not grounded(ParsedCall("get_stock_price", {"symbol": "amzn"}), [STOCK], "Hi")
    made_up = ParsedCall("get_forecast", {"location": "London", "units": "metric"})
    assert not grounded(made_up, TOOLS, "How much is 80 dollars in euros?")


def test_a_rejected_first_call_is_tried_once_more_with_the_other_functions() -> None:
    tools = [FORECAST, CONVERT, NUTRITION]
    assert retry_tools(tools, []) == ()
    assert retry_tools(tools, ["get_forecast"]) == (CONVERT, NUTRITION)
    assert retry_tools(tools, ["get_forecast", "convert_currency"]) == ()


def test_no_retry_into_the_built_in_tools_or_without_another_function() -> None:
    assert retry_tools([CONVERT, SEARCH, CODE], ["convert_currency"]) == ()
    assert retry_tools([STOCK, SEARCH, CONVERT], [FILE_SEARCH]) == (STOCK, CONVERT)
    assert retry_tools([STOCK], ["get_stock_price"]) == ()


def test_one_word_of_two_does_not_ground_a_value() -> None:
    translate = FunctionTool("translate_text", "Translate.", {"type": "object"})
    context = "How many languages are spoken in the world?"
    made_up = ParsedCall("translate_text", {"text": "Hello, world!"})
    assert not grounded(made_up, [translate], context)
    assert grounded(ParsedCall("translate_text", {"text": "the world"}), [translate], context)
    assert grounded(ParsedCall("translate_text", {"text": "Spoken World"}), [translate], context)


def test_answers_from_results_are_sampled_cooler() -> None:
    default = Sampling(0.7, 0.8)
    assert 0 < default.from_results().temperature < default.temperature
    assert default.from_results().top_p == default.top_p
    assert Sampling(0.0, 0.8).from_results().temperature == 0.0


def test_a_call_of_codes_alone_is_judged_on_them() -> None:
    joke = ParsedCall("get_stock_price", {"symbol": "AAPL"})
    assert not grounded(joke, [STOCK], "Tell me a short joke.")
    assert grounded(joke, [STOCK], "How is AAPL doing?")


def test_a_code_made_of_a_named_word_is_grounded_by_it() -> None:
    amazon = ParsedCall("get_stock_price", {"symbol": "AMZN"})
    assert grounded(amazon, [STOCK], "How's Amazon stock doing?")
    assert grounded(amazon, [STOCK], "Microsoft and Amazon, please.", strict=True)
    # the letters come in order, from the word's first to its last
    assert not grounded(amazon, [STOCK], "How's Zaman doing?")
    assert not grounded(ParsedCall("get_stock_price", {"symbol": "AAPL"}), [STOCK],
                        "How's Apple doing?")  # fmt: skip
    assert not grounded(ParsedCall("get_stock_price", {"symbol": "MZN"}), [STOCK],
                        "How's Amazon doing?")  # fmt: skip


def test_common_words_ground_no_code() -> None:
    def stock(symbol: str) -> ParsedCall:
        return ParsedCall("get_stock_price", {"symbol": symbol})

    assert not grounded(stock("AMZN"), [STOCK], "Amazing, thanks!")  # ends otherwise
    assert not grounded(stock("PFE"), [STOCK], "Perfect.")
    assert not grounded(stock("TSLA"), [STOCK], "Translate this.")
    assert not grounded(stock("USD"), [STOCK], "I used it.")  # two letters longer
    assert not grounded(stock("amzn"), [STOCK], "How's Amazon?")  # no code: lower case
    assert not grounded(stock("GE"), [STOCK], "Great!")  # three letters at least
