"""Unit tests of the local backend's pure parts: prompts, call parsing, grammars, assembly."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from threadline.models.base import (
    ChatMessage,
    FunctionTool,
    ModelError,
    ModelRequest,
    NamedToolChoice,
    ToolCall,
)
from threadline.models.local import assets as local_assets
from threadline.models.local.calls import ParsedCall, matches_schema, parse_tool_calls
from threadline.models.local.grammar import calls_grammar, json_grammar
from threadline.models.local.planning import plan_request
from threadline.models.local.policy import (
    acts_on,
    adds_information,
    all_repeats,
    grounded,
    may_want_more_calls,
)
from threadline.models.local.prompt import (
    ANSWER_HINT,
    DEFAULT_SYSTEM,
    format_call,
    render_answer,
    render_chatml,
)
from threadline.models.local.sampling import Sampling, sample_token, sampling_for
from threadline.models.local.stream import AnswerStream, MarkerSplitter, classify_start

WEATHER = FunctionTool(
    name="get_weather",
    description="Current weather for a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
)
TIME = FunctionTool(name="get_time", parameters={"type": "object", "properties": {}})
TOOLS = [WEATHER, TIME]
HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
needs_llama = pytest.mark.skipif(not HAS_LLAMA, reason="llama-cpp-python not installed")


# --------------------------------------------------------------------------- prompt


def test_render_plain_conversation_uses_default_system() -> None:
    prompt = render_chatml([ChatMessage("user", "Hi")])
    assert prompt == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_render_tools_block_and_merged_system() -> None:
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("system", "Be kind."),
        ChatMessage("user", "Weather in Oslo?"),
    ]
    prompt = render_chatml(messages, TOOLS)
    system = prompt.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nBe brief.\n\nBe kind.\n\n# Tools")
    tools_block = system.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line)["function"]["name"] for line in tools_block] == [
        "get_weather",
        "get_time",
    ]
    assert json.loads(tools_block[1])["function"]["parameters"] == {
        "type": "object",
        "properties": {},
    }
    assert "<tool_call></tool_call> XML tags" in system
    assert prompt.count("<|im_start|>system") == 1


def test_render_tool_round_trip_with_answer_hint() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Oslo"}')
    messages = [
        ChatMessage("user", "Weather in Oslo?"),
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage("tool", '{"temp": 3}', tool_call_id="call_1"),
        ChatMessage("tool", "sunny", tool_call_id="call_1"),
    ]
    prompt = render_chatml(messages, TOOLS, answer_hint=True)
    assert (
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call><|im_end|>' in prompt
    )
    turn = prompt.split("<|im_start|>user\n")[-1]
    assert turn.startswith(
        '<tool_response>\n{"temp": 3}\n</tool_response>\n<tool_response>\nsunny\n'
    )
    hint = ANSWER_HINT.format(question="Weather in Oslo?")
    assert turn.endswith(f"</tool_response>\n{hint}<|im_end|>\n<|im_start|>assistant\n")
    assert hint not in render_chatml(messages, TOOLS)


def test_answer_prompt_puts_the_results_in_the_question() -> None:
    paris = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    rome = ToolCall(id="call_2", name="get_weather", arguments='{"city": "Rome"}')
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hello"),
        ChatMessage("assistant", "Hi!"),
        ChatMessage("user", "Weather in Paris and Rome?"),
        ChatMessage("assistant", None, tool_calls=(paris, rome)),
        ChatMessage("tool", '{"temp": 18}', tool_call_id="call_1"),
        ChatMessage("tool", '{"temp": 24}', tool_call_id="call_2"),
    ]
    prompt = render_answer(messages)
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert "<tools>" not in prompt
    assert "<tool_call>" not in prompt
    assert "<tool_response>" not in prompt
    assert "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi!<|im_end|>" in prompt
    last = prompt.split("<|im_start|>user\n")[-1]
    assert last.startswith("Weather in Paris and Rome?\n")
    assert 'get_weather(city="Paris") returned:\ntemp: 18\n' in last
    assert 'get_weather(city="Rome") returned:\ntemp: 24\n' in last
    assert "Give the exact values they contain" in last
    assert last.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_plan_answers_from_results_only_in_auto_mode() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Oslo"}')
    messages = [
        ChatMessage("user", "Weather in Oslo?"),
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage("tool", '{"temp": 3}', tool_call_id="call_1"),
    ]
    auto = plan_request(ModelRequest("m", messages, tools=TOOLS))
    assert auto.after_tool_results
    assert auto.answer_prompt is not None
    assert 'get_weather(city="Oslo") returned:\ntemp: 3' in auto.answer_prompt
    forced = plan_request(ModelRequest("m", messages, tools=TOOLS, tool_choice="required"))
    assert forced.answer_prompt is None
    before = plan_request(ModelRequest("m", messages[:1], tools=TOOLS))
    assert before.answer_prompt is None


def test_format_call_keeps_invalid_argument_text() -> None:
    assert format_call("f", "not json").endswith('"arguments": not json}\n</tool_call>')
    assert '"arguments": {}' in format_call("f", "")


def test_plan_modes() -> None:
    msgs = [ChatMessage("user", "hi")]
    assert plan_request(ModelRequest("m", msgs)).mode == "text"
    assert plan_request(ModelRequest("m", msgs, tools=TOOLS)).mode == "auto"
    none = plan_request(ModelRequest("m", msgs, tools=TOOLS, tool_choice="none"))
    assert none.mode == "text"
    assert "<tools>" not in none.prompt
    assert (
        plan_request(ModelRequest("m", msgs, tools=TOOLS, tool_choice="required")).mode == "forced"
    )
    named = plan_request(
        ModelRequest("m", msgs, tools=TOOLS, tool_choice=NamedToolChoice("get_time"))
    )
    assert named.mode == "forced"
    assert [t.name for t in named.tools] == ["get_time"]
    assert '"get_weather"' in named.prompt  # the model still sees every tool
    with pytest.raises(ModelError):
        plan_request(ModelRequest("m", msgs, tools=TOOLS, tool_choice=NamedToolChoice("nope")))
    json_plan = plan_request(ModelRequest("m", msgs, response_format={"type": "json_object"}))
    assert json_plan.json_mode
    assert "JSON object" in json_plan.prompt


def test_plan_after_tool_results_remembers_calls() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city":"Oslo"}')
    msgs = [
        ChatMessage("user", "w?"),
        ChatMessage("assistant", tool_calls=(call,)),
        ChatMessage("tool", "3C", tool_call_id="call_1"),
    ]
    plan = plan_request(ModelRequest("m", msgs, tools=TOOLS))
    assert plan.after_tool_results
    assert plan.question == "w?"
    assert plan.turn_functions == {"get_weather"}
    assert "3C" not in plan.context
    assert ANSWER_HINT.format(question="w?") in plan.prompt
    assert all_repeats([ParsedCall("get_weather", {"city": "Oslo"})], plan.previous_calls)
    assert not all_repeats([ParsedCall("get_weather", {"city": "Rome"})], plan.previous_calls)
    assert not all_repeats([], plan.previous_calls)


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "undecided"),
        ("  \n", "undecided"),
        ("<tool", "undecided"),
        ("<tool_call>", "call"),
        ("{", "undecided"),
        ('{"na', "undecided"),
        ('{"name": "x"', "call"),
        ('{\n  "function"', "call"),
        ("```", "undecided"),
        ("```json\n{", "undecided"),
        ('```json\n{"name"', "call"),
        ("```python\nprint(1)", "text"),
        ('[{"name"', "call"),
        ("The weather", "text"),
        ('{"answer": 1}', "text"),
        ("[1, 2]", "text"),
    ],
)
def test_classify_start(text: str, kind: str) -> None:
    assert classify_start(text) == kind


def test_marker_splitter_holds_back_partial_marker() -> None:
    s = MarkerSplitter()
    assert s.feed("Hello <") == "Hello "
    assert s.feed("b>") == "<b>"
    assert s.feed(" x <tool_") == " x "
    assert s.feed('call>{"a"') == ""
    assert s.captured == '<tool_call>{"a"'
    assert s.feed("}") == ""
    assert s.captured.endswith("}")
    t = MarkerSplitter()
    assert t.feed("a <tool") == "a "
    assert t.flush() == "<tool"


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}',
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}',
        '{"name": "get_weather", "parameters": {"city": "Oslo"}}',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}',
        '```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```',
        '[{"name": "get_weather", "arguments": {"city": "Oslo"}}]',
        '{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}',
        '{"function": "get_weather", "args": {"city": "Oslo"}}',
    ],
)
def test_parse_single_call_formats(text: str) -> None:
    assert parse_tool_calls(text, TOOLS) == [ParsedCall("get_weather", {"city": "Oslo"})]


def test_parse_parallel_calls() -> None:
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    )
    calls = parse_tool_calls(text, TOOLS)
    assert calls is not None
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    bare = '{"name": "get_time", "arguments": {}}\n{"name": "get_time", "arguments": {}}'
    assert len(parse_tool_calls(bare, TOOLS) or []) == 2
    listed = '[{"name": "get_time"}, {"name": "get_weather", "arguments": {"city": "A"}}]'
    assert len(parse_tool_calls(listed, TOOLS) or []) == 2


@pytest.mark.parametrize(
    "text",
    [
        "The weather is fine.",
        '{"name": "unknown_tool", "arguments": {}}',
        '{"name": "get_weather", "arguments": {}}',  # missing required city
        '{"name": "get_weather", "arguments": {"city": 3}}',
        '{"name": "get_weather", "arguments": {"city": "A", "unit": "kelvin"}}',
        '{"name": "get_weather", "arguments": [1]}',
        '{"name": "get_weather", "arguments": "not json"}',
        '<tool_call>{"name": "get_weather", "arguments": {"city": ',
        '{"answer": 42}',
        "",
    ],
)
def test_parse_rejects(text: str) -> None:
    assert parse_tool_calls(text, TOOLS) is None


@pytest.mark.parametrize(
    ("value", "schema", "ok"),
    [
        (1, {"type": "integer"}, True),
        (1.5, {"type": "integer"}, False),
        (2.0, {"type": "integer"}, True),
        (True, {"type": "number"}, False),
        (None, {"type": ["string", "null"]}, True),
        ("ab", {"type": "string", "maxLength": 1}, False),
        ([1, 2], {"type": "array", "items": {"type": "integer"}, "minItems": 3}, False),
        ([1, "a"], {"type": "array", "items": {"type": "integer"}}, False),
        (
            {"a": 1, "b": 2},
            {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
            False,
        ),
        ({"a": 1}, {"type": "object", "required": ["a"]}, True),
        (5, {"type": "number", "minimum": 6}, False),
        ("x", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, True),
        ("x", {"const": "y"}, False),
        ({"a": "x"}, {"$ref": "#/defs/whatever"}, True),
    ],
)
def test_matches_schema(value: Any, schema: dict[str, Any], ok: bool) -> None:
    assert matches_schema(value, schema) is ok


def test_schema_keywords_beyond_the_basics_are_checked() -> None:
    city = {"type": "object", "properties": {"city": {"type": "string", "pattern": "^[A-Z]"}}}
    assert matches_schema({"city": "Paris"}, city)
    assert not matches_schema({"city": "paris"}, city)
    local = {"$defs": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}
    assert matches_schema([1, 2], local)
    assert not matches_schema([1, "2"], local)


def test_schemas_that_cannot_be_compiled_accept_everything() -> None:
    remote = {"$ref": "http://127.0.0.1:9/never-fetched.json"}
    assert matches_schema({"a": 1}, remote)
    assert matches_schema("x", {"type": "no-such-type"})
    assert matches_schema(1, "not a schema")


# --------------------------------------------------------------------------- grammars


@needs_llama
def test_calls_grammar_shapes() -> None:
    single = calls_grammar(TOOLS, parallel=False)
    assert single.splitlines()[0] == "root ::= call"
    assert '\\"name\\": \\"get_weather\\"' in single
    assert '\\"name\\": \\"get_time\\"' in single
    parallel = calls_grammar([WEATHER], parallel=True)
    assert parallel.splitlines()[0] == 'root ::= call ( "\\n" call )*'
    assert "get_time" not in parallel
    with pytest.raises(ValueError, match="at least one tool"):
        calls_grammar([], parallel=True)


@needs_llama
def test_json_grammar() -> None:
    assert "\nroot ::= " in json_grammar({"type": "json_object"})
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    text = json_grammar({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert "root ::=" in text
    assert '\\"n\\"' in text


# --------------------------------------------------------------------------- policy


def test_grounding() -> None:
    context = "What's the weather in Paris? Also send it to bob@x.com"
    assert grounded(ParsedCall("get_weather", {"city": "Paris"}), TOOLS, context)
    assert not grounded(ParsedCall("get_weather", {"city": "London"}), TOOLS, context)
    # enum values are not free-form: only the city counts
    assert grounded(ParsedCall("get_weather", {"city": "paris", "unit": "celsius"}), TOOLS, context)
    assert grounded(ParsedCall("get_time", {}), TOOLS, context)
    email = FunctionTool("send_email", parameters={"type": "object"})
    loose = ParsedCall("send_email", {"to": "bob@x.com", "body": "The weather in Paris is nice"})
    assert grounded(loose, [email], context)
    assert not grounded(loose, [email], context, strict=True)


def test_grounding_allows_a_place_spelt_as_it_is_there_or_a_typo() -> None:
    weather = ParsedCall("get_weather", {"city": "Lisboa"})
    assert grounded(weather, TOOLS, "Is it raining in Lisbon right now?")
    assert grounded(ParsedCall("get_weather", {"city": "Barcelona"}), TOOLS, "weather in Barcelna")
    # Not a neighbour: other first letters, short words, two edits, or strictly.
    assert not grounded(ParsedCall("get_weather", {"city": "Lisbon"}), TOOLS, "weather in Gisbon")
    assert not grounded(ParsedCall("get_weather", {"city": "Rome"}), TOOLS, "weather in Roma")
    assert not grounded(ParsedCall("get_weather", {"city": "Lisboa"}), TOOLS, "weather in Lisbin")
    assert not grounded(weather, TOOLS, "Is it raining in Lisbon right now?", strict=True)


def test_adds_information() -> None:
    context = "Weather in Paris and London?"
    paris = ParsedCall("get_weather", {"city": "Paris"})
    london = ParsedCall("get_weather", {"city": "London"})
    assert adds_information(london, [paris], TOOLS, context)
    assert not adds_information(paris, [paris], TOOLS, context)
    assert not adds_information(
        ParsedCall("get_weather", {"city": "paris", "unit": "celsius"}), [paris], TOOLS, context
    )
    assert not adds_information(
        ParsedCall("get_weather", {"city": "Rome"}), [paris], TOOLS, context
    )


def test_may_want_more_calls() -> None:
    assert may_want_more_calls("Weather in Paris and London?")
    assert may_want_more_calls("Check orders A1, B2")
    assert not may_want_more_calls("What's the weather in Paris?")


def test_sampling_calibration_and_greedy() -> None:
    np = pytest.importorskip("numpy")
    default = sampling_for(ModelRequest("m", []))
    assert (default.temperature, default.top_p) == (0.7, 0.8)
    assert sampling_for(ModelRequest("m", [], temperature=1.0, top_p=1.0)) == default
    greedy = sampling_for(ModelRequest("m", [], temperature=0, top_p=2))
    assert (greedy.temperature, greedy.top_p) == (0.0, 0.8)
    assert default.structured().temperature == 0.0
    ids = np.array([5, 9, 7], dtype=np.intc)
    logits = np.array([3.0, 2.0, 1.0], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert sample_token(ids, logits, Sampling(0.0, 1.0), rng) == 5
    assert sample_token(ids, logits, Sampling(1.0, 0.01), rng) == 5  # top_p keeps only the best
    picks = {sample_token(ids, logits, Sampling(1.0, 1.0, min_p=0.0), rng) for _ in range(200)}
    assert picks == {5, 9, 7}
    close = np.array([2.05, 2.0, 1.0], dtype=np.float32)
    assert sample_token(ids, close, Sampling(0.0, 1.0), rng, recent=[5]) == 9  # penalised


def test_answer_stream_screens_calls() -> None:
    shown: list[str] = []
    stream = AnswerStream(shown.append, screen=True, split=True, give_up=True)
    assert stream.feed("```")
    assert shown == []
    assert not stream.feed('json\n{"name"')
    assert stream.turned_to_call
    shown.clear()
    text = AnswerStream(shown.append, screen=True, split=True, give_up=True)
    assert text.feed("```")
    assert text.feed("python\nprint(1)\n")
    assert text.feed("``` and <tool_call>{}")
    text.close()
    assert "".join(shown) == "```python\nprint(1)\n``` and "
    assert text.splitter.captured == "<tool_call>{}"


# --------------------------------------------------------------------------- assembly


def _variant(parts: list[Path], sha: str) -> local_assets.ModelVariant:
    return local_assets.ModelVariant(
        key="tiny",
        served_name="tiny-q4",
        filename="tiny.gguf",
        sha256=sha,
        part_modules=tuple(str(p) for p in parts),
        extra="local",
    )


def _fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    parts = []
    for i, data in enumerate([b"abc" * 1000, b"def" * 10, b"g"]):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(data)
        parts.append(part)
    monkeypatch.setattr(
        local_assets, "part_paths", lambda variant: [Path(m) for m in variant.part_modules]
    )
    return parts


def test_assembly_verifies_and_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = _fake_parts(tmp_path, monkeypatch)
    whole = b"".join(p.read_bytes() for p in parts)
    variant = _variant(parts, hashlib.sha256(whole).hexdigest())
    models = tmp_path / "models"
    path = local_assets.ensure_model_file(variant, models)
    assert path == models / "tiny.gguf"
    assert path.read_bytes() == whole
    assert "sha256 verified" in capsys.readouterr().err
    parts[0].unlink()  # a later start does not need the parts any more
    assert local_assets.ensure_model_file(variant, models) == path


def test_assembly_checksum_mismatch_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _fake_parts(tmp_path, monkeypatch)
    models = tmp_path / "models"
    with pytest.raises(local_assets.ModelAssetError, match="damaged"):
        local_assets.ensure_model_file(_variant(parts, "0" * 64), models, progress=False)
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_missing_parts_name_the_extra() -> None:
    variant = local_assets.ModelVariant(
        key="x",
        served_name="x",
        filename="x.gguf",
        sha256="0",
        part_modules=("threadline_no_such_part_module",),
        extra="local",
    )
    with pytest.raises(local_assets.ModelAssetError, match=r"threadline\[local\]"):
        local_assets.part_paths(variant)


def test_find_variant() -> None:
    assert (
        local_assets.find_variant("qwen2.5-coder-0.5b")
        is local_assets.VARIANTS["qwen2.5-coder-0.5b"]
    )
    assert (
        local_assets.find_variant("Qwen2.5-Coder-1.5B-Instruct-Q4_K_M")
        is local_assets.VARIANTS["qwen2.5-coder-1.5b"]
    )
    assert local_assets.find_variant("gpt-4o") is None


def test_a_call_acts_on_a_message_that_names_one_of_its_values() -> None:
    reading = ParsedCall("get_sensor_reading", {"room": "living_room", "sensor": "humidity"})
    assert acts_on(reading, "What about humidity there?")  # an enum value
    assert acts_on(reading, "And the living room?")  # "living_room" by its words
    assert not acts_on(reading, "Thanks! Say goodbye.")
    assert acts_on(ParsedCall("get_stock_price", {"symbol": "MSFT"}), "And Microsoft?")
    assert not acts_on(ParsedCall("get_stock_price", {"symbol": "MSFT"}), "And Apple?")
    assert not acts_on(ParsedCall("get_stock_price", {"symbol": "AMZN"}), "Amazing, thanks!")
    assert not acts_on(ParsedCall("get_current_time", {}), "Good morning!")
    dimmed = ParsedCall("control_lights", {"room": "hall", "brightness": 20, "on": True})
    assert acts_on(dimmed, "make it 20")
    assert not acts_on(dimmed, "make it 200")  # a number as a whole, booleans not at all
