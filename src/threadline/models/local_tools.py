"""Prompting, tool-call parsing and grammars for the ``local`` backend.

Everything here is pure (no model needed): the ChatML/Qwen2.5 prompt with its
``<tools>`` block, the lenient parser for the call formats small models really emit,
a small JSON-schema checker, and the GBNF grammars that force tool calls or JSON
output. Grammar building borrows llama.cpp's JSON-schema converter, imported lazily.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from threadline.models.base import ChatMessage, FunctionTool, ModelError, ModelRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TOOL_GUIDANCE = (
    "Call a function only when the user's request needs it. "
    "If no function fits the request, answer it yourself."
)
ANSWER_HINT = 'Function results for my message "{question}" are above. Reply to me using them.'
MODEL_TEMPERATURE = 0.7
MODEL_TOP_P = 0.8
STRUCTURED_TEMPERATURE = 0.5
_ALPHANUM = string.ascii_letters + string.digits


def new_call_id() -> str:
    """A tool call id in OpenAI's shape: ``call_`` and 24 random alphanumerics."""
    return "call_" + "".join(secrets.choice(_ALPHANUM) for _ in range(24))


# --------------------------------------------------------------------------- prompt


def tool_spec(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def json_instruction(response_format: dict[str, Any] | None) -> str | None:
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return "Respond with one JSON object and nothing else."
    if kind == "json_schema":
        schema = _response_schema(response_format)
        return (
            "Respond with one JSON object and nothing else. It must match this JSON schema:\n"
            + json.dumps(schema, ensure_ascii=False)
        )
    return None


def render_chatml(
    messages: Sequence[ChatMessage],
    tools: Sequence[FunctionTool] = (),
    *,
    extra_system: str | None = None,
    answer_hint: bool = False,
) -> str:
    """The Qwen2.5 chat-template rendering of a conversation, ending with the assistant cue.

    System messages are merged into the first turn; tools go there in a ``<tools>`` block;
    assistant tool calls become ``<tool_call>`` blocks and consecutive tool results one
    user turn of ``<tool_response>`` blocks. With ``answer_hint`` a trailing group of tool
    results ends with an instruction to answer from them.
    """
    system_parts = [m.content for m in messages if m.role == "system" and m.content]
    system = "\n\n".join(system_parts) if system_parts else DEFAULT_SYSTEM
    if tools:
        specs = "\n".join(json.dumps(tool_spec(t), ensure_ascii=False) for t in tools)
        system += (
            "\n\n# Tools\n\nYou may call one or more functions to assist with the user query."
            "\n\nYou are provided with function signatures within <tools></tools> XML tags:"
            f"\n<tools>\n{specs}\n</tools>\n\nFor each function call, return a json object "
            "with function name and arguments within <tool_call></tool_call> XML tags:\n"
            '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
            f"</tool_call>\n\n{TOOL_GUIDANCE}"
        )
    if extra_system:
        system += "\n\n" + extra_system
    out = [f"<|im_start|>system\n{system}<|im_end|>\n"]
    convo = [m for m in messages if m.role != "system"]
    i = 0
    while i < len(convo):
        msg = convo[i]
        if msg.role == "tool":
            blocks = []
            while i < len(convo) and convo[i].role == "tool":
                blocks.append(_tool_response(convo[i]))
                i += 1
            body = "\n".join(blocks)
            if answer_hint and i == len(convo):
                body += "\n" + ANSWER_HINT.format(question=_last_question(messages))
            out.append(f"<|im_start|>user\n{body}<|im_end|>\n")
            continue
        if msg.role == "assistant":
            parts = [msg.content] if msg.content else []
            parts += [format_call(c.name, c.arguments) for c in msg.tool_calls]
            out.append(f"<|im_start|>assistant\n{chr(10).join(parts)}<|im_end|>\n")
        else:
            out.append(f"<|im_start|>user\n{msg.content or ''}<|im_end|>\n")
        i += 1
    out.append("<|im_start|>assistant\n")
    return "".join(out)


def render_answer(messages: Sequence[ChatMessage], *, extra_system: str | None = None) -> str:
    """The prompt for answering from the tool results that end ``messages``.

    Small models shown the template's call-and-response turns tend to echo a call
    back instead of answering. Here the calls made since the last user message and
    their results become plain text in that message, followed by the request to
    answer, and no tools are offered."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    if last_user < 0:
        return render_chatml(messages, extra_system=extra_system)
    names = {c.id: (c.name, c.arguments) for m in messages[last_user:] for c in m.tool_calls}
    found = []
    for msg in messages[last_user + 1 :]:
        if msg.role == "tool":
            name, arguments = names.get(msg.tool_call_id or "", ("a function", ""))
            found.append(f"- {name}({_compact(arguments)}) returned: {msg.content or ''}")
        elif msg.role == "assistant" and msg.content:
            found.append(f"- You said: {msg.content}")
    question = messages[last_user].content or ""
    body = (
        f"{question}\n\nYou called functions for this. Their results:\n" + "\n".join(found)
        + "\n\nNow reply to my message, telling me what the results say."
    )  # fmt: skip
    rewritten = [*messages[:last_user], ChatMessage("user", body)]
    return render_chatml(rewritten, extra_system=extra_system)


def _load_arguments(text: str) -> Any:
    """A call's arguments text as a value (blank is ``{}``); ``ValueError`` if not JSON."""
    return json.loads(text) if text.strip() else {}


def _compact(arguments: str) -> str:
    try:
        value = _load_arguments(arguments)
    except ValueError:
        return arguments
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False)


def _tool_response(msg: ChatMessage) -> str:
    return f"<tool_response>\n{msg.content or ''}\n</tool_response>"


def _last_question(messages: Sequence[ChatMessage]) -> str:
    return next((m.content or "" for m in reversed(messages) if m.role == "user"), "").strip()


def format_call(name: str, arguments: str | dict[str, Any]) -> str:
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = _load_arguments(arguments)
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    head = json.dumps(name, ensure_ascii=False)
    return f'<tool_call>\n{{"name": {head}, "arguments": {args}}}\n</tool_call>'


# --------------------------------------------------------------------------- detection

_CALL_BODIES = (
    "<tool_call>",
    '{"name"',
    '{"function"',
    '{"tool',
    '{"type":"function"',
    '[{"name"',
    '[{"function"',
    "[<tool_call>",
)
_FENCES = ("", "```json", "```xml", "```tool_call", "```")
_CALL_STARTS = tuple(f + b for f in _FENCES for b in _CALL_BODIES)
_MAX_UNDECIDED = 48

StartKind = Literal["call", "text", "undecided"]


def classify_start(text: str) -> StartKind:
    """Whether the start of a reply is a tool call, plain text, or too short to tell."""
    compact = re.sub(r"\s+", "", text)
    if not compact:
        return "undecided" if len(text) < _MAX_UNDECIDED else "text"
    if any(compact.startswith(s) for s in _CALL_STARTS):
        return "call"
    if len(compact) < _MAX_UNDECIDED and any(s.startswith(compact) for s in _CALL_STARTS):
        return "undecided"
    return "text"


class MarkerSplitter:
    """Streams text, holding back anything that may be the start of ``<tool_call>``.

    ``feed`` returns the text safe to show; once the marker shows up, the rest of the
    reply (marker included) collects in ``captured`` instead.
    """

    MARKER = "<tool_call>"

    def __init__(self) -> None:
        self.pending = ""
        self.captured: str | None = None

    def feed(self, text: str) -> str:
        if self.captured is not None:
            self.captured += text
            return ""
        self.pending += text
        at = self.pending.find(self.MARKER)
        if at >= 0:
            shown, self.captured = self.pending[:at], self.pending[at:]
            self.pending = ""
            return shown
        keep = 0
        for n in range(min(len(self.MARKER) - 1, len(self.pending)), 0, -1):
            if self.MARKER.startswith(self.pending[-n:]):
                keep = n
                break
        shown = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(shown) :]
        return shown

    def flush(self) -> str:
        shown, self.pending = self.pending, ""
        return shown


class AnswerStream:
    """The text stream of one answer attempt, shown through ``show``.

    With ``screen``, the start is held back until it is clearly not a tool call; a start
    that is one makes ``feed`` return False to stop the attempt (``give_up``) or is let
    through. With ``split``, a ``<tool_call>`` after some text is captured, not shown.
    """

    def __init__(
        self, show: Callable[[str], None], *, screen: bool, split: bool, give_up: bool
    ) -> None:
        self.show, self.split, self.give_up = show, split, give_up
        self.head: str | None = "" if screen else None
        self.splitter = MarkerSplitter()
        self.turned_to_call = False

    def feed(self, text: str) -> bool:
        if self.head is not None:
            self.head += text
            kind = classify_start(self.head)
            if kind == "undecided":
                return True
            if kind == "call" and self.give_up:
                self.turned_to_call = True
                return False
            text, self.head = self.head, None
        self._show(self.splitter.feed(text) if self.split else text)
        return True

    def close(self) -> None:
        if self.head:  # undecided up to the end: it was text after all
            self._show(self.splitter.feed(self.head) if self.split else self.head)
        self._show(self.splitter.flush())

    def _show(self, text: str) -> None:
        if text:
            self.show(text)


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)

    def key(self) -> tuple[str, str]:
        return self.name, json.dumps(self.arguments, sort_keys=True)


_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```[a-zA-Z_]*\s*\n?(.*?)(?:```|$)", re.S)


def parse_tool_calls(text: str, tools: Sequence[FunctionTool]) -> list[ParsedCall] | None:
    """The calls in ``text``, or ``None`` when it is not (only) valid calls of ``tools``.

    Accepts ``<tool_call>`` blocks, fenced JSON, bare JSON objects and lists of them, with
    ``arguments``/``parameters`` as an object or a JSON string. Every call must name one
    of ``tools`` and carry arguments that match its parameters schema.
    """
    by_name = {t.name: t for t in tools}
    stripped = text.strip()
    if "<tool_call>" in stripped:
        chunks = [m.group(1) for m in _TAGGED.finditer(stripped)]
    elif stripped.startswith("```"):
        chunks = [m.group(1) for m in _FENCED.finditer(stripped)]
    else:
        chunks = [stripped]
    calls: list[ParsedCall] = []
    for chunk in chunks:
        values = _json_values(chunk)
        if values is None:
            return None
        for value in values:
            for item in value if isinstance(value, list) else [value]:
                call = _normalise_call(item, by_name)
                if call is None:
                    return None
                calls.append(call)
    return calls or None


def _json_values(chunk: str) -> list[Any] | None:
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos, text = 0, chunk.strip()
    while pos < len(text):
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return None
        values.append(value)
        while pos < len(text) and text[pos] in " \t\r\n,;":
            pos += 1
    return values


def _normalise_call(item: Any, tools: dict[str, FunctionTool]) -> ParsedCall | None:
    if not isinstance(item, dict):
        return None
    if item.get("type") == "function" and isinstance(item.get("function"), dict):
        item = item["function"]
    name: Any = item.get("name", item.get("tool", item.get("tool_name")))
    if name is None and isinstance(item.get("function"), str):
        name = item["function"]
    if name is None and isinstance(item.get("function"), dict):
        item = item["function"]
        name = item.get("name")
    if not isinstance(name, str) or name not in tools:
        return None
    args: Any = {}
    for key in ("arguments", "parameters", "args", "input"):
        if key in item:
            args = item[key]
            break
    if isinstance(args, str):
        try:
            args = _load_arguments(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    schema = tools[name].parameters or {"type": "object"}
    if not matches_schema(args, schema):
        return None
    return ParsedCall(name, args)


# --------------------------------------------------------------------------- schema check

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


def matches_schema(value: Any, schema: Any) -> bool:
    """A small JSON-schema check: types, enum/const, properties, required, items, bounds.

    Keywords it does not know (``$ref``, ``format``, ``pattern`` …) are accepted.
    """
    if not isinstance(schema, dict):
        return True
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    for key in ("anyOf", "oneOf"):
        if key in schema and not any(matches_schema(value, s) for s in schema[key]):
            return False
    if "allOf" in schema and not all(matches_schema(value, s) for s in schema["allOf"]):
        return False
    if isinstance(value, dict):
        return _matches_object(value, schema)
    if isinstance(value, list):
        if not _in_bounds(len(value), schema.get("minItems"), schema.get("maxItems")):
            return False
        return all(matches_schema(v, schema.get("items")) for v in value)
    if isinstance(value, str):
        return _in_bounds(len(value), schema.get("minLength"), schema.get("maxLength"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _in_bounds(value, schema.get("minimum"), schema.get("maximum"))
    return True


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, (object,)))


def _matches_object(value: dict[str, Any], schema: dict[str, Any]) -> bool:
    props: dict[str, Any] = schema.get("properties") or {}
    if any(k not in value for k in schema.get("required") or []):
        return False
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            if not matches_schema(item, props[key]):
                return False
        elif extra is False or (isinstance(extra, dict) and not matches_schema(item, extra)):
            return False
    return True


def _in_bounds(n: float, low: Any, high: Any) -> bool:
    return (not isinstance(low, int | float) or n >= low) and (
        not isinstance(high, int | float) or n <= high
    )


# --------------------------------------------------------------------------- grammars


def _response_schema(response_format: dict[str, Any] | None) -> dict[str, Any]:
    spec = (response_format or {}).get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {"type": "object"}


def load_llama_cpp() -> Any:
    """Import llama_cpp, with settings that suit a shared CPU.

    llama.cpp's OpenMP threads spin while they wait; on a busy machine (a server, other
    processes) that makes every token many times slower, so waiting threads sleep
    instead unless ``OMP_WAIT_POLICY`` says otherwise. This must happen before the
    library loads.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError(
            "The local model needs llama-cpp-python: pip install 'threadline[local]'"
        ) from exc
    return llama_cpp


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
    conv.visit(_response_schema(response_format), "")
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


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    top_k: int = 20
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    """Applied to the tokens generated so far (not the prompt, whose values answers copy)."""

    def structured(self) -> Sampling:
        """Sampling for tool-call arguments: cooler, as their values are copied, not made up."""
        return replace(self, temperature=self.temperature * STRUCTURED_TEMPERATURE)


def sampling_for(request: ModelRequest) -> Sampling:
    """The request's sampling, calibrated for the small model.

    The API's defaults (temperature 1, top-p 1) map to the model's recommended 0.7 and
    0.8; other values scale alike (temperature 0 stays greedy). Unset means default.
    """
    temperature = 1.0 if request.temperature is None else max(request.temperature, 0.0)
    top_p = 1.0 if request.top_p is None else min(max(request.top_p, 0.0), 1.0)
    return Sampling(temperature * MODEL_TEMPERATURE, top_p * MODEL_TOP_P)


def sample_token(
    ids: npt.NDArray[np.intc],
    logits: npt.NDArray[np.float32],
    s: Sampling,
    rng: Any,
    recent: Sequence[int] = (),
) -> int:
    """Pick one of ``ids`` (best first): repetition penalty over ``recent``, then
    llama.cpp's top-k, top-p, min-p and temperature chain; greedy at temperature 0."""
    import numpy as np

    if recent and s.repeat_penalty != 1.0:
        seen = np.isin(ids, np.asarray(recent, dtype=ids.dtype))
        if seen.any():
            logits = logits.copy()
            penalised = logits[seen]
            logits[seen] = np.where(
                penalised > 0, penalised / s.repeat_penalty, penalised * s.repeat_penalty
            )
            order = np.argsort(-logits, kind="stable")
            ids, logits = ids[order], logits[order]
    if s.temperature < 1e-4 or len(ids) == 1:
        return int(ids[0])
    ids, logits = ids[: s.top_k], logits[: s.top_k]
    probs = np.exp(logits - logits[0])
    probs /= probs.sum()
    keep = int(np.searchsorted(np.cumsum(probs), s.top_p)) + 1
    keep = max(1, min(keep, int((probs >= s.min_p * probs[0]).sum())))
    scaled = np.exp((logits[:keep] - logits[0]) / s.temperature)
    return int(rng.choice(ids[:keep], p=scaled / scaled.sum()))


# --------------------------------------------------------------------------- planning

Mode = Literal["text", "auto", "forced"]


@dataclass(frozen=True)
class Plan:
    """How to run one request: the prompt, the mode, and what the call policy needs."""

    prompt: str
    mode: Mode
    tools: tuple[FunctionTool, ...]
    json_mode: bool
    after_tool_results: bool
    """The conversation ends with tool results: the model should now answer."""
    answer_prompt: str | None
    """The prompt for a text answer, where it differs from ``prompt``."""
    previous_calls: frozenset[tuple[str, str]]
    turn_functions: frozenset[str]
    """Functions already called since the last user message."""
    question: str
    """The last user message."""
    context: str
    """The conversation's text without tool results, to check arguments against."""


def plan_request(request: ModelRequest) -> Plan:
    tools: tuple[FunctionTool, ...] = tuple(request.tools)
    choice = request.tool_choice
    mode: Mode = "auto" if tools else "text"
    if choice == "none" or not tools:
        tools, mode = (), "text"
    elif choice == "required":
        mode = "forced"
    elif not isinstance(choice, str):
        if not any(t.name == choice.name for t in tools):
            raise ModelError(
                f"tool_choice names {choice.name!r}, which is not among the tools",
                code="invalid_prompt",
            )
        mode = "forced"
        tools = tuple(t for t in tools if t.name == choice.name)
    messages = list(request.messages)
    after = bool(messages) and messages[-1].role == "tool"
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    instruction = json_instruction(request.response_format)
    prompt = render_chatml(
        messages,
        request.tools if mode == "forced" else tools,
        extra_system=instruction,
        answer_hint=after and mode == "auto",
    )
    kind = (request.response_format or {}).get("type")
    return Plan(
        prompt=prompt,
        mode=mode,
        tools=tools,
        json_mode=kind in ("json_object", "json_schema"),
        after_tool_results=after,
        answer_prompt=(
            render_answer(messages, extra_system=instruction) if after and mode == "auto" else None
        ),
        previous_calls=frozenset(
            _call_key(c.name, c.arguments) for m in messages for c in m.tool_calls
        ),
        turn_functions=frozenset(c.name for m in messages[last_user + 1 :] for c in m.tool_calls),
        question=_last_question(messages),
        context="\n".join(m.content for m in messages if m.content and m.role != "tool"),
    )


def _call_key(name: str, arguments: str) -> tuple[str, str]:
    try:
        value = _load_arguments(arguments)
    except ValueError:
        return name, arguments
    return name, json.dumps(value, sort_keys=True)


# --------------------------------------------------------------------------- call policy

_WORD = re.compile(r"[a-z0-9]+(?:[.@'-][a-z0-9]+)*")
_MORE = re.compile(r"\b(and|also|both|plus|then|each|all)\b|[,;&]", re.I)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 or w.isdigit()}


def _values(value: Any, schema: Any) -> Iterable[str]:
    """The free-form leaf values of some arguments (enum-bound ones and booleans skipped)."""
    spec = schema if isinstance(schema, dict) else {}
    if "enum" in spec or "const" in spec or isinstance(value, bool) or value is None:
        return
    if isinstance(value, dict):
        props = spec.get("properties") or {}
        for key, item in value.items():
            yield from _values(item, props.get(key))
    elif isinstance(value, list):
        for item in value:
            yield from _values(item, spec.get("items"))
    elif isinstance(value, float) and value.is_integer():
        yield str(int(value))
    else:
        yield str(value)


def _call_values(call: ParsedCall, tools: Sequence[FunctionTool]) -> list[str]:
    schema = next((t.parameters for t in tools if t.name == call.name), None)
    return [v.strip().lower() for v in _values(call.arguments, schema) if v.strip()]


def _value_grounded(value: str, text: str, words: set[str], share: float) -> bool:
    parts = _words(value)
    return value in text or (bool(parts) and len(parts & words) >= share * len(parts))


def grounded(
    call: ParsedCall, tools: Sequence[FunctionTool], context: str, *, strict: bool = False
) -> bool:
    """Whether the call's arguments come from the conversation rather than thin air.

    Small models asked something no tool helps with tend to call a tool anyway, with
    made-up arguments. A value is grounded when it appears in ``context`` or enough of
    its words do. Leniently (the first call) half the values must be grounded, each by
    half its words; strictly (extra parallel calls) every value, by all of its words.
    Calls without free-form arguments always pass.
    """
    values = _call_values(call, tools)
    if not values:
        return True
    text, words = context.lower(), _words(context)
    share = 1.0 if strict else 0.5
    hits = sum(_value_grounded(v, text, words, share) for v in values)
    return hits == len(values) if strict else hits * 2 >= len(values)


def adds_information(
    call: ParsedCall, earlier: Sequence[ParsedCall], tools: Sequence[FunctionTool], context: str
) -> bool:
    """Whether an extra parallel call is wanted: strictly grounded, and not a variant of
    an earlier call (it must carry some value that none of them has)."""
    if call.key() in {c.key() for c in earlier} or not grounded(call, tools, context, strict=True):
        return False
    seen = {v for c in earlier for v in _call_values(c, tools)}
    return any(v not in seen for v in _call_values(call, tools))


def may_want_more_calls(question: str) -> bool:
    """Whether the request could need several calls ("Paris and London", "A, B")."""
    return bool(_MORE.search(question))


def all_repeats(calls: Iterable[ParsedCall], previous: frozenset[tuple[str, str]]) -> bool:
    """True when every call was already made earlier in the conversation."""
    keys = [c.key() for c in calls]
    return bool(keys) and all(k in previous for k in keys)
