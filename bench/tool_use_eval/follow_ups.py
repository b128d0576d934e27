"""Follow-up turns of the embedded ``local`` model: after one call, its result and an
answer, does the next message get a call when it needs the tool again ("And
Microsoft?") and a text answer when it does not ("Thanks, that's all.")?

    python bench/tool_use_eval/follow_ups.py                  # development part, every case
    python bench/tool_use_eval/follow_ups.py --part heldout   # the held-out part: scores only

The cases live in ``cases/follow_ups.yaml``. Each follow-up is one model call through
the backend as a server builds it (the tool-need gate and the tool router on), at
temperature 0, with the conversation so far as a run on the thread shows it: the
first request and the answer (``--calls``: the call and its result between them). A
follow-up passes when the reply calls exactly the function it needs (its arguments
are not judged), or none when it needs none. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from threadline.models.base import (
    ChatMessage,
    FunctionTool,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from threadline.models.registry import build_backend
from threadline.settings import Settings
from threadline.wiring import sentence_embedder

CASES = Path(__file__).parent / "cases" / "follow_ups.yaml"


def conversation(case: dict[str, Any], follow_up: str, calls: bool) -> list[ChatMessage]:
    """The thread as a run on it shows it to the model: the earlier messages' text
    (a run's calls and their results are its own, not the thread's); with ``calls``,
    the earlier call and its result too, as a client keeping the whole exchange
    would send it."""
    earlier = [ChatMessage("user", case["ask"])]
    if calls:
        [(name, arguments)] = case["called"].items()
        call = ToolCall("call_1", name, json.dumps(arguments))
        earlier += [
            ChatMessage("assistant", tool_calls=(call,)),
            ChatMessage("tool", json.dumps(case["result"]), tool_call_id="call_1"),
        ]
    return [*earlier, ChatMessage("assistant", case["answer"]), ChatMessage("user", follow_up)]


async def reply(backend: Any, request: ModelRequest) -> tuple[str | None, str]:
    """The first function the reply calls (None: it calls none), and what it said
    or the call's arguments."""
    text, names, arguments = "", [], ""
    async for event in backend.stream(request):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, ToolCallDelta):
            if event.name:
                names.append(event.name)
            if event.index == 0:
                arguments += event.arguments
    return (names[0], arguments) if names else (None, text)


async def evaluate(args: argparse.Namespace) -> int:
    data = yaml.safe_load(CASES.read_text())
    tools = {
        name: FunctionTool(name, tool["description"], tool["parameters"])
        for name, tool in data["tools"].items()
    }
    settings = Settings.model_validate(
        {
            "data_dir": args.data_dir,
            "local_model": args.model,
            **({"local_threads": args.threads} if args.threads else {}),
        }
    )
    backend = build_backend(settings, sentence_embedder())
    shown = args.part == "dev" or args.verbose
    passed = {"call": 0, "none": 0}
    total = {"call": 0, "none": 0}
    start = time.monotonic()
    try:
        for case in data[args.part]:
            for follow_up, needed in case["follow"]:
                request = ModelRequest(
                    model="gpt-4o-mini",
                    messages=conversation(case, follow_up, args.calls),
                    tools=[tools[name] for name in case["tools"]],
                    temperature=0.0,
                )
                called, said = await reply(backend, request)
                kind = "call" if needed else "none"
                total[kind] += 1
                passed[kind] += called == needed
                if shown:
                    verdict = "PASS" if called == needed else "FAIL"
                    got = f"{called}({said})" if called else repr(said[:70])
                    print(f"{verdict} {follow_up!r:44} needs {needed}: {got}", flush=True)
    finally:
        await backend.aclose()
    print(
        f"\n{args.part}: {sum(passed.values())}/{sum(total.values())} follow-ups right;"
        f" needing a call, called: {passed['call']}/{total['call']};"
        f" needing none, answered in text: {passed['none']}/{total['none']}"
        f" ({time.monotonic() - start:.0f} s)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["dev", "heldout"], default="dev")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="THREADLINE_LOCAL_MODEL")
    parser.add_argument("--threads", type=int, help="THREADLINE_LOCAL_THREADS")
    parser.add_argument("--data-dir", default=os.environ.get("THREADLINE_DATA_DIR", "data"))
    parser.add_argument("-v", "--verbose", action="store_true", help="show held-out cases too")
    parser.add_argument(
        "--calls", action="store_true", help="the earlier call and its result in the conversation"
    )
    return asyncio.run(evaluate(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
