"""Smoke test: the real 0.5B model writes code that code_interpreter runs in the
sandbox, then answers from its output (slow; ``-m smoke``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

pytest.importorskip("llama_cpp")

from openai.types.beta.threads.runs import CodeInterpreterToolCall

from threadline.settings import Settings
from threadline.testing import serve_in_thread

pytestmark = pytest.mark.smoke

DATA_DIR = Path(os.environ.get("THREADLINE_DATA_DIR", Path(__file__).resolve().parents[2] / "data"))


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    db = tmp_path_factory.mktemp("local-code") / "threadline.db"
    settings = Settings(
        data_dir=DATA_DIR,
        database_url=f"sqlite+aiosqlite:///{db}",
        model_backend="local",
        local_model="qwen2.5-coder-0.5b",
        api_keys="",
    )
    with serve_in_thread(settings, timeout=120) as url:
        client = openai.OpenAI(base_url=url, api_key="dev", max_retries=0)
        yield client
        client.close()


def test_the_model_computes_with_code_interpreter(local: openai.OpenAI) -> None:
    assistant = local.beta.assistants.create(
        model="gpt-4o-mini", tools=[{"type": "code_interpreter"}]
    )
    thread = local.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Use Python to compute the sum of the squares of the integers "
                "from 1 to 100.",
            }
        ]
    )
    run = local.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice={"type": "code_interpreter"},
        temperature=0,
        poll_interval_ms=200,
    )
    assert run.status == "completed", run.last_error
    steps = local.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc")
    assert [s.type for s in steps.data] == ["tool_calls", "message_creation"]
    [call] = steps.data[0].step_details.tool_calls  # type: ignore[union-attr]
    assert isinstance(call, CodeInterpreterToolCall)
    logs = "".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")
    assert "338350" in logs
    reply = local.beta.threads.messages.list(thread.id, limit=1).data[0]
    assert reply.content[0].type == "text"
    assert reply.content[0].text.value.strip()
