"""Smoke tests: runs on the real 0.5B model through a live server and the official
SDK, as a user of the README's serve command would drive it (slow; ``-m smoke``).
The 0.5B model is quicker than the default 1.5B model, which the last two tests
drive as a new user meets it: a request that needs the tool without naming it,
then a question that needs none.

The weights are assembled once into ``$THREADLINE_DATA_DIR/models`` (default: the
repository's ``data/``); each test session gets its own database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

pytest.importorskip("llama_cpp")

from threadline.settings import Settings
from threadline.testing import serve_in_thread

pytestmark = pytest.mark.smoke

DATA_DIR = Path(os.environ.get("THREADLINE_DATA_DIR", Path(__file__).resolve().parents[2] / "data"))
SUNNY = '{"city": "Paris", "sky": "sunny", "celsius": 21}'
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def local_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("local-sdk") / "threadline.db"
    settings = Settings(
        data_dir=DATA_DIR,
        database_url=f"sqlite+aiosqlite:///{db}",
        model_backend="local",
        local_model="qwen2.5-coder-0.5b",
        api_keys="",
    )
    with serve_in_thread(settings, timeout=120) as url:
        yield url


@pytest.fixture
def local(local_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=local_url, api_key="dev", max_retries=0)


@pytest.fixture(scope="module")
def default_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server on the settings' defaults: the 1.5B model."""
    db = tmp_path_factory.mktemp("local-default") / "threadline.db"
    default_model = Settings.model_fields["local_model"].default  # whatever the env says
    assert default_model == "qwen2.5-coder-1.5b"
    settings = Settings(
        data_dir=DATA_DIR, database_url=f"sqlite+aiosqlite:///{db}", model_backend="local",
        local_model=default_model, api_keys="",
    )  # fmt: skip
    with serve_in_thread(settings, timeout=180) as url:
        yield url


@pytest.fixture
def default(default_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=default_url, api_key="dev", max_retries=0)


def _ask(client: openai.OpenAI, text: str, **assistant: Any) -> tuple[str, str]:
    created = client.beta.assistants.create(model="gpt-4o-mini", **assistant)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return created.id, thread.id


def _reply(client: openai.OpenAI, thread_id: str) -> str:
    message = client.beta.threads.messages.list(thread_id, limit=1).data[0]
    assert message.role == "assistant"
    block = message.content[0]
    assert block.type == "text"
    return block.text.value


def test_plain_answer_completes(local: openai.OpenAI) -> None:
    assistant, thread = _ask(local, "What is the capital of France? Answer in one word.")
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=assistant, temperature=0, poll_interval_ms=200
    )
    assert run.status == "completed", run.last_error
    assert "paris" in _reply(local, thread).lower()
    assert run.usage is not None
    assert run.usage.completion_tokens > 0
    assert run.model.startswith("qwen2.5-coder-0.5b")


def test_forced_call_then_round_trip_to_completed(local: openai.OpenAI) -> None:
    assistant, thread = _ask(local, "What's the weather like in Paris?", tools=[WEATHER])
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread,
        assistant_id=assistant,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        poll_interval_ms=200,
    )
    assert run.status == "requires_action", run.last_error
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["get_weather"]
    arguments = json.loads(calls[0].function.arguments)
    assert isinstance(arguments.get("city"), str)
    assert arguments["city"]
    done = local.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": SUNNY}],
        poll_interval_ms=200,
    )
    assert done.status == "completed", done.last_error
    # How well a 0.5B model words its answer is scored by bench/local_model.py; here
    # the round trip must end in a text answer, not in another call.
    assert _reply(local, thread).strip()
    steps = local.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread, order="asc")
    assert [s.type for s in steps.data] == ["tool_calls", "message_creation"]


def test_general_question_is_answered_without_offering_the_functions(
    local: openai.OpenAI,
) -> None:
    """The tool-need gate: a question no tool helps with is answered as with
    ``tool_choice: "none"`` (the same prompt, so the same prompt tokens), while a
    request for live data is given the function and calls it."""
    usage = {}
    for name, choice in (("gated", "auto"), ("none", "none")):
        assistant, thread = _ask(local, "Explain photosynthesis in one sentence.", tools=[WEATHER])
        run = local.beta.threads.runs.create_and_poll(
            thread_id=thread,
            assistant_id=assistant,
            tool_choice=choice,  # type: ignore[arg-type]
            temperature=0,
            max_completion_tokens=256,
            poll_interval_ms=200,
        )
        assert run.status in ("completed", "incomplete"), run.last_error
        assert run.required_action is None
        assert run.usage is not None
        usage[name] = run.usage.prompt_tokens
        assert _reply(local, thread).strip()
    assert usage["gated"] == usage["none"]
    # "Lisboa" in its arguments is grounded by "Lisbon" in the request.
    asked = _ask(local, "Is it raining in Lisbon right now?", tools=[WEATHER])
    calls = _greedy_calls(local, *asked)
    assert [c.function.name for c in calls] == ["get_weather"]
    assert json.loads(calls[0].function.arguments)["city"].lower().startswith("lisb")


def _greedy_calls(client: openai.OpenAI, assistant: str, thread: str) -> list[Any]:
    """The calls a greedy run stops at (it must stop at ``requires_action``)."""
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=assistant, temperature=0, poll_interval_ms=200
    )
    assert run.status == "requires_action", run.last_error
    assert run.required_action is not None
    return list(run.required_action.submit_tool_outputs.tool_calls)


def _function(name: str, description: str, properties: dict[str, Any]) -> Any:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
            },
        },
    }


def test_a_call_is_routed_to_the_function_the_request_is_about(local: openai.OpenAI) -> None:
    """The tool router: greedy, the model's first pick for this request is the lights
    (with the 20 as a brightness); the thermostat is what it is about."""
    home = [
        _function(
            "control_lights",
            "Switch the lights of a room on or off, optionally dimmed.",
            {"room": {"type": "string"}, "brightness": {"type": "integer"}},
        ),
        _function(
            "set_thermostat",
            "Set the target temperature of a room.",
            {"room": {"type": "string"}, "temperature": {"type": "number"}},
        ),
    ]
    asked = _ask(
        local,
        "The living room is too warm, cool it down to 20.",
        instructions="You are a smart home assistant.",
        tools=home,
    )
    calls = _greedy_calls(local, *asked)
    assert [c.function.name for c in calls] == ["set_thermostat"]
    assert json.loads(calls[0].function.arguments)["temperature"] == 20


def test_an_answer_from_a_result_states_one_of_its_facts(local: openai.OpenAI) -> None:
    """Greedy, the model answers this result with "The bathroom is warm." and would
    end there; the end is held back until the answer carries one of its values."""
    sensor = _function(
        "get_sensor_reading",
        "Read a sensor in a room.",
        {"room": {"type": "string"}, "sensor": {"type": "string"}},
    )
    assistant, thread = _ask(
        local, "How warm is the bathroom?", instructions="You are a smart home assistant.",
        tools=[sensor],
    )  # fmt: skip
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread,
        assistant_id=assistant,
        tool_choice={"type": "function", "function": {"name": "get_sensor_reading"}},
        temperature=0,
        poll_interval_ms=200,
    )
    assert run.status == "requires_action", run.last_error
    assert run.required_action is not None
    [call] = run.required_action.submit_tool_outputs.tool_calls
    done = local.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread,
        tool_outputs=[{"tool_call_id": call.id, "output": '{"value": 24.5, "unit": "C"}'}],
        poll_interval_ms=200,
    )
    assert done.status == "completed", done.last_error
    assert "24.5" in _reply(local, thread)


def test_json_mode_answers_json(local: openai.OpenAI) -> None:
    assistant, thread = _ask(
        local,
        'Give the name and population of Paris as a JSON object with keys "name" and "population".',
        response_format={"type": "json_object"},
    )
    # Greedy: sampled at the default temperature, the 0.5B model once wrote until
    # its context was full and the run ended ``incomplete``.
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=assistant, temperature=0, poll_interval_ms=200
    )
    assert run.status == "completed", run.last_error
    assert isinstance(json.loads(_reply(local, thread)), dict)


def test_long_essay_under_a_budget_ends_incomplete(local: openai.OpenAI) -> None:
    # Greedy decoding, and an essay asked to run far past the budget: the answer
    # cannot end on its own first.
    assistant, thread = _ask(
        local,
        "Write a long, detailed essay of at least 1500 words about the history of Rome, "
        "from its founding to the fall of the Western Empire.",
    )
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread,
        assistant_id=assistant,
        max_completion_tokens=256,
        temperature=0,
        poll_interval_ms=200,
    )
    assert run.status == "incomplete", run.last_error
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage is not None
    assert run.usage.completion_tokens <= 256
    message = local.beta.threads.messages.list(thread, limit=1).data[0]
    assert message.status == "incomplete"


def test_streamed_run_deltas_add_up(local: openai.OpenAI) -> None:
    assistant, thread = _ask(local, "Say hello in three words.")
    deltas: list[str] = []
    with local.beta.threads.runs.stream(thread_id=thread, assistant_id=assistant) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                for part in event.data.delta.content or []:
                    if part.type == "text" and part.text and part.text.value:
                        deltas.append(part.text.value)
        final = stream.get_final_run()
    assert final.status == "completed"
    assert len(deltas) > 1
    assert "".join(deltas) == _reply(local, thread)


def test_answers_from_an_uploaded_file(local: openai.OpenAI) -> None:
    notes = (
        b"# Harbour notes\n\nThe ferry to the island leaves at 7:40 every morning.\n"
        b"The harbour master is called Ingrid Solberg.\n"
    )
    uploaded = local.files.create(file=("harbour.md", notes), purpose="assistants")
    assistant = local.beta.assistants.create(
        model="gpt-4o-mini",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [uploaded.id]}]}},
    )
    assert assistant.tool_resources is not None
    assert assistant.tool_resources.file_search is not None
    [store_id] = assistant.tool_resources.file_search.vector_store_ids or []
    held = local.vector_stores.files.poll(uploaded.id, vector_store_id=store_id)
    assert held.status == "completed", held.last_error
    thread = local.beta.threads.create(
        messages=[{"role": "user", "content": "When does the ferry to the island leave?"}]
    )
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice={"type": "file_search"},
        temperature=0,
        poll_interval_ms=200,
    )
    assert run.status == "completed", run.last_error
    steps = local.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert steps[0].step_details.type == "tool_calls"
    [call] = steps[0].step_details.tool_calls
    assert call.type == "file_search"
    assert "7:40" in _reply(local, thread.id)


def test_an_implicit_need_is_called_and_answered_from_its_result(default: openai.OpenAI) -> None:
    assistant = default.beta.assistants.create(
        model="gpt-4o-mini", instructions="You are a travel assistant.", tools=[WEATHER]
    )
    thread = default.beta.threads.create(
        messages=[{"role": "user", "content": "Is it raining in Lisbon right now?"}]
    )
    run = default.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, temperature=0, poll_interval_ms=200
    )
    assert run.status == "requires_action", run.last_error
    assert run.model.startswith("qwen2.5-coder-1.5b")
    assert run.required_action is not None
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather"
    assert "lisb" in json.loads(call.function.arguments)["city"].lower()
    done = default.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": '{"sky": "light rain", "temp_c": 14}'}],
        poll_interval_ms=200,
    )
    assert done.status == "completed", done.last_error
    reply = _reply(default, thread.id)
    assert "14" in reply
    assert "rain" in reply.lower()


def test_a_general_question_is_answered_in_text(default: openai.OpenAI) -> None:
    assistant = default.beta.assistants.create(model="gpt-4o-mini", tools=[WEATHER])
    thread = default.beta.threads.create(
        messages=[{"role": "user", "content": "What is the capital of France? One word."}]
    )
    run = default.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, temperature=0, poll_interval_ms=200
    )
    assert run.status == "completed", run.last_error
    assert run.required_action is None
    assert "paris" in _reply(default, thread.id).lower()
