"""The scripted backend: a model whose every reply is dictated by the test.

Run a server with ``THREADLINE_MODEL_BACKEND=scripted`` to test your own app
against threadline with no real model. There are two ways to script it.

1. Directives in the conversation, from any client in any language: make the
   latest ``user`` message a JSON object ``{"scripted": [step, ...]}``. Model call
   N after that message plays step N, where N is the number of assistant messages
   (with text or tool calls) since it; so the same conversation always gives the
   same step, also after a restart. Past the end, a last text step repeats;
   anything else ends with the text ``"done"``::

       client.beta.threads.messages.create(thread.id, role="user", content=json.dumps({
           "scripted": [
               {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
               {"text": "It is sunny in Paris.", "chunks": 3, "token_delay": 0.05},
           ]
       }))

2. In Python, ``ScriptedBackend(handler)``: ``handler(request)`` returns (or
   awaits) a step, as a dataclass or in its JSON shape::

       def handler(request: ModelRequest) -> Step:
           if request.messages[-1].role == "tool":
               return TextStep("It is sunny in Paris.")
           return ToolCallsStep([ScriptedCall("get_weather", {"city": "Paris"})])

       backend = ScriptedBackend(handler)

Steps (JSON keys = dataclass fields):

- ``{"text": "...", "chunks": 3}``: reply text in 3 deltas (default: one per word);
  a bare string is short for ``{"text": ...}``.
- ``{"tool_calls": [{"name": "f", "arguments": {...} or "raw json"}]}``.
- ``{"error": "rate_limit_exceeded" | "server_error" | "invalid_prompt",
  "message": "..."}``: the call fails with ``ModelError``.
- ``{"hang": true}``: waits until cancelled.
- On any step: ``"delay"`` (seconds before the first event), ``"token_delay"``
  (seconds between deltas), ``"prompt_tokens"``, ``"completion_tokens"`` (usage;
  counted with tiktoken by default).

With no directive the reply is ``"You said: <last user message>"``, or, when
``tool_choice`` is ``required`` or names a function, a call of that (or the first)
function with ``{}``. ``max_tokens`` cuts text (finish reason ``length``);
``tool_choice="none"`` turns tool calls into the text ``"done"``;
``parallel_tool_calls=False`` keeps only the first call.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import secrets
import string
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

from threadline.models import tokens
from threadline.models.base import (
    ChatMessage,
    ErrorCode,
    Finish,
    FinishReason,
    ModelBackend,
    ModelError,
    ModelEvent,
    ModelRequest,
    NamedToolChoice,
    TextDelta,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from threadline.settings import Settings

DIRECTIVE_KEY = "scripted"
DEFAULT_CONTEXT_WINDOW = 128_000
_ALPHANUM = string.ascii_letters + string.digits
_ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


@dataclass(frozen=True, kw_only=True)
class StepOptions:
    """Timing and usage, common to every step."""

    delay: float = 0.0
    token_delay: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class TextStep(StepOptions):
    text: str
    chunks: int | None = None


@dataclass(frozen=True)
class ScriptedCall:
    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class ToolCallsStep(StepOptions):
    tool_calls: Sequence[ScriptedCall]


@dataclass(frozen=True)
class ErrorStep(StepOptions):
    error: ErrorCode = "server_error"
    message: str = "The scripted model failed."


@dataclass(frozen=True)
class HangStep(StepOptions):
    pass


Step = TextStep | ToolCallsStep | ErrorStep | HangStep
StepLike = Step | Mapping[str, Any] | str
Handler = Callable[[ModelRequest], StepLike | Awaitable[StepLike]]


# ----------------------------------------------------------------------- parsing


def _number(raw: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key!r} must be a non-negative number")
    if kind is int and not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer")
    return value


def _options(raw: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "delay": float(_number(raw, "delay", float) or 0),
        "token_delay": float(_number(raw, "token_delay", float) or 0),
        "prompt_tokens": _number(raw, "prompt_tokens", int),
        "completion_tokens": _number(raw, "completion_tokens", int),
    }
    return options


def _call(raw: Any) -> ScriptedCall:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise ValueError('each tool call needs a "name" string')
    unknown = set(raw) - {"name", "arguments"}
    if unknown:
        raise ValueError(f"unknown tool call keys: {sorted(unknown)}")
    arguments = raw.get("arguments", {})
    if not isinstance(arguments, Mapping | str):
        raise ValueError('"arguments" must be an object or a string')
    return ScriptedCall(raw["name"], arguments)


def parse_step(raw: StepLike) -> Step:
    """A step from its JSON shape (a dataclass step is returned as is).

    Raises ``ValueError`` on an unknown kind, an unknown key or a wrong type.
    """
    if isinstance(raw, TextStep | ToolCallsStep | ErrorStep | HangStep):
        return raw
    if isinstance(raw, str):
        return TextStep(raw)
    if not isinstance(raw, Mapping):
        raise ValueError(f"a step must be an object, got {type(raw).__name__}")
    kinds = [key for key in ("text", "tool_calls", "error", "hang") if key in raw]
    if len(kinds) != 1:
        raise ValueError('a step needs exactly one of "text", "tool_calls", "error", "hang"')
    kind = kinds[0]
    allowed = {kind, *StepOptions.__dataclass_fields__}
    allowed |= {"text": {"chunks"}, "error": {"message"}}.get(kind, set())
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"unknown keys in a {kind!r} step: {sorted(unknown)}")
    options = _options(raw)
    if kind == "text":
        if not isinstance(raw["text"], str):
            raise ValueError('"text" must be a string')
        chunks = _number(raw, "chunks", int)
        if chunks == 0:
            raise ValueError('"chunks" must be at least 1')
        return TextStep(raw["text"], chunks, **options)
    if kind == "tool_calls":
        calls = raw["tool_calls"]
        if not isinstance(calls, list) or not calls:
            raise ValueError('"tool_calls" must be a non-empty list')
        return ToolCallsStep([_call(call) for call in calls], **options)
    if kind == "error":
        if raw["error"] not in _ERROR_CODES:
            raise ValueError(f'"error" must be one of {list(_ERROR_CODES)}')
        message = raw.get("message", ErrorStep.message)
        if not isinstance(message, str):
            raise ValueError('"message" must be a string')
        return ErrorStep(raw["error"], message, **options)
    if raw["hang"] is not True:
        raise ValueError('"hang" must be true')
    return HangStep(**options)


def directive(*steps: Mapping[str, Any] | str) -> str:
    """The user message content that scripts the next model calls, in order."""
    return json.dumps({DIRECTIVE_KEY: list(steps)}, ensure_ascii=False)


# ----------------------------------------------------------------------- choosing


def _last_user_index(messages: Sequence[ChatMessage]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return index
    return None


def directive_steps(messages: Sequence[ChatMessage]) -> tuple[list[Any], int] | None:
    """The raw steps of the latest user message's directive and the step to play.

    ``None`` when that message is not a directive. Raises ``ValueError`` when it
    is one whose ``"scripted"`` value is not a list.
    """
    index = _last_user_index(messages)
    if index is None:
        return None
    content = (messages[index].content or "").strip()
    if not content.startswith("{"):
        return None
    try:
        document = json.loads(content)
    except ValueError:
        return None
    if not isinstance(document, dict) or DIRECTIVE_KEY not in document:
        return None
    steps = document[DIRECTIVE_KEY]
    if not isinstance(steps, list):
        raise ValueError(f'"{DIRECTIVE_KEY}" must be a list of steps')
    played = sum(
        1
        for message in messages[index + 1 :]
        if message.role == "assistant" and (message.content or message.tool_calls)
    )
    return steps, played


def default_step(request: ModelRequest) -> Step:
    """What the backend does with no directive (deterministic)."""
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        return ToolCallsStep([ScriptedCall(choice.name)])
    if choice == "required" and request.tools:
        return ToolCallsStep([ScriptedCall(request.tools[0].name)])
    index = _last_user_index(request.messages)
    said = (request.messages[index].content or "") if index is not None else ""
    return TextStep(f"You said: {said}")


def scripted_step(request: ModelRequest) -> Step:
    """The step the conversation dictates: its directive's, else the default.

    Raises ``ModelError`` (``invalid_prompt``) for a malformed directive.
    """
    try:
        found = directive_steps(request.messages)
        if found is None:
            return default_step(request)
        steps, played = found
        if played < len(steps):
            return parse_step(steps[played])
        last = parse_step(steps[-1]) if steps else None
        return last if isinstance(last, TextStep) else TextStep("done")
    except ValueError as exc:
        raise ModelError(f"Invalid scripted directive: {exc}", "invalid_prompt") from exc


# ----------------------------------------------------------------------- playing


def new_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ALPHANUM) for _ in range(24))


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
            events.append(ToolCallDelta(index, id=new_call_id(), name=call.name))
            events.extend(ToolCallDelta(index, arguments=p) for p in _split_arguments(arguments))
        completion = step.completion_tokens if step.completion_tokens is not None else counted
        events.append(Finish("tool_calls", Usage(prompt, completion)))
        return events
