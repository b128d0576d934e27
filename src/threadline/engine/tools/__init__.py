"""Built-in tools: tools the run engine executes itself, inside a turn.

A built-in (``file_search``, ``code_interpreter``) is offered to the model as a
callable tool when the run enables it and has what it needs. When a model call
returns only built-in calls, the turn executes them, records a ``tool_calls`` step
whose calls have the built-in's ``type``, feeds the outputs back and calls the model
again, all without ``requires_action``.

Each built-in is one ``BuiltinTool`` in its own module; ``Toolbox`` holds those a
server runs and answers for them together.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.models.base import FunctionTool


@dataclass(frozen=True)
class ToolScope:
    """What a built-in knows of the run it serves: the run, its project, what the
    tool read for it with the turn (``BuiltinTool.load``), how many calls of this
    tool the run made before (the first call of this turn is numbered so), and
    about how many characters of output the model's context has room for."""

    run: dict[str, Any]
    project_id: str
    loaded: Any
    earlier_calls: int = 0
    output_chars: int = 16_000


@dataclass(frozen=True)
class BuiltinCall:
    """One call the model made to a built-in: its step call id, its position among
    the run's calls of that tool (0-based), and the arguments as the model wrote them."""

    id: str
    index: int
    arguments: str
    stream: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    """Streams a first part of the call object (a step delta) before it ends."""


@dataclass(frozen=True)
class ToolOutcome:
    """A built-in call executed: what the model reads next, and the step's call
    object (``{"id", "type", <type>: {...}}``, the spec's shape)."""

    output: str
    call: dict[str, Any]
    delta: dict[str, Any] | None = None
    """What the step's stream gets when the call ends, when it streamed a first
    part (``BuiltinCall.stream``); ``None``: the whole call."""


class BuiltinTool(ABC):
    """One built-in tool."""

    #: the tool's ``type`` in the run's ``tools`` and in step calls
    type: str

    async def load(self, conn: AsyncConnection, project_id: str, run: dict[str, Any]) -> Any:
        """Read what the tool needs for this run, in the turn's reading transaction
        (default: nothing)."""
        return None

    @abstractmethod
    def offer(self, scope: ToolScope) -> FunctionTool | None:
        """What the model is offered, or ``None`` when this run cannot use the tool."""

    @abstractmethod
    async def execute(self, scope: ToolScope, call: BuiltinCall) -> ToolOutcome:
        """Run one call. Must be cancellable; raises typed errors only for failures
        the run should fail with (bad arguments become an output the model reads)."""

    @abstractmethod
    def replay(self, call: dict[str, Any], index: int) -> tuple[str, str]:
        """The arguments and output the model saw for a stored step call, the
        run's ``index``-th call of this tool (a later model call of the run sees
        the conversation again)."""

    def annotate(self, text: str, calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The annotations an assistant message's ``text`` gets from the run's
        calls of this tool, in order (default: none)."""
        return []

    def parts(self, calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Content parts (after the text) of the assistant message that follows
        ``calls``, the run's calls of this tool since its last message (default: none)."""
        return []


@dataclass
class Toolbox:
    """The built-ins a server runs, by type."""

    tools: dict[str, BuiltinTool] = field(default_factory=dict)

    @classmethod
    def of(cls, tools: Iterable[BuiltinTool]) -> Toolbox:
        return cls({tool.type: tool for tool in tools})

    def enabled(self, run: dict[str, Any]) -> list[BuiltinTool]:
        """The built-ins the run's ``tools`` enable, in the order it names them."""
        kinds = [t.get("type") for t in run.get("tools") or []]
        return [self.tools[k] for k in dict.fromkeys(kinds) if k in self.tools]

    async def load(
        self, conn: AsyncConnection, project_id: str, run: dict[str, Any]
    ) -> dict[str, Any]:
        return {tool.type: await tool.load(conn, project_id, run) for tool in self.enabled(run)}

    def scopes(
        self,
        run: dict[str, Any],
        project_id: str,
        loaded: dict[str, Any],
        steps: Sequence[dict[str, Any]],
        output_chars: int = 16_000,
    ) -> dict[str, ToolScope]:
        """Each enabled built-in's scope for the next model call."""
        made = _calls_by_type(steps)
        return {
            tool.type: ToolScope(
                run, project_id, loaded.get(tool.type), made.get(tool.type, 0), output_chars
            )
            for tool in self.enabled(run)
        }

    def offers(self, scopes: dict[str, ToolScope]) -> list[FunctionTool]:
        offered = (self.tools[kind].offer(scope) for kind, scope in scopes.items())
        return [tool for tool in offered if tool is not None]

    def replay(self, call: dict[str, Any], index: int) -> tuple[str, str] | None:
        tool = self.tools.get(call["type"])
        return None if tool is None else tool.replay(call, index)

    def annotations(self, text: str, steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every built-in's annotations of ``text``, in text order."""
        if not self.tools:
            return []
        calls: dict[str, list[dict[str, Any]]] = {}
        for step in steps:
            details = step["step_details"]
            if details["type"] == "tool_calls":
                for call in details["tool_calls"]:
                    calls.setdefault(call["type"], []).append(call)
        found = [
            note
            for kind, tool in self.tools.items()
            if calls.get(kind)
            for note in tool.annotate(text, calls[kind])
        ]
        return sorted(found, key=lambda note: int(note["start_index"]))

    def parts(self, steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every built-in's content parts for the message that follows ``steps``:
        from the tool calls made since the last message was written."""
        since: list[dict[str, Any]] = []
        for step in steps:
            details = step["step_details"]
            if details["type"] == "message_creation":
                since = []
            else:
                since.extend(details["tool_calls"])
        return [
            part
            for kind, tool in self.tools.items()
            for part in tool.parts([c for c in since if c["type"] == kind])
        ]


def _calls_by_type(steps: Sequence[dict[str, Any]]) -> dict[str, int]:
    made: dict[str, int] = {}
    for step in steps:
        details = step["step_details"]
        if details["type"] != "tool_calls":
            continue
        for call in details["tool_calls"]:
            made[call["type"]] = made.get(call["type"], 0) + 1
    return made
