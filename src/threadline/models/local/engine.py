"""The local model's runtime: one loaded GGUF model and its decoding loop.

Sampling is done here in numpy over the model's logits, which lets grammars (forced
tool calls, JSON output) filter only the top candidates instead of the whole
vocabulary, and lets the auto tool choice look at how likely a call is before
committing to one. An ``Engine`` is only ever used from the backend's worker thread.
"""

from __future__ import annotations

import codecs
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from threadline.models.base import ModelError
from threadline.models.local.grammar import Grammar
from threadline.models.local.policy import opens_refusal
from threadline.models.local.runtime import load_llama_cpp
from threadline.models.local.sampling import Sampling, sample_token

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from threadline.settings import Settings

log = logging.getLogger(__name__)

CANDIDATES = 64
"""How many of the most likely tokens the sampler (and a grammar) looks at per step."""
PREFILL_CHUNK = 256
REPEAT_WINDOW = 64


@dataclass
class Decoded:
    text: str = ""
    ids: list[int] = field(default_factory=list)
    length: bool = False
    """Stopped by the token budget rather than by the model."""


class Engine:
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

    def is_refusal(self, token: int) -> bool:
        """Whether a reply starting with ``token`` is likely a refusal ("I'm sorry, but
        I can't assist with that"), which the 0.5B model sometimes writes when it should
        answer from tool results. Such answers can open any other way."""
        return opens_refusal(self.piece(token))

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
                raise Stopped
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
        hold_end: Callable[[str], bool] | None = None,
    ) -> Decoded:
        """Generate after ``prompt`` until the end of turn, ``budget`` tokens, or
        ``on_text`` returning False. ``reject_first`` filters tokens while the output is
        still blank; after that, the end of turn is not a candidate while ``hold_end``
        finds the output so far unfinished."""
        self.prefill(prompt, stop)
        grammar = Grammar(self._lib, self.vocab, grammar_text) if grammar_text else None
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out = Decoded()
        try:
            while len(out.ids) < budget:
                if stop.is_set():
                    raise Stopped
                reject = reject_first if not out.text.strip() else None
                if reject is None and hold_end is not None and hold_end(out.text):
                    reject = self.is_eog
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


class Stopped(Exception):
    """The consumer went away; generation stops between tokens."""
