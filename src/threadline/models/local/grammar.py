"""GBNF grammars that force the local model's output into a shape, and their use.

``calls_grammar`` admits only ``<tool_call>`` blocks of the offered functions with
schema-valid arguments; ``json_grammar`` the JSON answer a ``response_format`` asks
for. Both borrow llama.cpp's JSON-schema converter. ``Grammar`` is a compiled one,
used by the sampler to filter candidate tokens.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from threadline.models.base import FunctionTool, ModelError
from threadline.models.local.prompt import response_schema
from threadline.models.local.runtime import load_llama_cpp

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def _converter() -> Any:
    load_llama_cpp()
    from llama_cpp.llama_grammar import SchemaConverter

    return SchemaConverter(  # type: ignore[no-untyped-call]
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )


def calls_grammar(tools: Sequence[FunctionTool], *, parallel: bool) -> str:
    """GBNF that only admits ``<tool_call>`` blocks of ``tools`` with schema-valid
    arguments: one block, or (``parallel``) one or more separated by newlines."""
    if not tools:
        raise ValueError("calls_grammar needs at least one tool")
    conv = _converter()
    alternatives = []
    for i, tool in enumerate(tools):
        schema = tool.parameters or {"type": "object", "properties": {}}
        args_rule = conv.visit(schema, f"args-{i}")
        head = json.dumps(f'<tool_call>\n{{"name": {json.dumps(tool.name)}, "arguments": ')
        tail = json.dumps("}\n</tool_call>")
        alternatives.append(f"( {head} {args_rule} {tail} )")
    root = 'root ::= call ( "\\n" call )*' if parallel else "root ::= call"
    return "\n".join([root, "call ::= " + " | ".join(alternatives), conv.format_grammar()])


def json_grammar(response_format: dict[str, Any] | None) -> str:
    """GBNF for the JSON answer ``response_format`` asks for (any object for json_object)."""
    conv = _converter()
    conv.visit(response_schema(response_format), "")
    return str(conv.format_grammar())


class Grammar:
    """A compiled llama.cpp grammar, used to filter candidate tokens (``allowed``) and
    to follow the tokens that were picked (``accept``)."""

    def __init__(self, lib: Any, vocab: Any, text: str) -> None:
        self._lib = lib
        self._ptr = lib.llama_sampler_init_grammar(vocab, text.encode(), b"root")
        if not self._ptr:
            raise ModelError("internal error: could not compile a grammar")

    def allowed(self, ids: npt.NDArray[np.intc]) -> npt.NDArray[np.bool_]:
        import numpy as np

        lib = self._lib
        data = (lib.llama_token_data * len(ids))()
        view = np.ctypeslib.as_array(data)
        view["id"] = ids
        view["logit"] = 0.0
        array = lib.llama_token_data_array(data=data, size=len(ids), selected=-1, sorted=False)
        lib.llama_sampler_apply(self._ptr, ctypes.byref(array))
        ok: npt.NDArray[np.bool_] = np.isfinite(view["logit"])
        return ok

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self._ptr, token)

    def close(self) -> None:
        if self._ptr:
            self._lib.llama_sampler_free(self._ptr)
            self._ptr = None
