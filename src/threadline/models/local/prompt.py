"""The prompt the local model sees: Qwen2.5's ChatML template with its ``<tools>`` block.

Also the two ways a call is written back into a prompt (``format_call``) and the
rewritten prompt that asks for an answer from tool results (``render_answer``).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from threadline.models.base import ChatMessage, FunctionTool

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TOOL_GUIDANCE = (
    "Call a function only when the user's request needs it. "
    "If no function fits the request, answer it yourself."
)
ANSWER_HINT = 'Function results for my message "{question}" are above. Reply to me using them.'
ANSWER_REQUEST = (
    "Now answer my message from these results. Give the exact values they contain "
    "(numbers, names, dates, statuses)."
)
CITE_HINT = " Cite each result you use with its marker, such as {marker}."
MARKER = re.compile(r"[【\[]\d+:\d+†[^】\]\n]*[】\]]")
"""A file_search result's citation marker (the model may write it in square brackets)."""


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
        schema = response_schema(response_format)
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
                body += "\n" + ANSWER_HINT.format(question=last_question(messages))
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
    answer, and no tools are offered. JSON results are written as ``key: value``
    lines: a small model copies values from those, where from JSON it tends to
    answer with the gist ("it is sunny") and drop the numbers."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    if last_user < 0:
        return render_chatml(messages, extra_system=extra_system)
    names = {c.id: (c.name, c.arguments) for m in messages[last_user:] for c in m.tool_calls}
    found = []
    for msg in messages[last_user + 1 :]:
        if msg.role == "tool":
            name, arguments = names.get(msg.tool_call_id or "", ("a function", ""))
            found.append(f"{name}({_compact(arguments)}) returned:\n{readable(msg.content or '')}")
        elif msg.role == "assistant" and msg.content:
            found.append(f"You said: {msg.content}")
    question = messages[last_user].content or ""
    marker = MARKER.search("\n".join(found))
    body = (
        f"{question}\n\nYou looked this up for me:\n\n" + "\n\n".join(found)
        + f"\n\n{ANSWER_REQUEST}"
        + (CITE_HINT.format(marker=marker.group(0)) if marker else "")
    )  # fmt: skip
    rewritten = [*messages[:last_user], ChatMessage("user", body)]
    return render_chatml(rewritten, extra_system=extra_system)


def readable(content: str) -> str:
    """A tool result as a small model reads it best: a JSON object or list as one
    ``key: value`` line per value (nested keys joined by spaces); other text as is."""
    try:
        value = json.loads(content)
    except ValueError:
        return content.strip()
    if not isinstance(value, dict | list):
        return content.strip()
    return "\n".join(_lines(value, "")) or content.strip()


def _lines(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _lines(item, f"{path} {key}".strip())
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        for number, item in enumerate(value, 1):
            yield from _lines(item, f"{path} {number}".strip())
    else:
        items = value if isinstance(value, list) else [value]
        text = ", ".join(i if isinstance(i, str) else json.dumps(i) for i in items)
        yield f"{path}: {text}" if path else text


def load_arguments(text: str) -> Any:
    """A call's arguments text as a value (blank is ``{}``); ``ValueError`` if not JSON."""
    return json.loads(text) if text.strip() else {}


def _compact(arguments: str) -> str:
    try:
        value = load_arguments(arguments)
    except ValueError:
        return arguments
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False)


def _tool_response(msg: ChatMessage) -> str:
    return f"<tool_response>\n{msg.content or ''}\n</tool_response>"


def last_question(messages: Sequence[ChatMessage]) -> str:
    return next((m.content or "" for m in reversed(messages) if m.role == "user"), "").strip()


def format_call(name: str, arguments: str | dict[str, Any]) -> str:
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = load_arguments(arguments)
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    head = json.dumps(name, ensure_ascii=False)
    return f'<tool_call>\n{{"name": {head}, "arguments": {args}}}\n</tool_call>'


def response_schema(response_format: dict[str, Any] | None) -> dict[str, Any]:
    spec = (response_format or {}).get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {"type": "object"}
