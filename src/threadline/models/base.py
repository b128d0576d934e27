"""The model backend interface: what the run engine asks of any model.

A backend turns one chat request (system prompt, conversation, tools, sampling
settings) into a stream of events: text deltas, tool-call deltas, then exactly one
``Finish`` carrying the finish reason and the token usage of that call.

Backends raise ``ModelError`` (with the ``last_error.code`` the run should show)
instead of returning error values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls"]
ErrorCode = Literal["server_error", "rate_limit_exceeded", "invalid_prompt"]


@dataclass(frozen=True)
class ToolCall:
    """A complete function call the model made."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    """One message of the conversation sent to the model."""

    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call (the Assistants `function` tool)."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True)
class NamedToolChoice:
    name: str


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


@dataclass(frozen=True)
class ModelRequest:
    """Everything one model call needs."""

    model: str
    messages: Sequence[ChatMessage]
    tools: Sequence[FunctionTool] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    # OpenAI's shape: {"type": "text"} | {"type": "json_object"}
    # | {"type": "json_schema", "json_schema": {...}}; None means text.
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call; ``index`` tells parallel calls apart.

    The first delta of a call carries its ``id`` and ``name``; later ones only
    carry more ``arguments`` text.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class Finish:
    reason: FinishReason
    usage: Usage = field(default_factory=Usage)


ModelEvent = TextDelta | ToolCallDelta | Finish


class ModelError(Exception):
    """A model call failed; ``code`` becomes the run's ``last_error.code``."""

    def __init__(self, message: str, code: ErrorCode = "server_error") -> None:
        super().__init__(message)
        self.message = message
        self.code: ErrorCode = code


class ModelBackend(ABC):
    """One way of running a model. Implementations: scripted, openai_compat, local."""

    @abstractmethod
    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Run one chat call, yielding deltas and ending with exactly one ``Finish``.

        Must not block the event loop. Cancelling the consuming task must stop
        the call in flight.
        """

    @abstractmethod
    def resolve_model(self, requested: str) -> str:
        """The model name that really runs when a run asks for ``requested``."""

    @abstractmethod
    def context_window(self, model: str) -> int:
        """How many tokens (prompt plus completion) ``model`` accepts."""

    @abstractmethod
    def count_tokens(self, model: str, messages: Sequence[ChatMessage]) -> int:
        """Prompt tokens ``messages`` would take on ``model``."""

    async def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Load what the first call would otherwise wait for (called at start-up,
        in the background)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, connections)."""
