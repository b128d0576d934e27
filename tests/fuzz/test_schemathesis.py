"""Schemathesis against the server's own OpenAPI document, for the assistants,
threads, messages and files operations, on both engines: whatever it sends (valid
requests and deliberately invalid ones) no response is a 5xx, and every 200
conforms to the documented response schema.

Bounded: ``MAX_EXAMPLES`` per operation and generation mode, once with generated
path parameters and once with the ids of real objects. The number of requests sent
is printed (``-s`` shows it) and checked."""

from __future__ import annotations

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

from tests.support.servers import ENGINES, KEY_A, Served, serve

MAX_EXAMPLES = 25
PATHS = (
    r"^/v1/(assistants(/\{assistant_id\})?"
    r"|threads(/\{thread_id\}(/messages(/\{message_id\})?)?)?"
    r"|files(/\{file_id\}(/content)?)?)$"
)
AUTH = {"Authorization": f"Bearer {KEY_A}"}
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module", params=ENGINES)
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    data_dir: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    with serve(request.param, data_dir) as served:
        yield served


def real_ids(client: openai.OpenAI) -> dict[str, str]:
    """Objects for the fuzzer to aim at, so that it reaches past the 404s."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    return {
        "assistant_id": client.beta.assistants.create(model="gpt-4o").id,
        "thread_id": thread.id,
        "message_id": client.beta.threads.messages.list(thread.id).data[0].id,
        "file_id": client.files.create(file=("a.txt", b"abc"), purpose="assistants").id,
    }


def fuzz(strategy: st.SearchStrategy[schemathesis.Case], root: str, sent: dict[str, int]) -> None:
    """Send ``MAX_EXAMPLES`` cases drawn from ``strategy``; fail on any check."""

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
        response = case.call(base_url=root, headers=AUTH, timeout=30)
        sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
        case.validate_response(response, checks=CHECKS)

    run()


def test_no_input_makes_a_server_error(fuzzed: Served) -> None:
    root = fuzzed.url.removesuffix("/v1")
    schema = schemathesis.openapi.from_url(f"{root}/openapi.json").include(path_regex=PATHS)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert len(labels) == 19, labels  # 5 assistants, 4 threads, 5 messages, 5 files
    sent: dict[str, int] = {}

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for aimed in (False, True):
                ids = real_ids(fuzzed.client()) if aimed else {}
                wanted = {
                    name: value for name, value in ids.items() if "{" + name + "}" in operation.path
                }
                if aimed and not wanted:
                    continue
                if mode.is_negative and not (len(operation.body) or len(operation.query)):
                    continue  # a path and the key: nothing that can be made invalid
                strategy = operation.as_strategy(
                    generation_mode=mode, path_parameters=wanted or None, headers=AUTH
                )

                fuzz(strategy, root, sent)

    total = sum(sent.values())
    print(f"\nschemathesis: {total} requests over {len(sent)} operations: {sent}")
    assert set(sent) == set(labels)
    assert total >= len(labels) * MAX_EXAMPLES
