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

Every number a step carries is bounded (see ``steps``): token counts up to
1,000,000,000, ``chunks`` up to 1,000,000, delays up to 3600 seconds. A directive
out of range fails the run with ``last_error.code`` ``invalid_prompt`` and a message
naming the field.
"""

from threadline.models.scripted.backend import DEFAULT_CONTEXT_WINDOW, ScriptedBackend, split_text
from threadline.models.scripted.directives import (
    DIRECTIVE_KEY,
    default_step,
    directive,
    directive_steps,
    scripted_step,
)
from threadline.models.scripted.steps import (
    MAX_CHUNKS,
    MAX_DELAY_SECONDS,
    MAX_TOKENS,
    ErrorStep,
    Handler,
    HangStep,
    ScriptedCall,
    Step,
    StepLike,
    StepOptions,
    TextStep,
    ToolCallsStep,
    parse_step,
)

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "DIRECTIVE_KEY",
    "MAX_CHUNKS",
    "MAX_DELAY_SECONDS",
    "MAX_TOKENS",
    "ErrorStep",
    "Handler",
    "HangStep",
    "ScriptedBackend",
    "ScriptedCall",
    "Step",
    "StepLike",
    "StepOptions",
    "TextStep",
    "ToolCallsStep",
    "default_step",
    "directive",
    "directive_steps",
    "parse_step",
    "scripted_step",
    "split_text",
]
