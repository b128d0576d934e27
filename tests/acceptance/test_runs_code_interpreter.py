"""code_interpreter inside runs through the official SDK, on each engine, with the
scripted model dictating the code and a real sandbox running it: logs, tracebacks,
state between calls, files in and out, charts, streaming, and a server that keeps
answering while a session loops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta.threads.runs import CodeInterpreterToolCall
from typing_extensions import override

from tests.support.runs import (
    POLL_MS,
    run_messages_json,
    say,
    scripted_thread,
    steps_json,
)
from tests.support.servers import ENGINES, KEY_A, Served, make_settings, serve
from threadline.testing import serve_in_thread
from threadline.wiring import build_services

CODE: dict[str, Any] = {"type": "code_interpreter"}
PNG = b"\x89PNG\r\n\x1a\n"


def run_code(code: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "code_interpreter", "arguments": {"input": code}}]}


def assistant(client: openai.OpenAI, **options: Any) -> str:
    options.setdefault("tools", [CODE])
    return client.beta.assistants.create(model="gpt-4o", **options).id


def finished(client: openai.OpenAI, assistant_id: str, thread_id: str, **options: Any) -> Any:
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=POLL_MS, **options
    )
    assert run.status == "completed", run.last_error
    return run


def the_call(client: openai.OpenAI, thread_id: str, run_id: str) -> dict[str, Any]:
    steps = steps_json(client, thread_id, run_id)
    [call] = [
        c for s in steps if s["type"] == "tool_calls" for c in s["step_details"]["tool_calls"]
    ]
    assert call["type"] == "code_interpreter"
    return call["code_interpreter"]  # type: ignore[no-any-return]


def logs_of(call: dict[str, Any]) -> str:
    return "".join(o["logs"] for o in call["outputs"] if o["type"] == "logs")


def test_print_runs_for_real(client: openai.OpenAI) -> None:
    ci = assistant(client)
    thread_id = scripted_thread(client, run_code("print(2**100)"), "Done.")
    run = finished(client, ci, thread_id)
    call = the_call(client, thread_id, run.id)
    assert call["input"] == "print(2**100)"
    assert call["outputs"] == [{"type": "logs", "logs": f"{2**100}\n"}]
    [message] = run_messages_json(client, thread_id, run.id)
    assert message["content"][0]["text"]["value"] == "Done."
    # The SDK reads the step.
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    sdk_call = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert isinstance(sdk_call, CodeInterpreterToolCall)
    assert sdk_call.code_interpreter.input == "print(2**100)"


def test_a_traceback_is_an_output_and_the_run_goes_on(client: openai.OpenAI) -> None:
    ci = assistant(client)
    thread_id = scripted_thread(client, run_code("1/0"), "Oops.")
    run = finished(client, ci, thread_id)
    logs = logs_of(the_call(client, thread_id, run.id))
    assert "Traceback" in logs
    assert "ZeroDivisionError" in logs


def test_state_survives_between_runs_of_a_thread(client: openai.OpenAI) -> None:
    ci = assistant(client)
    thread_id = scripted_thread(client, run_code("x = 21"), "Set.")
    finished(client, ci, thread_id)
    say(client, thread_id, run_code("print(x * 2)"), "Read.")
    run = finished(client, ci, thread_id)
    assert logs_of(the_call(client, thread_id, run.id)) == "42\n"


def test_a_csv_file_is_read_with_pandas(client: openai.OpenAI) -> None:
    csv = b"city,temp\nBrest,14\nNice,22\nLille,9\n"
    file_id = client.files.create(file=("temps.csv", csv), purpose="assistants").id
    ci = assistant(client, tool_resources={"code_interpreter": {"file_ids": [file_id]}})
    code = "import pandas as pd\ndf = pd.read_csv('/mnt/data/temps.csv')\nprint(df.temp.sum())"
    thread_id = scripted_thread(client, run_code(code), "The sum is 45.")
    run = finished(client, ci, thread_id)
    assert logs_of(the_call(client, thread_id, run.id)) == "45\n"
    # The input is not taken for an output of the code.
    made = client.files.list(purpose="assistants_output").data
    assert "temps.csv" not in [f.filename for f in made]


def test_an_attachment_is_placed_in_mnt_data(client: openai.OpenAI) -> None:
    file_id = client.files.create(file=("note.txt", b"hello there"), purpose="assistants").id
    ci = assistant(client)
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "read it",
                "attachments": [{"file_id": file_id, "tools": [{"type": "code_interpreter"}]}],
            }
        ]
    )
    say(client, thread.id, run_code("print(open('/mnt/data/note.txt').read())"), "Read.")
    run = finished(client, ci, thread.id)
    assert logs_of(the_call(client, thread.id, run.id)) == "hello there\n"


def test_a_written_file_is_downloadable_and_annotated(client: openai.OpenAI) -> None:
    ci = assistant(client)
    code = "open('/mnt/data/out.csv', 'w').write('a,b\\n1,2\\n')"
    text = "Here: [out.csv](sandbox:/mnt/data/out.csv)"
    thread_id = scripted_thread(client, run_code(code), text)
    run = finished(client, ci, thread_id)
    [message] = run_messages_json(client, thread_id, run.id)
    [note] = message["content"][0]["text"]["annotations"]
    assert note["type"] == "file_path"
    assert note["text"] == "sandbox:/mnt/data/out.csv"
    assert text[note["start_index"] : note["end_index"]] == note["text"]
    file_id = note["file_path"]["file_id"]
    made = client.files.retrieve(file_id)
    assert (made.purpose, made.filename) == ("assistants_output", "out.csv")
    assert client.files.content(file_id).content == b"a,b\n1,2\n"


def test_file_path_annotations_are_streamed_as_stored(client: openai.OpenAI) -> None:
    ci = assistant(client)
    code = "for name in ('a.csv', 'b.csv'):\n    _ = open(name, 'w').write(name)"
    # one link closed by a parenthesis, one ending a sentence, one ending the text
    text = (
        "See [a.csv](sandbox:/mnt/data/a.csv), then sandbox:/mnt/data/b.csv. "
        "Again: sandbox:/mnt/data/a.csv"
    )
    thread_id = scripted_thread(client, run_code(code), text)
    streamed: list[dict[str, Any]] = []

    class Handler(AssistantEventHandler):
        @override
        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            streamed.extend(note.model_dump() for note in delta.annotations or [])

    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=ci, event_handler=Handler()
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    [message] = run_messages_json(client, thread_id, run.id)
    stored = message["content"][0]["text"]["annotations"]
    assert [note["text"] for note in stored] == [
        "sandbox:/mnt/data/a.csv",
        "sandbox:/mnt/data/b.csv",
        "sandbox:/mnt/data/a.csv",
    ]
    assert [note.pop("index") for note in streamed] == [0, 1, 2]
    assert streamed == stored
    assert client.files.content(stored[1]["file_path"]["file_id"]).content == b"b.csv"


def test_a_chart_is_an_image_file_part(client: openai.OpenAI) -> None:
    ci = assistant(client)
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()"
    thread_id = scripted_thread(client, run_code(code), "A chart.")
    run = finished(client, ci, thread_id)
    images = [o for o in the_call(client, thread_id, run.id)["outputs"] if o["type"] == "image"]
    [image] = images
    [message] = client.beta.threads.messages.list(thread_id, run_id=run.id).data
    kinds = [part.type for part in message.content]
    assert kinds == ["text", "image_file"]
    part = message.content[1]
    assert part.image_file.file_id == image["image"]["file_id"]  # type: ignore[union-attr]
    png = client.files.content(image["image"]["file_id"]).content
    assert png.startswith(PNG)
    assert len(png) > 1000


def test_streaming_gives_the_input_then_the_outputs(client: openai.OpenAI) -> None:
    ci = assistant(client)
    thread_id = scripted_thread(client, run_code("print('streamed')"), "Done.")
    deltas: list[Any] = []

    class Handler(AssistantEventHandler):
        @override
        def on_run_step_delta(self, delta: Any, snapshot: Any) -> None:
            deltas.append(delta.step_details.tool_calls[0].code_interpreter)

    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=ci, event_handler=Handler()
    ) as stream:
        stream.until_done()
        [step, _] = stream.get_final_run_steps()
    first, last = deltas
    assert (first.input, first.outputs) == ("print('streamed')", [])
    assert last.input is None
    assert [(o.type, o.logs) for o in last.outputs] == [("logs", "streamed\n")]
    call = step.step_details.tool_calls[0]  # type: ignore[union-attr]
    assert isinstance(call, CodeInterpreterToolCall)
    assert call.code_interpreter.input == "print('streamed')"


def test_a_run_without_the_tool_never_runs_code(client: openai.OpenAI) -> None:
    plain = client.beta.assistants.create(model="gpt-4o").id
    thread_id = scripted_thread(client, run_code("print('ran')"))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=plain, poll_interval_ms=POLL_MS
    )
    assert run.status == "failed"
    assert run.last_error is not None
    assert "code_interpreter" in run.last_error.message
    calls = [
        call
        for step in steps_json(client, thread_id, run.id)
        if step["type"] == "tool_calls"
        for call in step["step_details"]["tool_calls"]
    ]
    assert not [call for call in calls if call["type"] == "code_interpreter"]


def test_tool_choice_forces_code_interpreter(client: openai.OpenAI) -> None:
    ci = assistant(client)
    thread_id = scripted_thread(client, run_code("print(7)"), "Seven.")
    run = finished(client, ci, thread_id, tool_choice={"type": "code_interpreter"})
    assert logs_of(the_call(client, thread_id, run.id)) == "7\n"


@pytest.fixture(scope="module", params=ENGINES)
def short_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server whose executions stop after 5 s, its sessions at 400 MiB each."""
    data_dir = tmp_path_factory.mktemp(f"short-{request.param}")
    with serve(
        request.param, data_dir, sandbox_timeout_seconds=5.0, sandbox_session_memory_mb=400
    ) as served:
        yield served


def test_the_server_answers_while_a_session_loops(short_server: Served) -> None:
    client = short_server.client()
    ci = assistant(client)
    thread_id = scripted_thread(client, run_code("while True:\n    pass"), "Stopped.")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=ci)
    slowest = 0.0
    deadline = time.monotonic() + 60
    while run.status not in ("completed", "failed") and time.monotonic() < deadline:
        started = time.monotonic()
        run = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
        slowest = max(slowest, time.monotonic() - started)
    assert run.status == "completed", run.last_error
    assert slowest < 1.0
    assert "TimeoutError" in logs_of(the_call(client, thread_id, run.id))
    # The next execution works in a fresh session.
    say(client, thread_id, run_code("print('back')"), "Back.")
    again = finished(client, ci, thread_id)
    assert logs_of(the_call(client, thread_id, again.id)) == "back\n"


def test_a_session_over_its_memory_is_stopped_as_a_whole(short_server: Served) -> None:
    client = short_server.client()
    ci = assistant(client)
    # three children of 160 MiB: each far under a process's 1 GiB, together over 400 MiB
    code = (
        "import os, time\n"
        "children = []\n"
        "for _ in range(3):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        hold = b'x' * (160 * 1024 * 1024)\n"
        "        time.sleep(1)\n"
        "        os._exit(0)\n"
        "    children.append(pid)\n"
        "print([os.waitpid(pid, 0)[1] for pid in children])\n"
    )
    thread_id = scripted_thread(client, run_code(code), "Contained.")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=ci)
    slowest = 0.0
    deadline = time.monotonic() + 60
    while run.status not in ("completed", "failed") and time.monotonic() < deadline:
        started = time.monotonic()
        run = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
        slowest = max(slowest, time.monotonic() - started)
    assert run.status == "completed", run.last_error
    assert slowest < 1.0, slowest
    logs = logs_of(the_call(client, thread_id, run.id))
    assert "out of memory" in logs, logs
    say(client, thread_id, run_code("print('back')"), "Back.")
    again = finished(client, ci, thread_id)
    assert logs_of(the_call(client, thread_id, again.id)) == "back\n"


def test_a_chart_is_streamed_as_an_image_file_part(client: openai.OpenAI) -> None:
    ci = assistant(client)
    code = "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [1, 2])"
    thread_id = scripted_thread(client, run_code(code), "Bars.")
    images: list[str] = []

    class Handler(AssistantEventHandler):
        @override
        def on_image_file_done(self, image_file: Any) -> None:
            images.append(image_file.file_id)

    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=ci, event_handler=Handler()
    ) as stream:
        stream.until_done()
        [message] = stream.get_final_messages()
    [part] = [p for p in message.content if p.type == "image_file"]
    assert images == [part.image_file.file_id]
    assert client.files.content(images[0]).content.startswith(PNG)


def test_deleting_a_thread_ends_its_session(tmp_path: Path) -> None:
    services = build_services(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'db'}"))
    tool = services.code_interpreter
    assert tool is not None
    with serve_in_thread(services.settings, services) as url:
        client = openai.OpenAI(base_url=url, api_key=KEY_A, max_retries=0)
        ci = assistant(client)
        thread_id = scripted_thread(client, run_code("x = 1"), "Set.")
        finished(client, ci, thread_id)
        assert tool.pool is not None
        assert thread_id in tool.pool
        client.beta.threads.delete(thread_id)
        assert thread_id not in tool.pool
        client.close()


def test_the_code_reaches_neither_the_network_nor_the_server(short_server: Served) -> None:
    client = short_server.client()
    ci = assistant(client)
    port = int(short_server.url.split(":")[2].split("/")[0])
    code = (
        "import os, socket\n"
        f"for port in (5432, {port}):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=2)\n"
        "        print('connected', port)\n"
        "    except OSError as exc:\n"
        "        print('refused', port)\n"
        f"print(os.path.exists({str(short_server.data_dir)!r}))\n"
        "print(sorted(os.environ))\n"
    )
    thread_id = scripted_thread(client, run_code(code), "Checked.")
    run = finished(client, ci, thread_id)
    logs = logs_of(the_call(client, thread_id, run.id))
    assert logs.splitlines()[:3] == ["refused 5432", f"refused {port}", "False"]
    assert "THREADLINE" not in logs
