"""``/metrics``: after runs made through the SDK (completed, streamed, failed,
cancelled, waiting for tool outputs), the counters parsed with
``prometheus-client``'s own parser match the runs made, and the gauges read from
storage say nothing waits. The metrics token and the metrics port of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.runs import new_assistant, poll, scripted_thread, wait_for, weather_call
from tests.support.servers import ENGINES, KEY_A, Served, serve
from threadline.observability.metrics import MODEL_LABELS_MAX, Metrics
from threadline.testing import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, **headers: str) -> Samples:
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module", params=ENGINES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server of its own per engine: its counters start at zero."""
    with serve(request.param, tmp_path_factory.mktemp(f"metrics-{request.param}")) as served:
        yield served


def test_counters_match_the_runs_made(server: Served) -> None:
    client = server.client()
    assistant = new_assistant(client)
    completed = client.beta.threads.runs.create(
        scripted_thread(client, "hello"), assistant_id=assistant
    )
    assert poll(client, completed.thread_id, completed.id).status == "completed"
    with client.beta.threads.runs.stream(
        thread_id=scripted_thread(client, {"text": "streamed", "chunks": 3}),
        assistant_id=assistant,
    ) as stream:
        stream.until_done()
        assert stream.get_final_run().status == "completed"
    failed = client.beta.threads.runs.create(
        scripted_thread(client, {"error": "rate_limit_exceeded"}), assistant_id=assistant
    )
    assert poll(client, failed.thread_id, failed.id).status == "failed"
    hanging = client.beta.threads.runs.create(
        scripted_thread(client, {"hang": True}), assistant_id=assistant
    )
    wait_for(client, hanging.thread_id, hanging.id, "in_progress")
    client.beta.threads.runs.cancel(hanging.id, thread_id=hanging.thread_id)
    assert poll(client, hanging.thread_id, hanging.id).status == "cancelled"
    waiting = client.beta.threads.runs.create(
        scripted_thread(client, {"tool_calls": [weather_call("Lima")]}), assistant_id=assistant
    )
    assert poll(client, waiting.thread_id, waiting.id).status == "requires_action"

    metrics = scrape(server.url.removesuffix("/v1") + "/metrics")
    runs = "threadline_runs_total"
    assert value(metrics, runs, status="queued", model="gpt-4o") == 5
    assert value(metrics, runs, status="in_progress", model="gpt-4o") == 5
    assert value(metrics, runs, status="completed", model="gpt-4o") == 2
    assert value(metrics, runs, status="failed", model="gpt-4o") == 1
    assert value(metrics, runs, status="cancelling", model="gpt-4o") == 1
    assert value(metrics, runs, status="cancelled", model="gpt-4o") == 1
    assert value(metrics, runs, status="requires_action", model="gpt-4o") == 1
    assert value(metrics, runs, status="expired", model="gpt-4o") == 0
    errors = "threadline_model_errors_total"
    assert value(metrics, errors, model="gpt-4o", code="rate_limit_exceeded") == 1
    duration = "threadline_run_duration_seconds_count"
    assert value(metrics, duration, status="completed") == 2
    assert value(metrics, duration, status="failed") == 1
    assert value(metrics, duration, status="cancelled") == 1
    # The three calls that answered: two texts and one tool call.
    assert value(metrics, "threadline_model_call_seconds_count", model="gpt-4o") == 3
    assert value(metrics, "threadline_model_first_token_seconds_count", model="gpt-4o") == 3
    assert value(metrics, "threadline_active_streams") == 0
    assert value(metrics, "threadline_queue_depth") == 0
    assert value(metrics, "threadline_queue_oldest_age_seconds") == 0
    assert value(metrics, "threadline_ingestion_backlog") == 0
    assert value(metrics, "threadline_sandbox_sessions") == 0
    assert value(metrics, "threadline_lease_takeovers_total", outcome="requeued") == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_queue_depth_and_age_are_read_from_storage(engine: str, tmp_path: Path) -> None:
    """One execution slot, taken by a hanging run: the next run waits queued."""
    with serve(engine, tmp_path, worker_concurrency=1) as served:
        client = served.client()
        root = served.url.removesuffix("/v1")
        assistant = new_assistant(client)
        busy = client.beta.threads.runs.create(
            scripted_thread(client, {"hang": True}), assistant_id=assistant
        )
        wait_for(client, busy.thread_id, busy.id, "in_progress")
        waiting = client.beta.threads.runs.create(
            scripted_thread(client, "later"), assistant_id=assistant
        )
        metrics = scrape(root + "/metrics")
        assert value(metrics, "threadline_queue_depth") == 1
        assert 0 <= value(metrics, "threadline_queue_oldest_age_seconds") < 60
        assert value(metrics, "threadline_runs_total", status="queued", model="gpt-4o") == 2
        client.beta.threads.runs.cancel(busy.id, thread_id=busy.thread_id)
        assert poll(client, waiting.thread_id, waiting.id).status == "completed"
        assert value(scrape(root + "/metrics"), "threadline_queue_depth") == 0


def test_token_and_port_of_their_own(tmp_path: Path) -> None:
    port = free_port()
    with serve("sqlite", tmp_path, metrics_token="scrape-secret", metrics_port=port) as served:
        api_root = served.url.removesuffix("/v1")
        on_api = httpx.get(api_root + "/metrics", timeout=10)
        assert on_api.status_code == 404
        assert on_api.json()["error"]["type"] == "invalid_request_error"
        own = f"http://127.0.0.1:{port}/metrics"
        refused = httpx.get(own, timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_metrics_token"
        with_api_key = httpx.get(own, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
        assert with_api_key.status_code == 401
        metrics = scrape(own, Authorization="Bearer scrape-secret")
        assert value(metrics, "threadline_queue_depth") == 0
        client = served.client()
        run = client.beta.threads.create_and_run(assistant_id=new_assistant(client))
        assert poll(client, run.thread_id, run.id).status == "completed"
        after = scrape(own, Authorization="Bearer scrape-secret")
        assert value(after, "threadline_runs_total", status="completed", model="gpt-4o") == 1


def test_a_token_guards_the_api_port_too(tmp_path: Path) -> None:
    with serve("sqlite", tmp_path, metrics_token="scrape-secret") as served:
        url = served.url.removesuffix("/v1") + "/metrics"
        assert httpx.get(url, timeout=10).status_code == 401
        wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        assert (
            value(scrape(url, Authorization="Bearer scrape-secret"), "threadline_queue_depth") == 0
        )


def test_model_labels_are_bounded() -> None:
    metrics = Metrics()
    for n in range(MODEL_LABELS_MAX):
        assert metrics.model_label(f"model-{n}") == f"model-{n}"
    assert metrics.model_label("one-too-many") == "other"
    assert metrics.model_label("model-0") == "model-0"
    assert metrics.model_label("x" * 500) == "other"
