"""Smoke tests: the default embedded model (1.5B), through a live server on the
server's defaults and the official SDK, as a user of the README's serve command
meets it first (slow; ``-m smoke``): a request that needs the tool without naming
it, the answer from the tool's result, and a question that needs no tool.
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
    db = tmp_path_factory.mktemp("local-default") / "threadline.db"
    settings = Settings(
        data_dir=DATA_DIR,
        database_url=f"sqlite+aiosqlite:///{db}",
        model_backend="local",
        api_keys="",
    )
    assert settings.local_model == "qwen2.5-coder-1.5b"
    with serve_in_thread(settings, timeout=180) as url:
        yield url


@pytest.fixture
def local(local_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=local_url, api_key="dev", max_retries=0)


def _reply(client: openai.OpenAI, thread_id: str) -> str:
    message = client.beta.threads.messages.list(thread_id, limit=1).data[0]
    assert message.role == "assistant"
    block = message.content[0]
    assert block.type == "text"
    return block.text.value


def test_an_implicit_need_is_called_and_answered_from_its_result(local: openai.OpenAI) -> None:
    assistant = local.beta.assistants.create(
        model="gpt-4o-mini", instructions="You are a travel assistant.", tools=[WEATHER]
    )
    thread = local.beta.threads.create(
        messages=[{"role": "user", "content": "Is it raining in Lisbon right now?"}]
    )
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, temperature=0, poll_interval_ms=200
    )
    assert run.status == "requires_action", run.last_error
    assert run.model.startswith("qwen2.5-coder-1.5b")
    assert run.required_action is not None
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather"
    assert "lisb" in json.loads(call.function.arguments)["city"].lower()
    done = local.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": '{"sky": "light rain", "temp_c": 14}'}],
        poll_interval_ms=200,
    )
    assert done.status == "completed", done.last_error
    reply = _reply(local, thread.id)
    assert "14" in reply
    assert "rain" in reply.lower()


def test_a_general_question_is_answered_in_text(local: openai.OpenAI) -> None:
    assistant = local.beta.assistants.create(model="gpt-4o-mini", tools=[WEATHER])
    thread = local.beta.threads.create(
        messages=[{"role": "user", "content": "What is the capital of France? One word."}]
    )
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, temperature=0, poll_interval_ms=200
    )
    assert run.status == "completed", run.last_error
    assert run.required_action is None
    assert "paris" in _reply(local, thread.id).lower()
