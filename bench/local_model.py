"""Tool-use evaluation and speed benchmark of the embedded ``local`` model backend.

    python bench/local_model.py                       # the default 1.5B: eval + speed
    python bench/local_model.py --model qwen2.5-coder-0.5b --no-speed
    python bench/local_model.py --only parallel -v    # one category, show every case

The eval set covers the decisions a tool-using assistant makes: call a tool or answer
directly, pick the right function, fill valid arguments, make parallel calls, and
answer from tool results instead of calling again. Each case passes or fails; the
score is the share of passing cases. The speed part measures time to first token and
decode speed on a ~350-token prompt (instructions plus tools), cold and warm, and the
process's peak resident memory (the model file is mapped in, so its pages count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threadline.engine.tools import code_interpreter
from threadline.engine.tools.file_search import DESCRIPTION, PARAMETERS, render
from threadline.models.base import (
    ChatMessage,
    FunctionTool,
    ModelRequest,
    NamedToolChoice,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
)
from threadline.models.local import LocalBackend
from threadline.models.local.calls import matches_schema
from threadline.models.local.need import NeedGate
from threadline.models.local.route import ToolRouter
from threadline.retrieval.embedders.local import LocalEmbedder
from threadline.settings import Settings


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


S = {"type": "string"}
N = {"type": "number"}
TOOLS = {
    t.name: t
    for t in [
        FunctionTool(
            "get_weather",
            "Get the current weather for a city.",
            _obj(
                {"city": S, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city"]
            ),
        ),
        FunctionTool(
            "send_email",
            "Send an email message.",
            _obj({"to": S, "subject": S, "body": S}, ["to", "subject", "body"]),
        ),
        FunctionTool(
            "create_calendar_event",
            "Create an event in the user's calendar.",
            _obj(
                {
                    "title": S,
                    "date": {"type": "string", "description": "YYYY-MM-DD"},
                    "time": {"type": "string", "description": "HH:MM"},
                },
                ["title", "date"],
            ),
        ),
        FunctionTool(
            "search_products",
            "Search the shop's product catalogue.",
            _obj({"query": S, "max_price": N}, ["query"]),
        ),
        FunctionTool(
            "get_order_status",
            "Look up the status of a customer's order.",
            _obj({"order_id": S}, ["order_id"]),
        ),
        FunctionTool(
            "convert_currency",
            "Convert an amount of money between currencies.",
            _obj(
                {
                    "amount": N,
                    "from_currency": {"type": "string", "description": "ISO code"},
                    "to_currency": {"type": "string", "description": "ISO code"},
                },
                ["amount", "from_currency", "to_currency"],
            ),
        ),
        FunctionTool(
            "get_stock_price",
            "Get the latest stock price for a ticker symbol.",
            _obj({"symbol": S}, ["symbol"]),
        ),
        FunctionTool(
            "calculate",
            "Evaluate an arithmetic expression exactly.",
            _obj({"expression": S}, ["expression"]),
        ),
        FunctionTool(
            "create_support_ticket",
            "Open a support ticket for a customer problem.",
            _obj(
                {
                    "subject": S,
                    "description": S,
                    "priority": {"type": "string", "enum": ["low", "normal", "high"]},
                },
                ["subject", "description", "priority"],
            ),
        ),
        FunctionTool(
            "lookup_customer",
            "Find a customer account by email address.",
            _obj({"email": S}, ["email"]),
        ),
        FunctionTool(
            "set_reminder",
            "Set a reminder for the user.",
            _obj({"text": S, "time": S}, ["text", "time"]),
        ),
        FunctionTool(
            "translate_text",
            "Translate text into another language.",
            _obj({"text": S, "target_language": S}, ["text", "target_language"]),
        ),
        # The file_search built-in, as the run engine offers it.
        FunctionTool("file_search", DESCRIPTION, PARAMETERS),
        # The code_interpreter built-in, as the run engine offers it.
        FunctionTool("code_interpreter", code_interpreter.DESCRIPTION, code_interpreter.PARAMETERS),
    ]
}
SYSTEM = "You are a helpful assistant for a small online business."


@dataclass
class Outcome:
    text: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)
    finish: str = ""
    first_token_s: float = 0.0
    completion_tokens: int = 0
    prompt_tokens: int = 0


Check = Callable[[Outcome], str | None]
"""Returns None when the outcome is right, else what is wrong."""


@dataclass
class Case:
    category: str
    prompt: str
    tools: list[str]
    check: Check
    history: list[ChatMessage] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel: bool = True
    response_format: dict[str, Any] | None = None


def _norm(value: Any) -> str:
    return str(value).strip().lower().replace(",", "")


def calls(*expected: tuple[str, dict[str, Any]], exact: bool = True) -> Check:
    """Expect these calls (any order); each dict lists argument values to contain."""

    def check(out: Outcome) -> str | None:
        if out.finish != "tool_calls" or not out.calls:
            return f"expected calls, got text {out.text[:80]!r}"
        names = Counter(name for name, _ in out.calls)
        want = Counter(name for name, _ in expected)
        if (names != want) if exact else not (want <= names):
            return f"expected {dict(want)}, got {out.calls}"
        remaining = list(out.calls)
        for name, fragments in expected:
            for i, (got_name, raw) in enumerate(remaining):
                args = json.loads(raw)
                if got_name != name or not matches_schema(args, TOOLS[name].parameters):
                    continue
                if all(_norm(v) in _norm(args.get(k, "")) for k, v in fragments.items()):
                    remaining.pop(i)
                    break
            else:
                return f"no {name} call with {fragments}: {out.calls}"
        return None

    return check


def answer(*fragments: str | tuple[str, ...]) -> Check:
    """Expect a text answer containing each fragment (a tuple means any of them)."""

    def check(out: Outcome) -> str | None:
        if out.calls or out.finish != "stop":
            return f"expected an answer, got {out.finish} {out.calls}"
        if not out.text.strip():
            return "empty answer"
        text = _norm(out.text)
        for fragment in fragments:
            options = fragment if isinstance(fragment, tuple) else (fragment,)
            if not any(_norm(o) in text for o in options):
                return f"answer lacks {options}: {out.text[:120]!r}"
        return None

    return check


def json_answer(schema: dict[str, Any]) -> Check:
    def check(out: Outcome) -> str | None:
        try:
            value = json.loads(out.text)
        except ValueError:
            return f"not JSON: {out.text[:80]!r}"
        return None if matches_schema(value, schema) else f"does not match schema: {value}"

    return check


def after(prompt: str, name: str, args: dict[str, Any], result: Any) -> list[ChatMessage]:
    """A history where the assistant called ``name`` and the tool answered ``result``."""
    call = ToolCall("call_bench0000000000000000001", name, json.dumps(args))
    return [
        ChatMessage("user", prompt),
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage(
            "tool", result if isinstance(result, str) else json.dumps(result), tool_call_id=call.id
        ),
    ]


FS = "file_search"
CI = "code_interpreter"


def code(*fragments: str | tuple[str, ...]) -> Check:
    """Expect one code_interpreter call whose code compiles as Python and contains
    each fragment (a tuple means any of them). The code is only compiled here, never
    run outside the sandbox."""

    def check(out: Outcome) -> str | None:
        if out.finish != "tool_calls" or [n for n, _ in out.calls] != [CI]:
            return (
                f"expected a code_interpreter call, got {out.finish} {out.calls or out.text[:80]}"
            )
        source = str(json.loads(out.calls[0][1]).get("input", ""))
        try:
            compile(source, "<code_interpreter>", "exec")
        except SyntaxError as exc:
            return f"the code does not compile ({exc.msg}): {source[:120]!r}"
        for fragment in fragments:
            options = fragment if isinstance(fragment, tuple) else (fragment,)
            if not any(o in source for o in options):
                return f"the code lacks {options}: {source[:120]!r}"
        return None

    return check


def found(query: str, *passages: tuple[str, str]) -> str:
    """What the model reads after a search: ``passages`` as (file name, text)."""
    results = [
        {"file_id": f"file-{i}", "file_name": name, "score": 0.9,
         "content": [{"type": "text", "text": text}]}
        for i, (name, text) in enumerate(passages)
    ]  # fmt: skip
    return render(0, results, query=query)


W, E, ORD, P, C, K = (
    "get_weather",
    "send_email",
    "get_order_status",
    "search_products",
    "convert_currency",
    "get_stock_price",
)

CASES: list[Case] = [
    # --- call the right function with the right arguments ---------------------------
    Case("call", "What's the weather in Paris?", [W, E], calls((W, {"city": "paris"}))),
    Case(
        "call",
        "Is it cold in Tokyo today? Give me the temperature in fahrenheit.",
        [W, E, K],
        calls((W, {"city": "tokyo", "unit": "fahrenheit"})),
    ),
    Case(
        "call",
        "Send an email to alice@example.com with the subject 'Lunch' saying let's meet at noon.",
        [W, E],
        calls((E, {"to": "alice@example.com", "subject": "lunch"})),
    ),
    Case(
        "call",
        "Where is my order A1234?",
        [ORD, P, "create_support_ticket"],
        calls((ORD, {"order_id": "a1234"})),
    ),
    Case(
        "call",
        "Find me running shoes under 80 dollars.",
        [P, ORD],
        calls((P, {"query": "shoe", "max_price": 80})),
    ),
    Case(
        "call",
        "How much is 250 US dollars in euros?",
        [C, K],
        calls((C, {"amount": 250, "from_currency": "usd", "to_currency": "eur"})),
    ),
    Case(
        "call",
        "What's the current stock price of Apple (AAPL)?",
        [K, C],
        calls((K, {"symbol": "aapl"})),
    ),
    Case(
        "call",
        "What is 1234 * 5678 exactly?",
        ["calculate", W],
        calls(("calculate", {"expression": "1234"})),
    ),
    Case(
        "call",
        "Put 'Budget review' in my calendar on 2025-03-14 at 10:00.",
        ["create_calendar_event", E],
        calls(("create_calendar_event", {"title": "budget review", "date": "2025-03-14"})),
    ),
    Case(
        "call",
        "My laptop screen is broken and I need it for work tomorrow. "
        "Please open a high priority ticket.",
        ["create_support_ticket", "lookup_customer"],
        calls(("create_support_ticket", {"priority": "high"})),
    ),
    Case(
        "call",
        "Look up the customer account for jane.doe@acme.io",
        ["lookup_customer", "create_support_ticket"],
        calls(("lookup_customer", {"email": "jane.doe@acme.io"})),
    ),
    Case(
        "call",
        "Remind me to call mom at 6pm.",
        ["set_reminder", "create_calendar_event"],
        calls(("set_reminder", {"text": "mom"})),
    ),
    Case(
        "call",
        "Translate 'good morning' into Spanish.",
        ["translate_text", W],
        calls(("translate_text", {"text": "good morning", "target_language": "s"})),
    ),
    Case(
        "call",
        "Can you check the status of order 99812?",
        [ORD, "lookup_customer"],
        calls((ORD, {"order_id": "99812"})),
    ),
    Case(
        "call",
        "Convert 100 GBP to JPY please.",
        [C, "calculate"],
        calls((C, {"amount": 100, "from_currency": "gbp", "to_currency": "jpy"})),
    ),
    Case(
        "call",
        "What's the weather like in Berlin right now?",
        [K, W, "calculate"],
        calls((W, {"city": "berlin"})),
    ),
    Case("call", "TSLA price?", [K, W], calls((K, {"symbol": "tsla"}))),
    Case(
        "call",
        "Email bob@corp.com, subject 'Report', body 'The Q3 report is attached.'",
        [E, "set_reminder"],
        calls((E, {"to": "bob@corp.com", "subject": "report", "body": "q3"})),
    ),
    # --- answer directly: the tools do not help ---------------------------------------
    Case("direct", "Write a Python function that reverses a string.", [W, E], answer("def")),
    Case("direct", "What is the capital of France?", [W, K], answer("paris")),
    Case("direct", "Hi! How are you today?", [ORD, P], answer()),
    Case("direct", "Explain what a REST API is in one sentence.", [W, E], answer("api")),
    Case(
        "direct",
        "Thanks, that's all I needed!",
        ["create_support_ticket", "lookup_customer"],
        answer(),
    ),
    Case(
        "direct",
        "What does the HTTP status code 404 mean?",
        [ORD, "create_support_ticket"],
        answer(("not found", "not be found", "does not exist", "doesn't exist", "could not")),
    ),
    Case(
        "direct",
        "Write a SQL query that counts the rows of a table named users.",
        [P, ORD],
        answer("count"),
    ),
    Case(
        "direct",
        "Who wrote Romeo and Juliet?",
        ["create_calendar_event", "set_reminder"],
        answer("shakespeare"),
    ),
    Case("direct", "How do you say 'hello' in French?", [W, E], answer("bonjour")),
    Case("direct", "What is 2 + 2?", [W, E], answer("4")),
    Case("direct", "Tell me a short joke.", [K, C], answer()),
    Case(
        "direct",
        "How do I create an empty list in Python?",
        ["create_support_ticket", "lookup_customer"],
        answer(("[]", "list()")),
    ),
    Case("direct", "What's the weather in Paris?", [W, E], answer(), tool_choice="none"),
    # --- parallel calls ------------------------------------------------------------------
    Case(
        "parallel",
        "What's the weather in Paris and in London?",
        [W, E],
        calls((W, {"city": "paris"}), (W, {"city": "london"})),
    ),
    Case(
        "parallel",
        "Get me the stock prices of AAPL and MSFT.",
        [K, C],
        calls((K, {"symbol": "aapl"}), (K, {"symbol": "msft"})),
    ),
    Case(
        "parallel",
        "Check the status of orders A100 and B200.",
        [ORD, P],
        calls((ORD, {"order_id": "a100"}), (ORD, {"order_id": "b200"})),
    ),
    Case(
        "parallel",
        "Convert 10 USD to EUR, and also 10 USD to GBP.",
        [C, K],
        calls((C, {"to_currency": "eur"}), (C, {"to_currency": "gbp"})),
    ),
    Case(
        "parallel",
        "Tell me the weather in Madrid, and email tom@x.org with subject 'Hi' "
        "and body 'Hello Tom'.",
        [W, E],
        calls((W, {"city": "madrid"}), (E, {"to": "tom@x.org"})),
    ),
    Case(
        "parallel",
        "Remind me to drink water at 3pm and to stretch at 4pm.",
        ["set_reminder", W],
        calls(("set_reminder", {"text": "water"}), ("set_reminder", {"text": "stretch"})),
    ),
    # --- answer from the tool result ------------------------------------------------------
    Case(
        "result",
        "",
        [W, E],
        answer("18"),
        history=after(
            "What's the weather in Paris?",
            W,
            {"city": "Paris"},
            {"temp_c": 18, "condition": "sunny"},
        ),
    ),
    Case(
        "result",
        "",
        [ORD, P],
        answer("shipped"),
        history=after(
            "Where is my order A1234?",
            ORD,
            {"order_id": "A1234"},
            {"status": "shipped", "eta": "2025-06-02"},
        ),
    ),
    Case(
        "result",
        "",
        [K, C],
        answer("189.5"),
        history=after(
            "What's AAPL trading at?", K, {"symbol": "AAPL"}, {"symbol": "AAPL", "price": 189.5}
        ),
    ),
    Case(
        "result",
        "",
        [C, K],
        answer("231.25"),
        history=after(
            "How much is 250 USD in EUR?",
            C,
            {"amount": 250, "from_currency": "USD", "to_currency": "EUR"},
            {"result": 231.25},
        ),
    ),
    Case(
        "result",
        "",
        ["calculate", W],
        answer("7006652"),
        history=after(
            "What is 1234 * 5678?", "calculate", {"expression": "1234 * 5678"}, "7006652"
        ),
    ),
    Case(
        "result",
        "",
        ["lookup_customer", "create_support_ticket"],
        answer("premium"),
        history=after(
            "Which plan is jane@acme.io on?",
            "lookup_customer",
            {"email": "jane@acme.io"},
            {"name": "Jane Doe", "plan": "premium"},
        ),
    ),
    Case(
        "result",
        "",
        ["create_support_ticket", "lookup_customer"],
        answer("t-5521"),
        history=after(
            "Open a ticket: my printer is jammed.",
            "create_support_ticket",
            {
                "subject": "Printer jammed",
                "description": "My printer is jammed.",
                "priority": "normal",
            },
            {"ticket_id": "T-5521", "status": "open"},
        ),
    ),
    Case(
        "result",
        "",
        [E, W],
        answer(("sent", "email")),
        history=after(
            "Email ann@x.com that I'm running late.",
            E,
            {"to": "ann@x.com", "subject": "Running late", "body": "I'm running late."},
            {"ok": True},
        ),
    ),
    Case(
        "result",
        "",
        [P, ORD],
        answer("trail runner"),
        history=after(
            "Show me running shoes under $80",
            P,
            {"query": "running shoes", "max_price": 80},
            [{"name": "Trail Runner X", "price": 59.99}, {"name": "Road Pro 2", "price": 74.5}],
        ),
    ),
    Case(
        "result",
        "",
        [W, E],
        answer("18", "12"),
        history=[
            ChatMessage("user", "Weather in Paris and London?"),
            ChatMessage(
                "assistant",
                None,
                tool_calls=(
                    ToolCall("call_bench0000000000000000001", W, '{"city": "Paris"}'),
                    ToolCall("call_bench0000000000000000002", W, '{"city": "London"}'),
                ),
            ),
            ChatMessage(
                "tool",
                '{"city": "Paris", "temp_c": 18}',
                tool_call_id="call_bench0000000000000000001",
            ),
            ChatMessage(
                "tool",
                '{"city": "London", "temp_c": 12}',
                tool_call_id="call_bench0000000000000000002",
            ),
        ],
    ),
    # --- forced choices and output formats -------------------------------------------------
    Case(
        "forced",
        "What's it like in Paris?",
        [W, E],
        calls((W, {"city": "paris"})),
        tool_choice=NamedToolChoice(W),
    ),
    Case(
        "forced",
        "I need the status of order 555.",
        [ORD, P],
        calls((ORD, {"order_id": "555"})),
        tool_choice="required",
    ),
    Case(
        "forced",
        "Let Bob (bob@x.com) know that the build passed.",
        [E, W],
        calls((E, {"to": "bob@x.com"})),
        tool_choice=NamedToolChoice(E),
    ),
    Case(
        "forced",
        "What's the weather in Paris and in London?",
        [W, E],
        calls((W, {})),
        parallel=False,
    ),
    Case(
        "json",
        "List three primary colors as JSON with a key named colors.",
        [],
        json_answer(
            {"type": "object", "required": ["colors"], "properties": {"colors": {"type": "array"}}}
        ),
        response_format={"type": "json_object"},
    ),
    Case(
        "json",
        "Extract the person: 'Maria is 34 years old.'",
        [],
        json_answer(PERSON := _obj({"name": S, "age": {"type": "integer"}}, ["name", "age"])),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON},
        },
    ),
    # --- file_search: search when the answer is in the files, answer from results -------
    Case(
        "file_search",
        "According to our employee handbook, how many vacation days do new hires get?",
        [FS],
        calls((FS, {"query": "vacation"})),
    ),
    Case(
        "file_search",
        "Search my uploaded notes: what time is high tide in Brest on Saturday?",
        [FS, W],
        calls((FS, {"query": "tide"})),
    ),
    Case(
        "file_search",
        "What does the refund policy document say about opened items?",
        [FS, ORD],
        calls((FS, {})),
    ),
    Case("file_search", "What is 7 times 6?", [FS], answer("42")),
    Case(
        "file_search",
        "",
        [FS],
        answer("25"),
        history=after(
            "According to our employee handbook, how many vacation days do new hires get?",
            FS,
            {"query": "vacation days new hires"},
            found(
                "vacation days new hires",
                ("handbook.md", "New hires get 25 vacation days a year, plus public holidays."),
                ("benefits.md", "Dental cover starts after three months."),
            ),
        ),
    ),
    Case(
        "file_search",
        "",
        [FS],
        answer(("noon", "12")),
        history=after(
            "Search my notes: what time is high tide in Brest on Saturday?",
            FS,
            {"query": "high tide Brest Saturday"},
            found("high tide", ("notes.md", "The high tide in Brest is at noon on Saturday.")),
        ),
    ),
    Case(
        "file_search",
        "",
        [FS, ORD],
        answer("14"),
        history=after(
            "What does the refund policy say about opened items?",
            FS,
            {"query": "refund opened items"},
            found(
                "refund opened items",
                ("refunds.pdf", "Opened items can be returned within 14 days for store credit."),
            ),
        ),
    ),
    Case(
        "file_search",
        "Look this up in the files: who approves travel expenses?",
        [FS],
        calls((FS, {})),
        tool_choice=NamedToolChoice(FS),
    ),
    # --- code_interpreter: write working code for small data questions -----------------
    Case(
        "code",
        "Use Python to compute the sum of the squares of the integers from 1 to 100.",
        [CI],
        code(("range", "sum")),
    ),
    Case(
        "code",
        "The file /mnt/data/sales.csv has columns region and amount. Compute the average "
        "amount per region.",
        [CI, ORD],
        code("read_csv", ("groupby", "mean")),
    ),
    Case(
        "code",
        "Plot a bar chart of these values: apples 3, pears 5, plums 2.",
        [CI],
        code(("plt", "matplotlib"), "bar"),
    ),
    Case(
        "code",
        "How many rows does /mnt/data/events.csv have?",
        [CI],
        code(("read_csv", "open(", "csv")),
        tool_choice=NamedToolChoice(CI),
    ),
    Case(
        "code",
        "",
        [CI],
        answer("338350"),
        history=after(
            "Use Python to compute the sum of the squares of the integers from 1 to 100.",
            CI,
            {"input": "print(sum(i * i for i in range(1, 101)))"},
            "338350\n",
        ),
    ),
    Case("code", "What is the capital of Italy?", [CI], answer("rome")),
]


def request_for(case: Case, model: str, temperature: float | None) -> ModelRequest:
    messages = [ChatMessage("system", SYSTEM), *case.history]
    if case.prompt:
        messages.append(ChatMessage("user", case.prompt))
    return ModelRequest(
        model=model, messages=messages, tools=[TOOLS[n] for n in case.tools],
        tool_choice=case.tool_choice, parallel_tool_calls=case.parallel,
        response_format=case.response_format, temperature=temperature,
    )  # fmt: skip


async def run_one(backend: LocalBackend, request: ModelRequest) -> Outcome:
    out = Outcome()
    started = time.perf_counter()
    pending: dict[int, list[str]] = defaultdict(lambda: ["", ""])
    async for event in backend.stream(request):
        if not out.first_token_s:
            # A reply cut off by a one-token budget inside a call ends with Finish
            # alone, as soon as that token is decoded: its first event is the mark.
            out.first_token_s = time.perf_counter() - started
        if isinstance(event, TextDelta):
            out.text += event.text
        elif isinstance(event, ToolCallDelta):
            pending[event.index][0] += event.name or ""
            pending[event.index][1] += event.arguments
        else:
            out.finish = event.reason
            out.completion_tokens = event.usage.completion_tokens
            out.prompt_tokens = event.usage.prompt_tokens
    out.calls = [(name, args) for name, args in (pending[i] for i in sorted(pending))]
    return out


async def evaluate(backend: LocalBackend, model: str, args: argparse.Namespace) -> float:
    cases = [c for c in CASES if not args.only or c.category in args.only]
    passed: Counter[str] = Counter()
    total: Counter[str] = Counter()
    started = time.perf_counter()
    for i, case in enumerate(cases):
        out = await run_one(backend, request_for(case, model, args.temperature))
        problem = case.check(out)
        total[case.category] += 1
        passed[case.category] += problem is None
        if problem or args.verbose:
            mark = "ok  " if problem is None else "FAIL"
            print(
                f"  {mark} #{i:02d} [{case.category}] {case.prompt or case.history[0].content!r}: "
                f"{problem or (out.calls or out.text[:80])}",
                flush=True,
            )
    score = sum(passed.values()) / max(sum(total.values()), 1)
    for category in total:
        print(f"  {category:9s} {passed[category]:2d}/{total[category]:2d}")
    print(
        f"eval {backend.resolve_model(model)}: {sum(passed.values())}/{sum(total.values())} "
        f"= {score:.1%} in {time.perf_counter() - started:.0f}s"
    )
    return score


SPEED_SYSTEM = (
    "You are the assistant of Northwind Outfitters, an online shop for outdoor gear. Answer "
    "customers politely and concisely. Use the tools to look up orders, products and customer "
    "accounts, and to open support tickets; never invent order data. If a question is not about "
    "the shop, answer it briefly anyway."
)


async def speed(backend: LocalBackend, model: str) -> None:
    tools = [TOOLS[n] for n in (ORD, P, "lookup_customer", "create_support_ticket")]

    def req(question: str, max_tokens: int | None = None) -> ModelRequest:
        return ModelRequest(
            model=model,
            tools=tools,
            max_tokens=max_tokens,
            messages=[ChatMessage("system", SPEED_SYSTEM), ChatMessage("user", question)],
        )

    cold = await run_one(backend, req("Hi! What kind of shop is this?", 1))
    warm = [
        await run_one(backend, req(q, 1))
        for q in ("Do you sell tents?", "What are your opening hours?", "Can I pay by card?")
    ]
    essay = req("Write a detailed paragraph about how to choose a good hiking backpack.", 200)
    started = time.perf_counter()
    long = await run_one(backend, essay)
    elapsed = time.perf_counter() - started
    decode = (long.completion_tokens - 1) / max(elapsed - long.first_token_s, 1e-9)
    warm_ttft = sorted(o.first_token_s for o in warm)[len(warm) // 2]
    print(
        f"speed {backend.resolve_model(model)}: prompt {cold.prompt_tokens} tokens "
        f"(instructions + {len(tools)} tools) | "
        f"TTFT cold {cold.first_token_s:.2f}s, warm {warm_ttft:.2f}s (median of 3) | "
        f"decode {decode:.1f} tokens/s over {long.completion_tokens} tokens | "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="qwen2.5-coder-1.5b", help="a THREADLINE_LOCAL_MODEL value"
    )
    parser.add_argument("--data-dir", default=os.environ.get("THREADLINE_DATA_DIR", "data"))
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--only", nargs="*", help="categories to run")
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    settings = Settings(data_dir=Path(args.data_dir), local_model=args.model)
    embed = LocalEmbedder().embed_sync
    backend = LocalBackend(settings, need=NeedGate(embed), route=ToolRouter(embed))
    started = time.perf_counter()
    await backend.warm_up()
    print(
        f"load {backend.resolve_model('gpt-4o')}: {time.perf_counter() - started:.2f}s", flush=True
    )
    try:
        if not args.no_speed:
            await speed(backend, "gpt-4o-mini")
        if not args.no_eval:
            await evaluate(backend, "gpt-4o-mini", args)
    finally:
        await backend.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
