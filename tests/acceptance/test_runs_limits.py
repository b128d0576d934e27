"""What bounds a run: one active run per thread (and no new messages while it
lasts), the ``openai-poll-after-ms`` hint, cancelling a run that is still
queued, and ``expires_at`` (a server of its own with runs that expire in 2 s
and a single worker slot)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.support.runs import (
    POLL_MS,
    check_times,
    new_assistant,
    poll,
    run_json,
    say,
    scripted_thread,
    steps_json,
    wait_for,
    weather_call,
)
from tests.support.servers import ENGINES, Served, serve
from tests.support.spec_schema import assert_schema


def _refused(error: pytest.ExceptionInfo[openai.BadRequestError]) -> None:
    assert error.value.status_code == 400
    assert_schema(error.value.response.json(), "ErrorResponse")


def test_one_active_run_per_thread(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"hang": True})
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant)
    for attempt in range(2):  # queued (or just started), then surely in progress
        with pytest.raises(openai.BadRequestError) as second:
            client.beta.threads.runs.create(thread_id, assistant_id=assistant)
        _refused(second)
        with pytest.raises(openai.BadRequestError) as message:
            client.beta.threads.messages.create(thread_id, role="user", content="more")
        _refused(message)
        if attempt == 0:
            wait_for(client, thread_id, run.id, "in_progress")
    assert [r.id for r in client.beta.threads.runs.list(thread_id)] == [run.id]
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert poll(client, thread_id, run.id).status == "cancelled"
    say(client, thread_id, "free again")
    assert len(client.beta.threads.messages.list(thread_id).data) == 2


def test_a_thread_waiting_for_tool_outputs_is_still_busy(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"tool_calls": [weather_call("Quito")]}, "ok")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant, poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError) as second:
        client.beta.threads.runs.create(thread_id, assistant_id=assistant)
    _refused(second)
    with pytest.raises(openai.BadRequestError) as message:
        client.beta.threads.messages.create(thread_id, role="user", content="more")
    _refused(message)
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)


def test_racing_runs_on_one_thread_start_only_one(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"hang": True})

    def start(_: int) -> str:
        try:
            return client.beta.threads.runs.create(thread_id, assistant_id=assistant).id
        except openai.BadRequestError:
            return ""

    with ThreadPoolExecutor(8) as pool:
        started = [run_id for run_id in pool.map(start, range(8)) if run_id]
    assert len(started) == 1
    assert [r.id for r in client.beta.threads.runs.list(thread_id)] == started
    client.beta.threads.runs.cancel(started[0], thread_id=thread_id)
    assert poll(client, thread_id, started[0]).status == "cancelled"


def test_a_run_needs_its_thread_and_assistant(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, "hello")
    theirs = new_assistant(other_client)
    cases = [
        (lambda: client.beta.threads.runs.create("thread_x", assistant_id=assistant), "thread"),
        (lambda: client.beta.threads.runs.create(thread_id, assistant_id="asst_x"), "assistant"),
        (lambda: client.beta.threads.runs.create(thread_id, assistant_id=theirs), "assistant"),
        (lambda: client.beta.threads.create_and_run(assistant_id="asst_x"), "assistant"),
    ]
    for call, kind in cases:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.status_code == 404
        assert_schema(caught.value.response.json(), "ErrorResponse")
        assert caught.value.body["message"].startswith(f"No {kind} found with id ")
        if kind == "assistant":
            assert caught.value.param == "assistant_id"
    assert client.beta.threads.runs.list(thread_id).data == []
    # Nothing was left busy: the thread takes a run.
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant)
    assert poll(client, thread_id, run.id).status == "completed"


def test_poll_after_header_only_while_the_run_is_not_over(client: openai.OpenAI) -> None:
    assistant = new_assistant(client)
    thread_id = scripted_thread(client, {"text": "slow", "delay": 0.3})
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant)
    raw = client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread_id)
    assert raw.parse().status in {"queued", "in_progress"}
    assert int(raw.headers["openai-poll-after-ms"]) >= 0
    assert poll(client, thread_id, run.id).status == "completed"
    raw = client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread_id)
    assert "openai-poll-after-ms" not in raw.headers
    # The SDK's own poll honours the hint and still ends.
    say(client, thread_id, {"text": "quick"})
    hinted = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant)
    assert hinted.status == "completed"


# ------------------------------------------------------- a server of its own


@pytest.fixture(scope="module", params=ENGINES)
def tight(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Runs expire 2 s after creation, the sweeper looks every 0.2 s, one worker."""
    with serve(
        request.param,
        tmp_path_factory.mktemp(f"tight-{request.param}"),
        run_expires_seconds=2,
        sweep_interval_seconds=0.2,
        worker_concurrency=1,
    ) as served:
        yield served


def _wait_until(client: openai.OpenAI, thread_id: str, run_id: str, status: str) -> None:
    deadline = time.monotonic() + 8
    while (now := client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)).status != status:
        assert time.monotonic() < deadline, f"run never became {status}: {now}"
        time.sleep(0.05)


def test_cancel_a_queued_run(tight: Served) -> None:
    client = tight.client()
    assistant = new_assistant(client)
    busy_thread = scripted_thread(client, {"hang": True})
    busy = client.beta.threads.runs.create(busy_thread, assistant_id=assistant)
    wait_for(client, busy_thread, busy.id, "in_progress")  # the only worker slot

    thread_id = scripted_thread(client, "never said")
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant)
    assert run_json(client, thread_id, run.id)["status"] == "queued"
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert cancelling.status == "cancelling"
    cancelled = run_json(client, thread_id, poll(client, thread_id, run.id).id)
    assert cancelled["status"] == "cancelled"
    check_times(cancelled)
    assert cancelled["started_at"] is None
    assert steps_json(client, thread_id, run.id) == []

    client.beta.threads.runs.cancel(busy.id, thread_id=busy_thread)
    assert poll(client, busy_thread, busy.id).status == "cancelled"
    # The freed worker never runs the cancelled one.
    time.sleep(0.2)
    assert run_json(client, thread_id, run.id)["status"] == "cancelled"


def test_runs_expire_waiting_queued_or_in_progress(tight: Served) -> None:
    client = tight.client()
    assistant = new_assistant(client)
    waiting_thread = scripted_thread(client, {"tool_calls": [weather_call("Nuuk")]}, "ok")
    waiting = client.beta.threads.runs.create_and_poll(
        thread_id=waiting_thread, assistant_id=assistant, poll_interval_ms=POLL_MS
    )
    assert waiting.status == "requires_action"
    hung_thread = scripted_thread(client, {"hang": True})
    queued_thread = scripted_thread(client, {"hang": True})
    # Start both early in a second, so that (expiry being whole seconds) the
    # queued run expires in the same sweep as the one holding the only slot.
    time.sleep(1 - time.time() % 1)
    hung = client.beta.threads.runs.create(hung_thread, assistant_id=assistant)
    wait_for(client, hung_thread, hung.id, "in_progress")
    queued = client.beta.threads.runs.create(queued_thread, assistant_id=assistant)
    assert queued.status == "queued"

    for thread_id, run_id in (
        (waiting_thread, waiting.id),
        (hung_thread, hung.id),
        (queued_thread, queued.id),
    ):
        _wait_until(client, thread_id, run_id, "expired")
        expired = run_json(client, thread_id, run_id)
        check_times(expired)
        assert expired["usage"] is not None
        with pytest.raises(openai.BadRequestError):
            client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
        with pytest.raises(openai.BadRequestError):
            client.beta.threads.runs.submit_tool_outputs(
                run_id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "c", "output": ""}]
            )
        say(client, thread_id, "the thread is free again")

    if queued.expires_at == hung.expires_at:
        assert run_json(client, queued_thread, queued.id)["started_at"] is None
    (step,) = steps_json(client, waiting_thread, waiting.id)
    assert step["status"] == "expired"
    assert step["expired_at"] is not None
    assert step["step_details"]["tool_calls"][0]["function"]["output"] is None
    assert step["usage"] == run_json(client, waiting_thread, waiting.id)["usage"]
    # The worker slot the hung run held is free: a new run completes.
    done = client.beta.threads.runs.create_and_poll(
        thread_id=hung_thread, assistant_id=assistant, poll_interval_ms=POLL_MS
    )
    assert done.status == "completed"
