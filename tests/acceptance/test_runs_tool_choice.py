"""A forced tool choice (``required`` or a named function) forces the run's first
model call only: once the outputs are in, the model may answer and the run ends."""

from __future__ import annotations

import openai
import pytest

from tests.support.runs import POLL_MS, WEATHER, new_assistant


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_forced_call_then_answer(client: openai.OpenAI, choice: object) -> None:
    assistant = new_assistant(client, tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Paris?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant,
        tool_choice=choice,  # type: ignore[arg-type]
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    assert call.function.name == "get_weather"
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        poll_interval_ms=POLL_MS,
    )
    assert done.status == "completed"
    assert done.tool_choice == run.tool_choice
    reply = client.beta.threads.messages.list(thread.id, limit=1).data[0]
    assert reply.role == "assistant"
    assert reply.content[0].type == "text"
    assert reply.content[0].text.value == "You said: Paris?"
