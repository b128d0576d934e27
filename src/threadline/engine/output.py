"""What one model call of a run produces, as it streams: the assistant message
and its step, or the tool-call step; deltas go to the event bus only, and the
finished objects are stored with the run's final write (``finished``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.domain.run_status import RunStatus
from threadline.engine import objects
from threadline.engine.events import EventBus, Events
from threadline.engine.lifecycle import TurnEnd
from threadline.errors import ConflictError
from threadline.models.base import ModelError, ToolCallDelta, Usage
from threadline.storage import run_writes
from threadline.storage import runs as store
from threadline.storage.db import Database

LINK = "sandbox:"
"""How code_interpreter's links to files start (``sandbox:/mnt/data/<name>``)."""
LINK_ENDS = frozenset(" \t\n)]\"'<>")
"""Characters that end such a link."""


def _ended(text: str, note: dict[str, Any]) -> bool:
    """Whether a character that ends a link follows the annotated one in ``text``."""
    return not LINK_ENDS.isdisjoint(text[int(note["end_index"]) :])


class TurnOutput:
    def __init__(
        self,
        run: dict[str, Any],
        db: Database,
        bus: EventBus,
        worker_id: str,
        tools: list[dict[str, Any]],
        builtins: frozenset[str] = frozenset(),
        annotate: Callable[[str], list[dict[str, Any]]] | None = None,
        parts: list[dict[str, Any]] | None = None,
    ) -> None:
        self.run = run
        self.db = db
        self.bus = bus
        self.worker_id = worker_id
        self.functions = {t["function"]["name"] for t in tools if t.get("type") == "function"}
        self.builtins = builtins  # the built-in tools offered to this model call
        self.builtin_done: dict[int, dict[str, Any]] = {}  # executed, by call index
        self.annotate = annotate  # the annotations of the message's text so far
        self._annotated = 0  # how many annotations the deltas carried
        self._unsent: list[dict[str, Any]] = []  # annotations the text's end completed
        self._link_open = False  # a sandbox link may still be growing at the text's end
        self._recent = ""  # the text's last characters, to find a link split over pieces
        self.parts = parts or []  # the message's parts after its text (images)
        self.message: dict[str, Any] | None = None
        self.message_step: dict[str, Any] | None = None
        self.tool_step: dict[str, Any] | None = None
        self.text_parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}

    async def _store_new(self, objects_: list[tuple[str, dict[str, Any]]]) -> None:
        """Insert new steps/messages, if the run is still this worker's to write."""
        async with self.db.single_write() as conn:
            held = await store.insert_output_if_held(conn, self.run["id"], self.worker_id, objects_)
        if not held:
            raise ConflictError(f"Run {self.run['id']} is no longer executing here.")

    async def _publish(self, events: Events) -> None:
        await self.bus.publish_all(self.run["id"], events)

    def _new_message(self) -> Events:
        self.message = objects.new_assistant_message(self.run)
        self.message_step = objects.new_step(
            self.run, objects.message_creation_details(self.message["id"])
        )
        return [
            ("thread.run.step.created", self.message_step),
            ("thread.run.step.in_progress", self.message_step),
            ("thread.message.created", self.message),
            ("thread.message.in_progress", self.message),
        ]

    async def text(self, piece: str) -> None:
        if not piece:
            return
        first = self.message is None
        events: Events = []
        if first:
            events = self._new_message()
            assert self.message is not None
            assert self.message_step is not None
            await self._store_new([("step", self.message_step), ("message", self.message)])
        assert self.message is not None
        self.text_parts.append(piece)
        events.append(
            (
                "thread.message.delta",
                objects.message_delta(
                    self.message["id"], piece, first=first, annotations=self._new_annotations(piece)
                ),
            )
        )
        await self._publish(events)
        if first:
            # Let the streams send the first delta now: when the model's next chunks
            # are already here, this task would otherwise go on through all of them
            # (and the run's final write) before any stream got the chance.
            await asyncio.sleep(0)

    def _new_annotations(self, piece: str) -> list[dict[str, Any]]:
        """The annotations the text completed with ``piece``, numbered among the
        message's: a citation marker ends with ``】`` (or ``]``, as small models write
        it); a ``sandbox:`` link (code_interpreter's ``file_path``) ends at the first
        character its name cannot hold, so one at the very end of the text so far
        waits for the next piece, or for the message's end (``_content``)."""
        if self.annotate is None:
            return []
        window, self._recent = self._recent + piece, (self._recent + piece)[-len(LINK) :]
        if LINK in window:
            self._link_open = True
        link_ended = self._link_open and not LINK_ENDS.isdisjoint(piece)
        if "】" not in piece and "]" not in piece and not link_ended:
            return []
        text = "".join(self.text_parts)
        notes = self.annotate(text)
        if notes and notes[-1]["type"] == "file_path" and not _ended(text, notes[-1]):
            notes = notes[:-1]  # the link may go on in the next piece
        else:
            self._link_open = False
        fresh = [{"index": i, **note} for i, note in enumerate(notes) if i >= self._annotated]
        self._annotated = len(notes)
        return fresh

    def _content(self) -> list[dict[str, Any]]:
        text = "".join(self.text_parts)
        notes = self.annotate(text) if self.annotate is not None else []
        self._unsent = [{"index": i, **n} for i, n in enumerate(notes) if i >= self._annotated]
        self._annotated = len(notes)
        return objects.text_content(text, notes) + self.parts

    def _parts_events(self) -> Events:
        """What the deltas have not said yet (after ``_content``): annotations the
        text's end completed, then the message's parts after its text (images)."""
        if self.message is None:
            return []
        events: Events = []
        if self._unsent:
            delta = objects.message_delta(
                self.message["id"], "", first=False, annotations=self._unsent
            )
            events.append(("thread.message.delta", delta))
            self._unsent = []
        if self.parts:
            delta = objects.parts_delta(self.message["id"], self.parts, 1)
            events.append(("thread.message.delta", delta))
        return events

    async def tool_delta(self, delta: ToolCallDelta) -> None:
        if self.tool_step is None:
            self.tool_step = objects.new_step(self.run, objects.tool_calls_details([]))
            await self._store_new([("step", self.tool_step)])
            await self._publish(
                [
                    ("thread.run.step.created", self.tool_step),
                    ("thread.run.step.in_progress", self.tool_step),
                ]
            )
        call = self._calls.get(delta.index)
        if call is None:
            taken = {c["id"] for c in self._calls.values()}
            call_id = delta.id if delta.id and delta.id not in taken else new_id("tool_call")
            call = self._calls[delta.index] = {"id": call_id, "name": delta.name or "", "args": ""}
            call["args"] += delta.arguments
            if call["name"] not in self.builtins:
                await self._publish_call(delta.index, call["id"], call["name"], delta.arguments)
            return
        if delta.name and not call["name"]:
            call["name"] = delta.name
        if delta.arguments:
            call["args"] += delta.arguments
            if call["name"] not in self.builtins:
                await self._publish_call(delta.index, None, None, delta.arguments)

    async def _publish_call(
        self, index: int, call_id: str | None, name: str | None, arguments: str
    ) -> None:
        assert self.tool_step is not None
        await self.bus.publish(
            self.run["id"],
            "thread.run.step.delta",
            objects.tool_call_delta(self.tool_step["id"], index, call_id, name, arguments),
        )

    def _made(self) -> list[tuple[int, dict[str, Any]]]:
        made = sorted(self._calls.items())
        if not self.run.get("parallel_tool_calls", True):
            made = made[:1]
        for _, call in made:
            if call["name"] not in self.functions and call["name"] not in self.builtins:
                raise ModelError(
                    f"The model called '{call['name']}', which is not a tool of this run."
                )
        return made

    def calls(self) -> list[dict[str, Any]]:
        """The finished function calls, checked against the run's tools."""
        return [
            objects.function_call(c["id"], c["name"], c["args"] or "{}")
            for _, c in self._made()
            if c["name"] not in self.builtins
        ]

    def builtin_calls(self) -> list[tuple[int, str, str, str]]:
        """The built-in calls still to execute: (call index, id, type, arguments)."""
        return [
            (index, c["id"], c["name"], c["args"] or "{}")
            for index, c in self._made()
            if c["name"] in self.builtins and index not in self.builtin_done
        ]

    async def builtin_progress(self, index: int, part: dict[str, Any]) -> None:
        """A first part of a built-in call, streamed before it ends."""
        assert self.tool_step is not None
        await self.bus.publish(
            self.run["id"],
            "thread.run.step.delta",
            objects.builtin_call_delta(self.tool_step["id"], index, part),
        )

    async def builtin_done_with(
        self, index: int, call: dict[str, Any], delta: dict[str, Any] | None = None
    ) -> None:
        """A built-in call executed: its call object goes into the step (and its
        stream, as a delta: ``delta`` when a first part was streamed already)."""
        assert self.tool_step is not None
        self.builtin_done[index] = call
        await self.bus.publish(
            self.run["id"],
            "thread.run.step.delta",
            objects.builtin_call_delta(self.tool_step["id"], index, delta or call),
        )

    def step_calls(self) -> list[dict[str, Any]]:
        """The tool step's calls in the order the model made them."""
        functions = iter(self.calls())
        out: list[dict[str, Any]] = []
        for index, call in self._made():
            if call["name"] in self.builtins:
                if index in self.builtin_done:
                    out.append(self.builtin_done[index])
            else:
                out.append(next(functions))
        return out

    async def end_round(self, usage: Usage) -> list[dict[str, Any]]:
        """End this model call inside the turn (its built-in calls executed, the
        model is called again): its message and step end completed, the step with
        the call's usage, and the run counts that usage now. Returns what was ended
        (steps and messages) for the next call's context."""
        assert self.tool_step is not None
        stamp = now()
        ended: list[dict[str, Any]] = []
        events: Events = []
        async with self.db.write() as conn:
            row = await store.lock_run_holder(conn, self.run["id"])
            if (
                row is None
                or row.status != str(RunStatus.IN_PROGRESS)
                or row.lease_owner != self.worker_id
            ):
                raise ConflictError(f"Run {self.run['id']} is no longer executing here.")
            if self.message is not None and self.message_step is not None:
                self.message["content"] = self._content()
                self.message["status"] = "completed"
                self.message["completed_at"] = stamp
                await store.save_message(conn, self.message)
                self.message_step["status"] = "completed"
                self.message_step["completed_at"] = stamp
                await store.save_step(conn, row.project_id, self.message_step)
                events += self._parts_events()
                events += [
                    ("thread.message.completed", self.message),
                    ("thread.run.step.completed", self.message_step),
                ]
                ended += [self.message_step, self.message]
            self.tool_step["step_details"] = objects.tool_calls_details(self.step_calls())
            self.tool_step["status"] = "completed"
            self.tool_step["completed_at"] = stamp
            self.tool_step["usage"] = objects.usage_dict(usage)
            await store.save_step(conn, row.project_id, self.tool_step)
            await store.add_usage(conn, self.run["id"], usage)
            events.append(("thread.run.step.completed", self.tool_step))
            ended.append(self.tool_step)
        await self._publish(events)
        return ended

    def finished(self, usage: Usage, *, truncated: bool) -> TurnEnd:
        """The turn's message and steps as its end writes them, and their events:
        the message (made now if the model said nothing and called nothing) ends
        completed, or incomplete if ``truncated``; the tool step gets its calls."""
        output = run_writes.Output()
        events: Events = []
        calls = self.step_calls()
        stamp = now()
        if self.message is None and not calls:
            events.extend(self._new_message())
            assert self.message is not None
            assert self.message_step is not None
            output.new += [("step", self.message_step), ("message", self.message)]
        elif self.message is not None and self.message_step is not None:
            output.saved += [("message", self.message), ("step", self.message_step)]
        if self.message is not None and self.message_step is not None:
            self.message["content"] = self._content()
            events.extend(self._parts_events())
            if truncated:
                self.message["status"] = "incomplete"
                self.message["incomplete_at"] = stamp
                self.message["incomplete_details"] = {"reason": "max_tokens"}
                events.append(("thread.message.incomplete", self.message))
            else:
                self.message["status"] = "completed"
                self.message["completed_at"] = stamp
                events.append(("thread.message.completed", self.message))
            self.message_step["status"] = "completed"
            self.message_step["completed_at"] = stamp
            if self.tool_step is None:
                self.message_step["usage"] = objects.usage_dict(usage)
            events.append(("thread.run.step.completed", self.message_step))
        if self.tool_step is not None:
            # Its usage waits for the step to end (lifecycle.settle_usage).
            self.tool_step["step_details"] = objects.tool_calls_details(calls)
            output.saved.append(("step", self.tool_step))
        return TurnEnd(output, events)
