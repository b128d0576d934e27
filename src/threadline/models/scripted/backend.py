"""The scripted backend: plays each model call's step as model events (see the package)."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING

from threadline.domain.ids import new_id
from threadline.models import tokens
from threadline.models.base import (
    ChatMessage,
    Finish,
    FinishReason,
    ModelBackend,
    ModelError,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from threadline.models.scripted.directives import scripted_step
from threadline.models.scripted.steps import (
    ErrorStep,
    Handler,
    HangStep,
    Step,
    TextStep,
    ToolCallsStep,
    parse_step,
)

if TYPE_CHECKING:
    from threadline.settings import Settings

DEFAULT_CONTEXT_WINDOW = 128_000


def split_text(text: str, chunks: int | None) -> list[str]:
    """``text`` in ``chunks`` near-equal pieces, or one piece per word (with its spaces)."""
    if not text:
        return []
    if chunks is None:
        pieces = re.findall(r"\s*\S+", text)
        if not pieces:
            return [text]
        pieces[-1] += text[sum(map(len, pieces)) :]
        return pieces
    count = min(chunks, len(text))
    size, extra = divmod(len(text), count)
    bounds = [i * size + min(i, extra) for i in range(count + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(count)]


def _split_arguments(arguments: str) -> list[str]:
    """At least two pieces (when there are two characters to split)."""
    return split_text(arguments, max(2, len(arguments) // 16)) or [""]


class ScriptedBackend(ModelBackend):
    """A ``ModelBackend`` that plays scripted steps (see the module docstring)."""

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        context_window: int = DEFAULT_CONTEXT_WINDOW,
        model_mapping: Mapping[str, str] | None = None,
    ) -> None:
        self._handler = handler
        self._context_window = context_window
        self._mapping = dict(model_mapping or {})
        self.requests: deque[ModelRequest] = deque(maxlen=1000)
        """The latest requests received, oldest first (for assertions)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ScriptedBackend:
        return cls(model_mapping=settings.model_mapping())

    def resolve_model(self, requested: str) -> str:
        return self._mapping.get(requested, requested)

    def context_window(self, model: str) -> int:
        return self._context_window

    def count_tokens(self, model: str, messages: Sequence[ChatMessage]) -> int:
        return tokens.count_messages(model, messages)

    async def warm_up(self) -> None:
        await tokens.load_encoding("gpt-4o")  # o200k_base, the one most names use

    async def _step(self, request: ModelRequest) -> Step:
        if self._handler is None:
            return scripted_step(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        try:
            return parse_step(result)
        except ValueError as exc:
            raise ModelError(f"Invalid scripted step: {exc}", "invalid_prompt") from exc

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        step = await self._step(request)
        if isinstance(step, ToolCallsStep) and request.tool_choice == "none":
            step = TextStep(
                "done",
                delay=step.delay,
                token_delay=step.token_delay,
                prompt_tokens=step.prompt_tokens,
            )
        await tokens.load_encoding(request.model)  # the first build runs off the loop
        prompt = step.prompt_tokens
        if prompt is None:
            prompt = tokens.count_messages(request.model, request.messages)
        if step.delay:
            await asyncio.sleep(step.delay)
        if isinstance(step, ErrorStep):
            raise ModelError(step.message, step.error)
        if isinstance(step, HangStep):
            await asyncio.Event().wait()  # never set: waits until cancelled
            return
        if isinstance(step, TextStep):
            events = self._text(request, step, prompt)
        else:
            events = self._tool_calls(request, step, prompt)
        first = True
        for event in events:
            if step.token_delay and not first and not isinstance(event, Finish):
                await asyncio.sleep(step.token_delay)
            first = False
            yield event

    def _text(self, request: ModelRequest, step: TextStep, prompt: int) -> list[ModelEvent]:
        text = step.text
        completion = step.completion_tokens
        if completion is None:
            completion = tokens.count_text(request.model, text)
        reason: FinishReason = "stop"
        if request.max_tokens is not None and completion > request.max_tokens:
            text = tokens.truncate_text(request.model, text, request.max_tokens)
            completion, reason = request.max_tokens, "length"
        events: list[ModelEvent] = [TextDelta(piece) for piece in split_text(text, step.chunks)]
        events.append(Finish(reason, Usage(prompt, completion)))
        return events

    def _tool_calls(
        self, request: ModelRequest, step: ToolCallsStep, prompt: int
    ) -> list[ModelEvent]:
        calls = list(step.tool_calls)
        if not request.parallel_tool_calls:
            calls = calls[:1]
        events: list[ModelEvent] = []
        counted = 0
        for index, call in enumerate(calls):
            arguments = call.arguments_json
            counted += tokens.count_text(request.model, call.name + arguments)
            events.append(ToolCallDelta(index, id=new_id("tool_call"), name=call.name))
            events.extend(ToolCallDelta(index, arguments=p) for p in _split_arguments(arguments))
        completion = step.completion_tokens if step.completion_tokens is not None else counted
        events.append(Finish("tool_calls", Usage(prompt, completion)))
        return events
