"""Schemathesis against the vector store operations of the server's own OpenAPI
document, on both engines: valid and deliberately invalid requests, generated path
parameters and the ids of real objects. No response is a 5xx; every 200 conforms
to the documented response schema. Bounded: ``MAX_EXAMPLES`` per operation, mode
and aim."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from threadline.settings import Settings
from threadline.testing import serve_in_thread

MAX_EXAMPLES = 10
KEY = "sk-fuzz-vector-stores-0000000000"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def root(database_url: str, tmp_path: Path) -> Iterator[str]:
    values = {
        "data_dir": tmp_path,
        "database_url": database_url,
        "api_keys": KEY,
        "model_backend": "scripted",
    }
    with serve_in_thread(Settings.model_validate(values)) as url:
        yield url


def real_ids(url: str) -> dict[str, str]:
    with openai.OpenAI(base_url=url, api_key=KEY, max_retries=0) as client:
        store = client.vector_stores.create(name="fuzzed")
        added = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=("a.txt", b"hello world"), poll_interval_ms=20
        )
        batch = client.vector_stores.file_batches.create(
            vector_store_id=store.id, file_ids=[added.id]
        )
    return {"vector_store_id": store.id, "file_id": added.id, "batch_id": batch.id}


def fuzz(strategy: st.SearchStrategy[Any], root: str, sent: dict[str, int]) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=root, headers=AUTH, timeout=30)
        sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
        case.validate_response(response, checks=CHECKS)

    run()


def test_no_vector_store_input_makes_a_server_error(root: str) -> None:
    base = root.removesuffix("/v1")
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json").include(
        path_regex=r"^/v1/vector_stores"
    )
    operations: list[Any] = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == 16, sorted(op.label for op in operations)
    ids = real_ids(root)
    sent: dict[str, int] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode.is_negative and not (len(operation.body) or len(operation.query)):
                continue  # only path parameters: nothing that can be made invalid
            for aimed in (False, True):
                wanted = {k: v for k, v in ids.items() if "{" + k + "}" in operation.path}
                strategy = operation.as_strategy(
                    generation_mode=mode,
                    path_parameters=wanted if aimed else None,
                    headers=AUTH,
                )
                fuzz(strategy, base, sent)
    assert set(sent) == {op.label for op in operations}
    assert sum(sent.values()) >= len(operations) * MAX_EXAMPLES
