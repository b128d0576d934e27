"""The embedded ``local`` backend: a GGUF model run in-process by llama.cpp on the CPU.

One worker thread runs every model call, one at a time and in arrival order, so the
event loop never blocks and concurrent runs queue fairly. The package's modules:
``engine`` (the loaded model and its decoding loop), ``call`` (one model call),
``prompt``, ``planning``, ``calls`` (parsing a call), ``policy`` (call or answer),
``stream``, ``grammar``, ``sampling``, ``runtime``, ``assets`` (the model file) and
``need`` (whether a request needs a tool at all).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from threadline.models.base import (
    ChatMessage,
    ModelBackend,
    ModelError,
    ModelEvent,
    ModelRequest,
)
from threadline.models.local.assets import VARIANTS, ModelVariant, ensure_model_file, find_variant
from threadline.models.local.call import Emit, ModelCall
from threadline.models.local.engine import Engine, Stopped
from threadline.models.local.need import NeedGate
from threadline.models.local.prompt import render_chatml
from threadline.models.local.route import ToolRouter
from threadline.models.local.runtime import load_llama_cpp

if TYPE_CHECKING:
    from threadline.settings import Settings

log = logging.getLogger(__name__)


class LocalBackend(ModelBackend):
    """Runs the configured GGUF model in-process (``THREADLINE_MODEL_BACKEND=local``)."""

    def __init__(
        self, settings: Settings, need: NeedGate | None = None, route: ToolRouter | None = None
    ) -> None:
        """``need``: the gate that answers requests needing no tool without a call
        (None: the model alone decides); ``route``: the check of the function the
        model picks against the request (None: its pick stands)."""
        self.settings = settings
        self.need = need
        self.route = route
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="threadline-llm")
        self._engines: dict[str, Engine] = {}
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

    def _engine(self, key: str) -> Engine:
        with self._load_lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = Engine(self._model_path(key), self._served_name(key), self.settings)
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
        if self.need is not None:
            await loop.run_in_executor(self._executor, self.need.probability, "hello")

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

    def _work(self, request: ModelRequest, emit: Emit, stop: threading.Event) -> None:
        try:
            if stop.is_set():
                return
            engine = self._engine(self._key_for(request.model))
            ModelCall(engine, request, emit, stop, self.need, self.route).run()
        except Stopped:
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
