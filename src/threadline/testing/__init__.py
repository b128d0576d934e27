"""Testing your app against threadline, with no real model.

- ``serve_in_thread(settings)``: a real threadline server on a free loopback port,
  in a background thread, for any HTTP client or the official SDKs.
- The scripted model (``THREADLINE_MODEL_BACKEND=scripted``, or ``ScriptedBackend``
  in Python): every reply dictated by the test; ``directive(...)`` writes the user
  message that scripts it from any client.
- ``FakeChatServer``: a fake OpenAI chat-completions server, to point the ``openai``
  backend (or anything else that speaks chat completions) at.

Production code never imports this package.
"""

from threadline.models.scripted import (
    ErrorStep,
    HangStep,
    ScriptedBackend,
    ScriptedCall,
    TextStep,
    ToolCallsStep,
    directive,
)
from threadline.testing.fake_openai import FakeChatServer
from threadline.testing.server import free_port, serve_in_thread

__all__ = [
    "ErrorStep",
    "FakeChatServer",
    "HangStep",
    "ScriptedBackend",
    "ScriptedCall",
    "TextStep",
    "ToolCallsStep",
    "directive",
    "free_port",
    "serve_in_thread",
]
