"""One local model call, run on the worker thread: plan it, decode, emit its events.

The tool choice is decided here: text only, a forced call, or (auto) a call when the
model is likely to start one and the call policy accepts it, else a text answer that
may still turn into calls.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from threadline.domain.ids import new_id
from threadline.models.base import (
    Finish,
    FinishReason,
    FunctionTool,
    ModelError,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from threadline.models.local.calls import ParsedCall, parse_tool_calls
from threadline.models.local.engine import Decoded, Engine
from threadline.models.local.facts import facts_of
from threadline.models.local.grammar import calls_grammar, json_grammar
from threadline.models.local.need import NeedGate
from threadline.models.local.planning import Plan, plan_request
from threadline.models.local.policy import (
    CODE_INTERPRETER,
    FILE_SEARCH,
    acts_on,
    adds_information,
    all_repeats,
    carries_values,
    code_worthy,
    grounded,
    may_want_more_calls,
    retry_tools,
    search_worthy,
    without_made_up_numbers,
)
from threadline.models.local.route import ToolRouter
from threadline.models.local.sampling import sampling_for
from threadline.models.local.stream import AnswerStream

CALL_THRESHOLD = 0.15
"""The auto tool choice tries a call when a call start has at least this probability.

Kept low: the 0.5B model often puts the call second to a text opening when the request
does not name the tool ("is it cold in Oslo?"), and a call it should not make is
still caught by the checks on its arguments (``_acceptable``)."""
CALL_WHEN_NEEDED = 0.5
"""The auto tool choice also tries a first call, however unlikely the model makes it,
when the tool-need gate gives the request at least this probability of needing one.
Chosen on the development part (``docs/local-model.md``)."""
MAX_PARALLEL_CALLS = 8
CALL_TOKENS = 256
"""The token budget a call is decoded with when the reply's own is smaller: enough for
the checks to see the whole call before it is taken or rejected."""
CODE_CUE = "I will run Python code for this, printing the results.\n"
"""How the local model's code_interpreter code is cued: a reply opening a fence."""
Emit = Callable[["ModelEvent | BaseException | None"], None]


def _first_call_need(plan: Plan, need: NeedGate) -> float | None:
    """The tool-need gate's probability that an auto tool choice's first call is
    needed; None where the gate does not judge (or could not). A search the plan
    makes of the user's documents stands; after tool results the call policy decides
    (``ModelCall._acceptable``)."""
    if (
        plan.mode != "auto"
        or plan.search_query is not None
        or plan.after_tool_results
        or not plan.question.strip()
    ):
        return None
    return need.probability(plan.question)


class ModelCall:
    """One model call on the worker thread: plans, decodes, emits events."""

    def __init__(
        self,
        engine: Engine,
        request: ModelRequest,
        emit: Emit,
        stop: threading.Event,
        need: NeedGate | None = None,
        route: ToolRouter | None = None,
    ):
        self.engine, self.request, self.emit, self.stop = engine, request, emit, stop
        self.route = route
        self.plan: Plan = plan_request(request)
        self.need = None if need is None else _first_call_need(self.plan, need)
        """The gate's probability that this first call is needed (None: not judged)."""
        if need is not None and need.vetoes(self.need):
            # The gate finds it needs no tool: answered as with tool_choice none.
            self.plan = plan_request(dataclasses.replace(request, tool_choice="none"))
        self.prompt = engine.tokenize(self.plan.prompt)
        if len(self.prompt) >= engine.n_ctx:
            raise ModelError(
                f"The prompt takes {len(self.prompt)} tokens but {engine.name} has a "
                f"context window of {engine.n_ctx}.", code="invalid_prompt",
            )  # fmt: skip
        room = engine.n_ctx - len(self.prompt)
        self.budget = min(room, request.max_tokens) if request.max_tokens else room
        self.sampling = sampling_for(request)
        self.used = 0
        """Tokens decoded, the discarded ones included (the usage reported)."""
        self.spent = 0
        """Tokens that count against ``budget``: those of the reply, not of a call the
        checks rejected or of a text attempt that turned into a call and was redone."""
        self.prompt_tokens = len(self.prompt)
        self.pressed = False
        """A first call tried because the gate finds a tool needed, not the model."""

    def run(self) -> None:
        plan = self.plan
        if plan.search_query is not None:
            return self._emit_calls([ParsedCall(FILE_SEARCH, {"query": plan.search_query})])
        if plan.mode == "text":
            return self._text(allow_calls=False)
        if plan.mode == "auto":
            self.engine.prefill(self.prompt, self.stop)
            likely = self.engine.call_probability(plan.json_mode, self.stop) >= CALL_THRESHOLD
            if not likely and not self._needed():
                return self._text(allow_calls=True)
            self.pressed = not likely
        calls = self._calls()
        if calls is None:
            return self._finish("length")
        if calls:
            return self._emit_calls(calls)
        self._text(allow_calls=True)

    def _needed(self) -> bool:
        """Whether the gate finds a tool needed even though the model is unlikely to
        start a call: the 0.5B model often opens in prose for a request that does
        not name the tool ("any news on T-8802?"); the call the grammar then makes
        still goes through the router and the checks.

        A follow-up (the assistant has answered before) the gate lets through is
        tried as a call at any score: "And Microsoft?" or "What about humidity
        there?" is too short for the gate to judge, and the model answers it in the
        pattern of its last answer, with values it makes up. The call is kept only
        if it acts on the follow-up (``_acceptable``)."""
        if self.need is None:
            return False
        return self.plan.follows_up or self.need >= CALL_WHEN_NEEDED

    def _finish(self, reason: FinishReason) -> None:
        self.emit(Finish(reason, Usage(self.prompt_tokens, self.used)))

    def _decode(
        self,
        prompt: list[int] | None = None,
        *,
        structured: bool = False,
        budget: int | None = None,
        **kwargs: Any,
    ) -> Decoded:
        out = self.engine.decode(
            self.prompt if prompt is None else prompt,
            budget=self.budget - self.spent if budget is None else budget,
            sampling=self.sampling.structured() if structured else self.sampling,
            stop=self.stop,
            **kwargs,
        )
        self.used += len(out.ids)
        self.spent += len(out.ids)
        return out

    def _acceptable(self, call: ParsedCall) -> bool:
        """The auto tool choice's check of a first call: is it wanted at all?

        Once tool results are in, the model should answer from them; another call is
        only taken when the request asks for several things, the function was not
        called yet, and every argument comes from the conversation."""
        plan = self.plan
        if plan.after_tool_results:
            return (
                may_want_more_calls(plan.question)
                and call.name not in plan.turn_functions
                and not all_repeats([call], plan.previous_calls)
                and grounded(call, plan.tools, plan.context, strict=True)
                # Far from the request, a call is not another part of it: "too warm,
                # cool it down to 20" is not also the lights'.
                and self._rerouted(call) is None
            )
        if self.pressed and not (carries_values(call, plan.tools) and acts_on(call, plan.question)):
            # Pressed on a model that would not call, a call must act on something
            # of the request's, the last message's: "Good morning!" is not
            # get_current_time(), and after the bathroom's temperature was read,
            # "Thanks! Say goodbye." is not another reading of it ("What about
            # humidity there?" is).
            return False
        if call.name == FILE_SEARCH and not search_worthy(call):
            return False
        if call.name == CODE_INTERPRETER:
            return code_worthy(call, plan.question)
        return grounded(call, plan.tools, plan.context)

    def _calls(self) -> list[ParsedCall] | None:
        """Calls generated one at a time under a grammar; further calls are tried while
        the request may need several and each adds information. ``[]`` when the auto
        choice rejects the call, ``None`` when the token budget ran out."""
        plan, parallel = self.plan, self.request.parallel_tool_calls
        grammar = calls_grammar(plan.tools, parallel=False)
        # One search answers one question: no parallel searches for its parts.
        searching = all(t.name == FILE_SEARCH for t in plan.tools)
        more = parallel and may_want_more_calls(plan.question) and not searching
        prefix, calls = self.prompt, list[ParsedCall]()
        rejected: list[str] = []
        while len(calls) < MAX_PARALLEL_CALLS:
            # A call is decoded whole even past max_tokens: the checks may reject it,
            # and then the reply is a text answer that needs the budget.
            allowed = self.budget - self.spent
            room = self.engine.n_ctx - len(prefix)
            out = self._decode(prefix, structured=True, grammar_text=grammar,
                               budget=min(room, max(allowed, CALL_TOKENS)))  # fmt: skip
            parsed = None if out.length else parse_tool_calls(out.text, plan.tools)
            if parsed is None:
                return calls or None
            call = parsed[0]
            if call.name == CODE_INTERPRETER:
                call = self._with_written_code(call)
            checked: ParsedCall | None = call
            if plan.mode == "auto":
                checked = without_made_up_numbers(call, plan.tools, plan.context)
                if checked is None and calls:
                    return calls
            first = not calls and plan.mode == "auto"
            better = (
                self._rerouted(call)
                if first and not rejected and not plan.after_tool_results
                else None
            )
            if better is not None:
                # The model's pick is far from what the request is about: its call is
                # dropped (not part of the reply) and decoded again for the closest.
                self.spent -= len(out.ids)
                rejected.append(call.name)
                grammar = calls_grammar((better,), parallel=False)
                continue
            if first and (checked is None or not self._acceptable(checked)):
                # A first call the checks reject: not part of the reply, so its tokens
                # do not count against max_tokens; try the model's next function.
                self.spent -= len(out.ids)
                rejected.append(call.name)
                others = () if plan.after_tool_results else retry_tools(plan.tools, rejected)
                if not others:
                    return []
                grammar = calls_grammar(others, parallel=False)
                continue
            if checked is None:
                return calls
            if len(out.ids) > allowed:  # a call the reply has no room for
                return calls or None
            call = checked
            if calls and not adds_information(call, calls, plan.tools, plan.context):
                break
            calls.append(call)
            if not more:
                break
            prefix = [*prefix, *out.ids, *self.engine.newline]
        return calls

    def _rerouted(self, call: ParsedCall) -> FunctionTool | None:
        """The function the router finds the request far more about than the one
        ``call`` makes (``route.py``); None to keep the call's."""
        if self.route is None:
            return None
        return self.route.better_than(self.plan.question, call.name, self.plan.tools)

    def _with_written_code(self, call: ParsedCall) -> ParsedCall:
        """The call with code the model writes as it writes code best, in a Python
        fence (inside a JSON string it writes a bare value or SQL); the grammar's code
        stays when that fails to compile."""
        fence = "```"
        prompt = self.engine.tokenize(self.plan.prompt + CODE_CUE + fence + "python\n")
        if len(prompt) >= self.engine.n_ctx:
            return call
        written: list[str] = []

        def until_fence(text: str) -> bool:
            written.append(text)
            return fence not in "".join(written)

        out = self._decode(prompt, on_text=until_fence)
        code = "".join(written).split(fence, 1)[0].strip("\n")
        if out.length or not code.strip():
            return call
        try:
            compile(code, "<code_interpreter>", "exec")
        except (SyntaxError, ValueError):
            return call
        return ParsedCall(call.name, {"input": code + "\n"})

    def _show(self, text: str) -> None:
        self.emit(TextDelta(text))

    def _emit_calls(self, calls: list[ParsedCall]) -> None:
        for index, call in enumerate(calls):
            self.emit(ToolCallDelta(index=index, id=new_id("tool_call"), name=call.name))
            self.emit(ToolCallDelta(index=index, arguments=call.arguments_json))
        self._finish("tool_calls")

    def _text(self, *, allow_calls: bool) -> None:
        """Stream a text (or JSON) answer. With tools offered, the answer may not start
        with a call or be empty; one that still turns into a call is redone without code
        fences, and a ``<tool_call>`` after some text is parsed as calls."""
        engine, plan = self.engine, self.plan
        answer_prompt, facts = None, None
        if plan.answer_prompt is not None:
            answer_prompt = engine.tokenize(plan.answer_prompt)
            if len(answer_prompt) < engine.n_ctx:
                self.budget = min(self.budget, engine.n_ctx - len(answer_prompt))
                self.prompt_tokens = max(self.prompt_tokens, len(answer_prompt))
                self.sampling = self.sampling.from_results()
                if not plan.json_mode:  # a JSON answer ends where its grammar does
                    facts = facts_of(plan.results, plan.question)
            else:
                answer_prompt = None
        grammar = json_grammar(self.request.response_format) if plan.json_mode else None
        for retry in (False, True):
            answer = AnswerStream(self._show, screen=allow_calls and not plan.json_mode,
                                  split=allow_calls, give_up=not retry)  # fmt: skip

            def reject(token: int, retry: bool = retry) -> bool:
                return (engine.is_call_start(token, plan.json_mode) or engine.is_eog(token)
                        or (retry and engine.is_fence(token))
                        or (answer_prompt is not None and engine.is_refusal(token)))  # fmt: skip

            out = self._decode(answer_prompt, grammar_text=grammar, on_text=answer.feed,
                               reject_first=reject if allow_calls else None,
                               hold_end=facts.hold_end if facts else None)  # fmt: skip
            if not answer.turned_to_call or out.length:
                break
            self.spent -= len(out.ids)  # redone: the attempt is not part of the reply
        answer.close()
        if answer.splitter.captured is not None:
            calls = parse_tool_calls(answer.splitter.captured, plan.tools)
            if calls and not out.length and all(self._acceptable(c) for c in calls):
                return self._emit_calls(calls if self.request.parallel_tool_calls else calls[:1])
            self.emit(TextDelta(answer.splitter.captured))
        self._finish("length" if out.length else "stop")
