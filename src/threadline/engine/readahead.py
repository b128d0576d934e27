"""Reading a model's stream ahead of the turn that handles it.

A turn handles each text delta by publishing it (a round trip to the event bus).
When the model sends faster than that (a fast model, a loaded machine, a reply
that arrives in one piece), deltas would queue up one round trip each. Here the
stream is read by a task of its own while the turn handles what came before; the
text deltas that arrived meanwhile are handed over as one. The first delta is
never held back: it goes to the turn as soon as it is read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from threadline.models.base import ModelEvent, TextDelta


class _End:
    """Put after the stream's last event."""


_END = _End()


class ReadAhead:
    """``events`` read by a task of its own; iterate it once, then ``aclose``."""

    def __init__(self, events: AsyncIterator[ModelEvent]) -> None:
        self._source = events
        self._ready: deque[ModelEvent | _End] = deque()
        self._arrived = asyncio.Event()
        self._error: BaseException | None = None
        self._reader = asyncio.create_task(self._read(), name="model-stream")

    async def _read(self) -> None:
        try:
            async for event in self._source:
                self._ready.append(event)
                self._arrived.set()
        except Exception as exc:  # handed to the turn, raised where it reads
            self._error = exc
        finally:
            self._ready.append(_END)
            self._arrived.set()

    def __aiter__(self) -> AsyncIterator[ModelEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ModelEvent]:
        while True:
            while not self._ready:
                self._arrived.clear()
                await self._arrived.wait()
            item = self._ready.popleft()
            if isinstance(item, _End):
                if self._error is not None:
                    raise self._error
                return
            if isinstance(item, TextDelta):
                pieces = [item.text]
                while self._ready and isinstance(self._ready[0], TextDelta):
                    following = self._ready.popleft()
                    assert isinstance(following, TextDelta)
                    pieces.append(following.text)
                if len(pieces) > 1:
                    item = TextDelta("".join(pieces))
            yield item

    async def aclose(self) -> None:
        """Stop reading (the turn ended or was cancelled) and close the stream."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        close = getattr(self._source, "aclose", None)
        if close is not None:
            await close()
