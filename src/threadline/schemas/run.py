"""The Run object and the requests that create, modify and resume it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from threadline.domain import limits
from threadline.schemas.assistant import ReasoningEffort, Temperature, TopP
from threadline.schemas.common import INTEGRAL, Metadata, Request, WireObject
from threadline.schemas.message import CreateMessageRequest
from threadline.schemas.thread import CreateThreadRequest
from threadline.schemas.tools import ResponseFormat, Tool, ToolResources

TokenBudget = Annotated[int, Field(ge=limits.MIN_TOKEN_BUDGET), INTEGRAL]


class TruncationStrategy(Request):
    type: Literal["auto", "last_messages"]
    last_messages: Annotated[int, Field(ge=1), INTEGRAL] | None = None


class NamedFunction(Request):
    name: Annotated[str, Field(min_length=1)]


class NamedToolChoice(Request):
    type: Literal["function", "code_interpreter", "file_search"]
    function: NamedFunction | None = None


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class RunOptions(Request):
    """What create-run and create-thread-and-run share."""

    assistant_id: Annotated[str, Field(min_length=1)]
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    instructions: (
        Annotated[str, Field(max_length=limits.ASSISTANT_INSTRUCTIONS_MAX_CHARS)] | None
    ) = None
    tools: Annotated[list[Tool], Field(max_length=limits.RUN_TOOLS_MAX)] | None = None
    metadata: Metadata = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stream: bool | None = None
    max_prompt_tokens: TokenBudget | None = None
    max_completion_tokens: TokenBudget | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None


class CreateRunRequest(RunOptions):
    additional_instructions: (
        Annotated[str, Field(max_length=limits.ASSISTANT_INSTRUCTIONS_MAX_CHARS)] | None
    ) = None
    additional_messages: Annotated[list[CreateMessageRequest], Field(max_length=1000)] | None = None


class CreateThreadAndRunRequest(RunOptions):
    thread: CreateThreadRequest | None = None
    tool_resources: ToolResources | None = None


class ModifyRunRequest(Request):
    metadata: Metadata = None


class ToolOutput(Request):
    # Optional in the spec: an output without one matches no call, and the run
    # answers which calls still wait for output.
    tool_call_id: str | None = None
    output: str = ""


class SubmitToolOutputsRequest(Request):
    tool_outputs: list[ToolOutput]
    stream: bool | None = None


class Run(WireObject):
    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    thread_id: str
    assistant_id: str
    status: str
    required_action: dict[str, Any] | None
    last_error: dict[str, Any] | None
    expires_at: int | None
    started_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    incomplete_details: dict[str, Any] | None
    model: str
    instructions: str
    tools: list[dict[str, Any]]
    metadata: dict[str, str] | None
    usage: dict[str, int] | None
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: dict[str, Any] | None
    tool_choice: Any
    parallel_tool_calls: bool
    response_format: Any


class RunStep(WireObject):
    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    assistant_id: str
    thread_id: str
    run_id: str
    type: Literal["message_creation", "tool_calls"]
    status: Literal["in_progress", "cancelled", "failed", "completed", "expired"]
    step_details: dict[str, Any]
    last_error: dict[str, Any] | None
    expired_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    metadata: dict[str, str] | None
    usage: dict[str, int] | None
