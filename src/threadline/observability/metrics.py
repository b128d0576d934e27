"""A process's Prometheus metrics, in a registry of its own (one per ``Services``,
so two servers in one process count apart).

The engine and services report through ``Metrics``' methods: each is a label
look-up and an increment or an observation, cheap enough for every run. Gauges
that describe the whole deployment (queue depth, the oldest queued run, the
ingestion backlog) are read from storage when ``/metrics`` is scraped
(``services.metrics``), not kept up to date on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "MODEL_LABELS_MAX", "Metrics"]

MODEL_LABELS_MAX = 64
"""Distinct ``model`` label values a process keeps; later ones count as ``other``
(model names come from clients: the label must not grow without bound)."""
_MODEL_CHARS_MAX = 100

# Seconds. Runs wait on models: from a tenth of a second to the run's expiry.
_RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "threadline_runs",
            "Runs that reached each status (a run that pauses for tool outputs reaches "
            "queued and in_progress again on resuming).",
            ["status", "model"],
            registry=r,
        )
        self.run_duration = Histogram(
            "threadline_run_duration_seconds",
            "From a run's creation to the status that ended it.",
            ["status"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "threadline_model_first_token_seconds",
            "From a model call's start to its first text or tool-call delta.",
            ["model"],
            buckets=_CALL_BUCKETS,
            registry=r,
        )
        self.model_calls = Histogram(
            "threadline_model_call_seconds",
            "A model call, from its start to its last chunk.",
            ["model"],
            buckets=_CALL_BUCKETS,
            registry=r,
        )
        self.model_errors = Counter(
            "threadline_model_errors",
            "Model calls that failed, by the run's last_error code.",
            ["model", "code"],
            registry=r,
        )
        self.active_streams = Gauge(
            "threadline_active_streams",
            "Server-sent event streams of runs open on this process.",
            registry=r,
        )
        self.lease_takeovers = Counter(
            "threadline_lease_takeovers",
            "Runs whose worker stopped renewing its lease, taken over by the sweeper: "
            "queued again, failed after too many attempts, or their cancel finished.",
            ["outcome"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "threadline_queue_depth",
            "Runs queued (the whole deployment, read from storage at scrape time).",
            registry=r,
        )
        self.queue_oldest_age = Gauge(
            "threadline_queue_oldest_age_seconds",
            "Age of the oldest queued run, 0 when none is (read at scrape time).",
            registry=r,
        )
        self.ingestion_backlog = Gauge(
            "threadline_ingestion_backlog",
            "Vector store files still in_progress (read from storage at scrape time).",
            registry=r,
        )
        self.sandbox_sessions = Gauge(
            "threadline_sandbox_sessions",
            "code_interpreter sandbox sessions live on this process.",
            registry=r,
        )
        self._models: set[str] = set()
        # Each metric's labelled children, looked up once: ``labels()`` takes a
        # lock and checks its arguments on every call.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def model_label(self, model: object) -> str:
        """``model`` as a label value: bounded in length and in distinct values."""
        name = str(model)[:_MODEL_CHARS_MAX]
        if name in self._models:
            return name
        if len(self._models) >= MODEL_LABELS_MAX:
            return "other"
        self._models.add(name)
        return name

    # --- what the engine and services report ------------------------------------

    def run_reached(self, status: str, model: object) -> None:
        self._child(self.runs, status, self.model_label(model)).inc()

    def run_ended(self, status: str, model: object, seconds: float) -> None:
        self.run_reached(status, model)
        self._child(self.run_duration, status).observe(max(seconds, 0.0))

    def model_call(self, model: object, seconds: float, first_token: float | None) -> None:
        label = self.model_label(model)
        self._child(self.model_calls, label).observe(seconds)
        if first_token is not None:
            self._child(self.first_token, label).observe(first_token)

    def model_error(self, model: object, code: str) -> None:
        self._child(self.model_errors, self.model_label(model), code).inc()

    def lease_takeover(self, outcome: str) -> None:
        self._child(self.lease_takeovers, outcome).inc()

    def track_sandbox_sessions(self, live: Callable[[], int]) -> None:
        """Read the number of live sessions from ``live`` at each scrape."""
        self.sandbox_sessions.set_function(live)

    # --- exposition -------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)
