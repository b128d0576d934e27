"""Which offered function is a request about? A check of the small model's pick.

Asked "the living room is too warm, cool it down to 20" with lights and a thermostat
offered, the 0.5B model writes ``control_lights(room="living_room", brightness=20)``:
every value comes from the request, so no check on the arguments can tell, but the
request is plainly about the thermostat. Its sentence vector says so: the cosine
similarity of the request to each function's name and description (all-MiniLM-L6-v2,
the embedder the tool-need gate and file_search use) puts ``set_thermostat`` far
above ``control_lights``. When the function the model picked trails the closest one
by more than ``MARGIN``, the first call is decoded again with only that one offered.

The margin was chosen on the evaluation's development part
(``bench/tool_use_eval``; ``docs/local-model.md``): there, the model's first pick
was right wherever it trailed the closest function by less, and wrong in four of the
four cases where it trailed by more. Like the gate, the router stays out of the way
(never reroutes) when the embedder cannot be used, logged once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from threadline.models.base import FunctionTool
from threadline.models.local.policy import CODE_INTERPRETER, FILE_SEARCH
from threadline.models.local.sentences import Embed, SentenceCache

log = logging.getLogger("threadline.models.local")

MARGIN = 0.1
"""How far (in cosine similarity) the picked function may trail the closest one."""


def tool_text(tool: FunctionTool) -> str:
    """What a function is compared on: its name in words and its description."""
    name = tool.name.replace("_", " ").replace("-", " ")
    return f"{name}: {tool.description}" if tool.description else name


class ToolRouter:
    """Finds the function a request is far more about than the one the model picked."""

    def __init__(self, embed: Embed, margin: float = MARGIN) -> None:
        # Functions' vectors are kept: an assistant's tools are embedded once.
        self._embed = embed if isinstance(embed, SentenceCache) else SentenceCache(embed)
        self.margin = margin
        self._broken = threading.Event()

    def better_than(
        self, request: str, picked: str, tools: Sequence[FunctionTool]
    ) -> FunctionTool | None:
        """The offered function closest to ``request`` if ``picked`` trails it by more
        than the margin; None otherwise (``picked`` is close enough, is a built-in
        tool, fewer than two functions are offered, or the embedder failed)."""
        functions = [t for t in tools if t.name not in (FILE_SEARCH, CODE_INTERPRETER)]
        names = [t.name for t in functions]
        if len(functions) < 2 or picked not in names or not request.strip():
            return None
        similarities = self._similarities(request, functions)
        if similarities is None:
            return None
        best = int(np.argmax(similarities))
        if similarities[best] - similarities[names.index(picked)] > self.margin:
            return functions[best]
        return None

    def _similarities(
        self, request: str, functions: Sequence[FunctionTool]
    ) -> npt.NDArray[np.float32] | None:
        if self._broken.is_set():
            return None
        try:
            vectors = self._embed([request, *(tool_text(t) for t in functions)])
        except Exception:
            self._broken.set()
            log.exception("tool router: the sentence embedder failed; the model's picks stand")
            return None
        result: npt.NDArray[np.float32] = vectors[1:] @ vectors[0]
        return result
