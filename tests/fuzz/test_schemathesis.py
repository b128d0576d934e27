"""Schemathesis against the server's own OpenAPI document, for the assistants,
threads, messages, files, runs and run steps operations, on both engines, with the
scripted model: whatever it sends (valid requests and deliberately invalid ones)
no response is a 5xx, every 200 conforms to the documented response schema, and
no run it started ends in a server error.

Bounded: ``MAX_EXAMPLES`` per operation and generation mode, once with generated
path parameters and once aimed at real objects (their ids in the path; valid
bodies that create runs name a real assistant, so that the runs execute). The
number of requests sent is printed (``-s`` shows it) and checked. About 1 800
requests per engine, under a minute each on two CPU cores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.runs import POLL_MS, WEATHER
from tests.support.servers import ENGINES, KEY_A, Served, serve

MAX_EXAMPLES = 25
PATHS = (
    r"^/v1/(assistants(/\{assistant_id\})?"
    r"|threads(/\{thread_id\}(/messages(/\{message_id\})?)?)?"
    r"|threads/runs"
    r"|threads/\{thread_id\}/runs(/\{run_id\}(/(cancel|submit_tool_outputs|events"
    r"|steps(/\{step_id\})?))?)?"
    r"|files(/\{file_id\}(/content)?)?)$"
)
# Operations whose valid bodies name an assistant: aimed, they name a real one.
RUN_CREATORS = {"POST /v1/threads/runs", "POST /v1/threads/{thread_id}/runs"}
TERMINAL = {"cancelled", "failed", "completed", "incomplete", "expired"}
AUTH = {"Authorization": f"Bearer {KEY_A}"}
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module", params=ENGINES)
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    data_dir: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    with serve(request.param, data_dir) as served:
        yield served


def real_ids(client: openai.OpenAI, path: str) -> dict[str, str]:
    """Objects for the fuzzer to aim at, so that it reaches past the 404s. For a run's
    paths, the thread has a run waiting for tool outputs, with its first step."""
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    ids = {
        "assistant_id": assistant.id,
        "thread_id": thread.id,
        "message_id": client.beta.threads.messages.list(thread.id).data[0].id,
        "file_id": client.files.create(file=("a.txt", b"abc"), purpose="assistants").id,
    }
    if "{run_id}" in path:
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id,
            assistant_id=assistant.id,
            tool_choice="required",
            poll_interval_ms=POLL_MS,
        )
        assert run.status == "requires_action", run
        step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
        ids.update(run_id=run.id, step_id=step.id)
    return ids


def fuzz(
    strategy: st.SearchStrategy[schemathesis.Case],
    root: str,
    sent: dict[str, int],
    runs: set[tuple[str, str]],
    body: dict[str, str],
) -> None:
    """Send ``MAX_EXAMPLES`` cases drawn from ``strategy`` (with ``body``'s fields set
    in each object body); fail on any check. Runs created are added to ``runs``."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        if body and isinstance(case.body, dict):
            case.body.update(body)
        response = case.call(base_url=root, headers=AUTH, timeout=30)
        sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
        case.validate_response(response, checks=CHECKS)
        content_type = response.headers.get("content-type", [""])[0]
        if response.status_code == 200 and content_type.startswith("application/json"):
            made = response.json()
            if isinstance(made, dict) and made.get("object") == "thread.run":
                runs.add((made["thread_id"], made["id"]))

    run()


def settle(client: openai.OpenAI, runs: set[tuple[str, str]]) -> dict[str, int]:
    """Wait (bounded) until every run has stopped moving; count them by status (and
    error code: a run may fail for its input, as ``invalid_prompt``, never for ours)."""
    statuses: dict[str, int] = {}
    for thread_id, run_id in sorted(runs):
        deadline = time.monotonic() + 10
        while True:
            found = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
            if found.status in TERMINAL | {"requires_action"}:
                break
            assert time.monotonic() < deadline, f"run still {found.status}: {found}"
            time.sleep(POLL_MS / 1000)
        server_error = found.last_error is not None and found.last_error.code == "server_error"
        assert not server_error, f"a fuzzed run ended in a server error: {found}"
        ended = f"{found.status}:{found.last_error.code}" if found.last_error else found.status
        statuses[ended] = statuses.get(ended, 0) + 1
    return statuses


def test_no_input_makes_a_server_error(fuzzed: Served) -> None:
    root = fuzzed.url.removesuffix("/v1")
    schema = schemathesis.openapi.from_url(f"{root}/openapi.json").include(path_regex=PATHS)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    # 5 assistants, 4 threads, 5 messages, 5 files, 8 runs, 2 steps
    assert len(labels) == 29, labels
    sent: dict[str, int] = {}
    runs: set[tuple[str, str]] = set()
    started = time.monotonic()

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for aimed in (False, True):
                ids = real_ids(fuzzed.client(), operation.path) if aimed else {}
                wanted = {
                    name: value for name, value in ids.items() if "{" + name + "}" in operation.path
                }
                body = (
                    {"assistant_id": ids["assistant_id"]}
                    if aimed and mode.is_positive and operation.label in RUN_CREATORS
                    else {}
                )
                if aimed and not (wanted or body):
                    continue
                if mode.is_negative and not (len(operation.body) or len(operation.query)):
                    continue  # a path and the key: nothing that can be made invalid
                strategy = operation.as_strategy(
                    generation_mode=mode, path_parameters=wanted or None, headers=AUTH
                )

                fuzz(strategy, root, sent, runs, body)

    fuzzed_for = time.monotonic() - started
    statuses = settle(fuzzed.client(), runs)
    total = sum(sent.values())
    print(f"\nschemathesis: {total} requests over {len(sent)} operations in {fuzzed_for:.0f} s")
    print(f"schemathesis: {sent}")
    print(f"schemathesis: the {len(runs)} runs it made ended {statuses}")
    assert set(sent) == set(labels)
    assert total >= len(labels) * MAX_EXAMPLES
    assert statuses.get("completed", 0) > 0, "no fuzzed run was executed to its end"
