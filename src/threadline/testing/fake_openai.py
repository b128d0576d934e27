"""A fake OpenAI chat-completions server, for tests and benchmarks.

``POST /v1/chat/completions``, streaming (SSE ``data:`` chunks, a usage chunk when
``stream_options.include_usage`` asks for it, ``data: [DONE]``) or not. Its behaviour
is set per instance (and may be changed between requests); every request body it
received is kept in ``requests``::

    with FakeChatServer(reply="Hi!", fail_with=429, fail_times=1, retry_after=0) as fake:
        backend = OpenAICompatBackend(Settings(openai_base_url=fake.url))
        ...
        assert fake.requests[-1]["model"] == "gpt-4o"

With no delay configured it answers at once: it is used in latency benchmarks.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from threadline.domain.ids import new_id
from threadline.models.scripted import split_text
from threadline.testing.server import free_port


class FakeChatServer:
    """See the module docstring. ``url`` is the ``/v1`` base URL once started."""

    def __init__(
        self,
        *,
        reply: str = "Hello from the fake model.",
        tool_calls: Sequence[Mapping[str, Any]] = (),
        usage: tuple[int, int] | None = (12, 7),
        finish_reason: str | None = None,
        fail_with: int | None = None,
        fail_times: int | None = None,
        fail_message: str = "The fake server failed.",
        fail_code: str | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
        token_delay: float = 0.0,
        break_after: int | None = None,
        break_mode: Literal["error", "drop", "garbage"] = "error",
    ) -> None:
        self.reply = reply
        self.tool_calls = list(tool_calls)  # {"name": ..., "arguments": {...} or "..."}
        self.usage = usage  # (prompt, completion); None: never send usage
        self.finish_reason = finish_reason  # default: "tool_calls" or "stop"
        self.fail_with = fail_with  # an HTTP status for the first fail_times requests
        self.fail_times = fail_times  # None: every request fails
        self.fail_message = fail_message
        self.fail_code = fail_code
        self.retry_after = retry_after  # seconds, sent as Retry-After with failures
        self.delay = delay  # before answering
        self.token_delay = token_delay  # between streamed chunks
        self.break_after = break_after  # end the stream after that many delta chunks
        self.break_mode = break_mode  # an error event, a dropped connection, or non-JSON
        self._behaviour = dict(vars(self))
        self.requests: list[dict[str, Any]] = []  # the bodies received, in order
        self.headers: list[dict[str, str]] = []
        self.failures = 0
        self.completed_streams = 0
        self.disconnects = 0  # streams the client closed before their end
        self.url = ""
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> str:
        port = free_port()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake chat server did not start")
            time.sleep(0.005)
        self.url = f"http://127.0.0.1:{port}/v1"
        return self.url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None

    def reset(self) -> None:
        """Back to the behaviour given at construction; forget what was received."""
        for name, value in self._behaviour.items():
            setattr(self, name, copy.copy(value))
        self.requests.clear()
        self.headers.clear()
        self.failures = self.completed_streams = self.disconnects = 0

    def __enter__(self) -> FakeChatServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ endpoint

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.delay and await _client_left_during(request, self.delay):
            self.disconnects += 1
            return Response(status_code=499)
        if self.fail_with is not None and (
            self.fail_times is None or self.failures < self.fail_times
        ):
            self.failures += 1
            error = {"message": self.fail_message, "type": "error", "param": None}
            error["code"] = self.fail_code
            headers = {} if self.retry_after is None else {"retry-after": str(self.retry_after)}
            return JSONResponse({"error": error}, status_code=self.fail_with, headers=headers)
        if body.get("stream"):
            usage = (body.get("stream_options") or {}).get("include_usage")
            return _EventStream(self, self._chunks(body, bool(usage)))
        return JSONResponse(self._completion(body))

    def _calls(self) -> list[tuple[str, str]]:
        calls = []
        for call in self.tool_calls:
            arguments = call.get("arguments", {})
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            calls.append((str(call["name"]), arguments))
        return calls

    def _finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def _usage(self) -> dict[str, int] | None:
        if self.usage is None:
            return None
        prompt, completion = self.usage
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.reply or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": new_id("tool_call"),
                    "type": "function",
                    "function": {"name": n, "arguments": a},
                }
                for n, a in self._calls()
            ]
        choice = {"index": 0, "message": message, "finish_reason": self._finish()}
        completion = _envelope(body, "chat.completion", [choice])
        completion["usage"] = self._usage()
        return completion

    def _chunks(self, body: dict[str, Any], include_usage: bool) -> list[dict[str, Any] | None]:
        """The chunks to stream; ``None`` marks where the stream breaks."""

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            data = _envelope(body, "chat.completion.chunk", [choice])
            if include_usage:
                data["usage"] = None
            return data

        deltas: list[dict[str, Any]] = [{"content": p} for p in split_text(self.reply, None)]
        for index, (name, arguments) in enumerate(self._calls()):
            function = {"name": name, "arguments": ""}
            deltas.append(
                {"tool_calls": [{"index": index, "id": new_id("tool_call"), "type": "function"}]}
            )
            deltas[-1]["tool_calls"][0]["function"] = function
            for piece in split_text(arguments, 2):
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        chunks: list[dict[str, Any] | None] = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk(delta) for delta in deltas]
        if self.break_after is not None:
            return [*chunks[: self.break_after + 1], None]
        chunks.append(chunk({}, self._finish()))
        usage = self._usage()
        if include_usage and usage is not None:
            chunks.append(_envelope(body, "chat.completion.chunk", []) | {"usage": usage})
        return chunks


async def _client_left_during(request: Request, seconds: float) -> bool:
    """Wait ``seconds``, or less if the client goes away (then ``True``)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(left, 0.01))
    return await request.is_disconnected()


def _envelope(body: dict[str, Any], kind: str, choices: list[Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": kind,
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "system_fingerprint": None,
        "choices": choices,
    }


class _EventStream(Response):
    """Server-sent events, one ``send`` per chunk; notices a client that left."""

    def __init__(self, server: FakeChatServer, chunks: list[dict[str, Any] | None]) -> None:
        self.raw_headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
        ]
        self.background = None
        self.server = server
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = self.server
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if not server.token_delay and None not in self.chunks:  # fast path: one write
            frames = [_frame(json.dumps(data)) for data in self.chunks] + [_frame("[DONE]")]
            await send({"type": "http.response.body", "body": b"".join(frames)})
            server.completed_streams += 1
            return

        async def client_left() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.create_task(client_left())
        try:
            for position, data in enumerate(self.chunks):
                if position and server.token_delay:
                    await asyncio.wait([watcher], timeout=server.token_delay)
                if watcher.done():
                    server.disconnects += 1
                    return
                if data is None:  # break the stream
                    if server.break_mode == "drop":
                        raise ConnectionAbortedError("the fake server dropped the stream")
                    if server.break_mode == "garbage":
                        await _send(send, _frame("this is not JSON"), more=False)
                        return
                    error = {"message": server.fail_message, "type": "server_error"}
                    await _send(send, _frame(json.dumps({"error": error})), more=False)
                    return
                await _send(send, _frame(json.dumps(data)))
            await _send(send, _frame("[DONE]"), more=False)
            server.completed_streams += 1
        finally:
            watcher.cancel()


def _frame(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


async def _send(send: Send, body: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m threadline.testing.fake_openai --port 8001``: serve in the foreground.

    A separate process keeps a benchmark's client and the fake off one GIL.
    """
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--reply", default="Hello from the fake model.")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    fake = FakeChatServer(reply=args.reply, delay=args.delay, token_delay=args.token_delay)
    uvicorn.run(fake.app, host=args.host, port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
