"""The embedded ``local`` backend: a GGUF model run in-process by llama.cpp on the CPU.

One worker thread runs every model call, one at a time and in arrival order, so the
event loop never blocks and concurrent runs queue fairly. Sampling is done here in
numpy over the model's logits, which lets grammars (forced tool calls, JSON output)
filter only the top candidates instead of the whole vocabulary, and lets the auto
tool choice look at how likely a call is before committing to one.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threadline.models.base import (
    ChatMessage,
    Finish,
    FinishReason,
    ModelBackend,
    ModelError,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from threadline.models.local_assets import VARIANTS, ModelVariant, ensure_model_file, find_variant
from threadline.models.local_tools import (
    AnswerStream,
    Grammar,
    ParsedCall,
    Plan,
    Sampling,
    adds_information,
    all_repeats,
    calls_grammar,
    grounded,
    json_grammar,
    load_llama_cpp,
    may_want_more_calls,
    new_call_id,
    parse_tool_calls,
    plan_request,
    render_chatml,
    sample_token,
    sampling_for,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from threadline.settings import Settings

log = logging.getLogger(__name__)

CANDIDATES = 64
"""How many of the most likely tokens the sampler (and a grammar) looks at per step."""
CALL_THRESHOLD = 0.5
"""The auto tool choice calls a tool when a call start has at least this probability."""
PREFILL_CHUNK = 256
MAX_PARALLEL_CALLS = 8
REPEAT_WINDOW = 64
_Emit = Callable[["ModelEvent | BaseException | None"], None]


@dataclass
class _Decoded:
    text: str = ""
    ids: list[int] = field(default_factory=list)
    length: bool = False
    """Stopped by the token budget rather than by the model."""


class _Engine:
    """One loaded model plus its decoding loop. Only ever used from the worker thread."""

    def __init__(self, path: Path, name: str, settings: Settings) -> None:
        import numpy as np

        llama_cpp = load_llama_cpp()
        self._lib = llama_cpp
        self.name = name
        threads = settings.local_threads or os.cpu_count() or 1
        self.llm = llama_cpp.Llama(
            model_path=str(path), n_ctx=settings.local_context_window, n_batch=512,
            n_threads=threads, n_threads_batch=threads, chat_format="chatml", verbose=False,
        )  # fmt: skip
        self.n_ctx: int = self.llm.n_ctx()
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.n_vocab: int = self.llm.n_vocab()
        self.rng = np.random.default_rng()
        self._pieces: dict[int, str] = {}
        self.logits_at = -1
        """The number of evaluated tokens whose next-token logits are current."""
        call_ids = self.llm.tokenize(b"<tool_call>", add_bos=False, special=True)
        self.tool_call_token = call_ids[0] if len(call_ids) == 1 else -1
        self.newline = list(self.llm.tokenize(b"\n", add_bos=False, special=True))
        template = str(self.llm.metadata.get("tokenizer.chat_template", ""))
        if template and "<|im_start|>" not in template:
            log.warning("%s has no ChatML template; prompts use ChatML anyway", name)

    # -- tokens -------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=True, special=True))

    def piece(self, token: int) -> str:
        if token not in self._pieces:
            raw = self.llm.detokenize([token], special=True)
            self._pieces[token] = raw.decode("utf-8", errors="replace")
        return self._pieces[token]

    def is_eog(self, token: int) -> bool:
        """End of turn, or a control token that has no place in a reply."""
        lib, vocab = self._lib, self.vocab
        return bool(
            lib.llama_vocab_is_eog(vocab, token) or lib.llama_vocab_is_control(vocab, token)
        )

    def is_call_start(self, token: int, json_mode: bool) -> bool:
        """Whether a reply starting with ``token`` is (likely) a tool call."""
        if token == self.tool_call_token:
            return True
        piece = self.piece(token).strip().lstrip(">")
        return piece.startswith("<tool") or (not json_mode and piece.startswith(("{", "[{")))

    def is_fence(self, token: int) -> bool:
        return self.piece(token).strip().startswith("`")

    # -- decoding -----------------------------------------------------------------

    def prefill(self, tokens: list[int], stop: threading.Event) -> None:
        """Evaluate ``tokens``, reusing the cached prefix, so their logits are ready."""
        import numpy as np

        llm = self.llm
        cached = llm._input_ids
        wanted = np.asarray(tokens, dtype=cached.dtype)
        if self.logits_at == len(tokens) == len(cached) and np.array_equal(cached, wanted):
            return  # exactly this prompt was just evaluated
        limit = min(len(cached), len(tokens) - 1)
        differ = np.flatnonzero(cached[:limit] != wanted[:limit])
        keep = int(differ[0]) if len(differ) else limit
        if keep == 0 or not llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.reset()
            keep = 0
        llm.n_tokens = keep
        for start in range(keep, len(tokens), PREFILL_CHUNK):
            if stop.is_set():
                raise _Stopped
            llm.eval(tokens[start : start + PREFILL_CHUNK])
        self.logits_at = len(tokens)

    def candidates(
        self, grammar: Grammar | None, reject: Callable[[int], bool] | None
    ) -> tuple[npt.NDArray[np.intc], npt.NDArray[np.float32]]:
        """The most likely next tokens (best first) with their logits, filtered."""
        import numpy as np

        ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        logits: npt.NDArray[np.float32] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        ids = np.argpartition(logits, -CANDIDATES)[-CANDIDATES:].astype(np.intc)
        ids = ids[np.argsort(-logits[ids])]
        if reject is not None:
            ids = ids[[not reject(int(t)) for t in ids]]
        if grammar is not None:
            ok = grammar.allowed(ids)
            if ok.any():
                ids = ids[ok]
            else:  # the grammar wants a token outside the top candidates
                everything = np.arange(self.n_vocab, dtype=np.intc)
                allowed = everything[grammar.allowed(everything)]
                ids = allowed[np.argsort(-logits[allowed])][:CANDIDATES]
        if len(ids) == 0:
            raise ModelError("internal error: no token is allowed here")
        return ids, logits[ids].astype(np.float32)

    def decode(
        self,
        prompt: list[int],
        *,
        budget: int,
        sampling: Sampling,
        stop: threading.Event,
        grammar_text: str | None = None,
        on_text: Callable[[str], bool] | None = None,
        reject_first: Callable[[int], bool] | None = None,
    ) -> _Decoded:
        """Generate after ``prompt`` until the end of turn, ``budget`` tokens, or
        ``on_text`` returning False. ``reject_first`` filters tokens while the output is
        still blank."""
        self.prefill(prompt, stop)
        grammar = Grammar(self._lib, self.vocab, grammar_text) if grammar_text else None
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out = _Decoded()
        try:
            while len(out.ids) < budget:
                if stop.is_set():
                    raise _Stopped
                reject = reject_first if not out.text.strip() else None
                ids, logits = self.candidates(grammar, reject)
                token = sample_token(ids, logits, sampling, self.rng, out.ids[-REPEAT_WINDOW:])
                if self.is_eog(token):
                    return out
                if grammar is not None:
                    grammar.accept(token)
                out.ids.append(token)
                text = utf8.decode(self.llm.detokenize([token], special=True))
                out.text += text
                if on_text is not None and text and not on_text(text):
                    return out
                self.llm.eval([token])
                self.logits_at = self.llm.n_tokens
            out.length = True
            return out
        finally:
            if grammar is not None:
                grammar.close()

    def call_probability(self, json_mode: bool, stop: threading.Event) -> float:
        """How likely the reply starts with a tool call rather than text.

        A leading code fence is ambiguous (a code answer, or a fenced JSON call), so it
        is looked past by one token.
        """
        import numpy as np

        ids, logits = self.candidates(None, None)
        probs = np.exp(logits - logits[0])
        probs /= probs.sum()
        call = text = fence = 0.0
        fence_token = -1
        for token, p in zip(ids.tolist(), probs.tolist(), strict=True):
            if self.is_fence(token):
                fence += p
                fence_token = token if fence_token < 0 else fence_token
            elif self.is_call_start(token, json_mode):
                call += p
            elif self.piece(token).strip() or self.is_eog(token):
                text += p
        if fence > 0.1 and not json_mode:
            at = self.llm.n_tokens
            self.prefill([*self.llm._input_ids[:at].tolist(), fence_token], stop)
            after = self.piece(int(self.candidates(None, None)[0][0])).strip().lower()
            fenced_call = after in ("json", "xml", "tool", "tool_call", "<tool_call>")
            call, text = (call + fence, text) if fenced_call else (call, text + fence)
        return call / (call + text) if call + text else 0.0


class _Stopped(Exception):
    """The consumer went away; generation stops between tokens."""


class _Call:
    """One model call on the worker thread: plans, decodes, emits events."""

    def __init__(self, engine: _Engine, request: ModelRequest, emit: _Emit, stop: threading.Event):
        self.engine, self.request, self.emit, self.stop = engine, request, emit, stop
        self.plan: Plan = plan_request(request)
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
        self.prompt_tokens = len(self.prompt)

    def run(self) -> None:
        plan = self.plan
        if plan.mode == "text":
            return self._text(allow_calls=False)
        if plan.mode == "auto":
            self.engine.prefill(self.prompt, self.stop)
            if self.engine.call_probability(plan.json_mode, self.stop) < CALL_THRESHOLD:
                return self._text(allow_calls=True)
        calls = self._calls()
        if calls is None:
            return self._finish("length")
        if calls:
            return self._emit_calls(calls)
        self._text(allow_calls=True)

    def _finish(self, reason: FinishReason) -> None:
        self.emit(Finish(reason, Usage(self.prompt_tokens, self.used)))

    def _decode(
        self, prompt: list[int] | None = None, *, structured: bool = False, **kwargs: Any
    ) -> _Decoded:
        out = self.engine.decode(
            self.prompt if prompt is None else prompt,
            budget=self.budget - self.used,
            sampling=self.sampling.structured() if structured else self.sampling,
            stop=self.stop,
            **kwargs,
        )
        self.used += len(out.ids)
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
            )
        return grounded(call, plan.tools, plan.context)

    def _calls(self) -> list[ParsedCall] | None:
        """Calls generated one at a time under a grammar; further calls are tried while
        the request may need several and each adds information. ``[]`` when the auto
        choice rejects the call, ``None`` when the token budget ran out."""
        plan, parallel = self.plan, self.request.parallel_tool_calls
        grammar = calls_grammar(plan.tools, parallel=False)
        more = parallel and may_want_more_calls(plan.question)
        prefix, calls = self.prompt, list[ParsedCall]()
        while len(calls) < MAX_PARALLEL_CALLS:
            out = self._decode(prefix, structured=True, grammar_text=grammar)
            parsed = None if out.length else parse_tool_calls(out.text, plan.tools)
            if parsed is None:
                return calls or None
            call = parsed[0]
            if not calls and plan.mode == "auto" and not self._acceptable(call):
                return []
            if calls and not adds_information(call, calls, plan.tools, plan.context):
                break
            calls.append(call)
            if not more:
                break
            prefix = [*prefix, *out.ids, *self.engine.newline]
        return calls

    def _show(self, text: str) -> None:
        self.emit(TextDelta(text))

    def _emit_calls(self, calls: list[ParsedCall]) -> None:
        for index, call in enumerate(calls):
            self.emit(ToolCallDelta(index=index, id=new_call_id(), name=call.name))
            self.emit(ToolCallDelta(index=index, arguments=call.arguments_json))
        self._finish("tool_calls")

    def _text(self, *, allow_calls: bool) -> None:
        """Stream a text (or JSON) answer. With tools offered, the answer may not start
        with a call or be empty; one that still turns into a call is redone without code
        fences, and a ``<tool_call>`` after some text is parsed as calls."""
        engine, plan = self.engine, self.plan
        answer_prompt = None
        if plan.answer_prompt is not None:
            answer_prompt = engine.tokenize(plan.answer_prompt)
            if len(answer_prompt) < engine.n_ctx:
                self.budget = min(self.budget, engine.n_ctx - len(answer_prompt))
                self.prompt_tokens = max(self.prompt_tokens, len(answer_prompt))
            else:
                answer_prompt = None
        grammar = json_grammar(self.request.response_format) if plan.json_mode else None
        for retry in (False, True):
            answer = AnswerStream(self._show, screen=allow_calls and not plan.json_mode,
                                  split=allow_calls, give_up=not retry)  # fmt: skip

            def reject(token: int, retry: bool = retry) -> bool:
                return (engine.is_call_start(token, plan.json_mode) or engine.is_eog(token)
                        or (retry and engine.is_fence(token)))  # fmt: skip

            out = self._decode(answer_prompt, grammar_text=grammar, on_text=answer.feed,
                               reject_first=reject if allow_calls else None)  # fmt: skip
            if not answer.turned_to_call or out.length:
                break
        answer.close()
        if answer.splitter.captured is not None:
            calls = parse_tool_calls(answer.splitter.captured, plan.tools)
            if calls and not out.length and all(self._acceptable(c) for c in calls):
                return self._emit_calls(calls if self.request.parallel_tool_calls else calls[:1])
            self.emit(TextDelta(answer.splitter.captured))
        self._finish("length" if out.length else "stop")


class LocalBackend(ModelBackend):
    """Runs the configured GGUF model in-process (``THREADLINE_MODEL_BACKEND=local``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="threadline-llm")
        self._engines: dict[str, _Engine] = {}
        self._load_lock = threading.Lock()
        self._active: set[threading.Event] = set()

    # -- model names ----------------------------------------------------------------

    def _default_key(self) -> str:
        return "path" if self.settings.local_model_path else self.settings.local_model

    def _key_for(self, requested: str) -> str:
        served = self.settings.model_mapping().get(requested, requested)
        variant = find_variant(served)
        if variant is not None:
            return variant.key
        return self._default_key()

    def _served_name(self, key: str) -> str:
        if key == "path":
            assert self.settings.local_model_path is not None
            return self.settings.local_model_path.stem.lower()
        return VARIANTS[key].served_name

    def resolve_model(self, requested: str) -> str:
        return self._served_name(self._key_for(requested))

    # -- loading ------------------------------------------------------------------

    def _engine(self, key: str) -> _Engine:
        with self._load_lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = _Engine(self._model_path(key), self._served_name(key), self.settings)
                self._engines[key] = engine
            return engine

    def _model_path(self, key: str) -> Path:
        load_llama_cpp()
        if key == "path":
            path = self.settings.local_model_path
            assert path is not None
            if not path.expanduser().is_file():
                raise ModelError(f"THREADLINE_LOCAL_MODEL_PATH {path} is not a file")
            return path.expanduser()
        variant: ModelVariant = VARIANTS[key]
        return ensure_model_file(variant, self.settings.data_dir / "models")

    async def warm_up(self, model: str | None = None) -> None:
        """Assemble (first start only) and load the model, off the event loop."""
        key = self._key_for(model) if model else self._default_key()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._engine, key)

    # -- the ModelBackend interface -------------------------------------------------

    def context_window(self, model: str) -> int:
        return self._engine(self._key_for(model)).n_ctx

    def count_tokens(self, model: str, messages: Sequence[ChatMessage]) -> int:
        engine = self._engine(self._key_for(model))
        return len(engine.tokenize(render_chatml(messages)))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ModelEvent | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: ModelEvent | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone; nobody is listening any more
                stop.set()

        self._active.add(stop)
        loop.run_in_executor(self._executor, self._work, request, emit, stop)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            self._active.discard(stop)

    def _work(self, request: ModelRequest, emit: _Emit, stop: threading.Event) -> None:
        try:
            if stop.is_set():
                return
            engine = self._engine(self._key_for(request.model))
            _Call(engine, request, emit, stop).run()
        except _Stopped:
            pass
        except ModelError as exc:
            emit(exc)
        except Exception as exc:
            log.exception("local model call failed")
            emit(ModelError(f"The local model failed: {exc}"))
        finally:
            emit(None)

    async def aclose(self) -> None:
        for stop in list(self._active):
            stop.set()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        for engine in self._engines.values():
            engine.llm.close()
        self._engines.clear()
