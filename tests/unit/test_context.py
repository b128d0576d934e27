"""What one model call of a run is given: the completion budget is the run's, each
call gets what is left of it, capped by what the context window still holds."""

from __future__ import annotations

from typing import Any

import pytest

from threadline.engine.context import PromptTooLarge, prepare
from threadline.models.scripted import ScriptedBackend

WINDOW = 8192


def _run(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "instructions": "Be brief.", "tools": [], **fields}


def _message(text: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "role": "user",
        "status": "completed",
        "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
    }


def _prepare(
    history: list[dict[str, Any]], completion: int | None, prompt: int | None = None
) -> Any:
    backend = ScriptedBackend(context_window=WINDOW)
    return prepare(_run(), history, [], [], backend, completion, prompt)


@pytest.mark.parametrize("budget", [8_180, 8_192, 127_990, 200_000])
def test_a_budget_over_the_window_gets_what_the_context_holds(budget: int) -> None:
    prepared = _prepare([_message("hello there")], budget)
    assert prepared.prompt_tokens < 50
    assert prepared.request.max_tokens == WINDOW - prepared.prompt_tokens


def test_a_small_budget_is_given_whole() -> None:
    prepared = _prepare([_message("hello there")], 10)
    assert prepared.request.max_tokens == 10


def test_no_budget_leaves_the_answer_unbounded() -> None:
    assert _prepare([_message("hello there")], None).request.max_tokens is None


def test_a_large_budget_does_not_push_old_messages_out() -> None:
    history = [_message("word " * 1500), _message("word " * 1500), _message("last")]
    prepared = _prepare(history, 200_000)
    assert len(prepared.request.messages) == 4  # the instructions and all three
    assert prepared.request.max_tokens == WINDOW - prepared.prompt_tokens


def test_a_prompt_filling_the_window_still_fails_to_fit() -> None:
    with pytest.raises(PromptTooLarge) as caught:
        _prepare([_message("word " * 9000)], 200_000)
    assert caught.value.budget == "context_window"
