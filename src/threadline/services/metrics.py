"""``/metrics``: this process's metrics, with the deployment's backlog (queued
runs, files being ingested) read from storage as it is scraped."""

from __future__ import annotations

from threadline.domain.clock import SYSTEM_CLOCK, Clock
from threadline.observability.metrics import Metrics
from threadline.storage import gauges
from threadline.storage.db import Database


class MetricsService:
    def __init__(self, db: Database, recorder: Metrics, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.recorder = recorder
        self.clock = clock

    async def scrape(self) -> bytes:
        """The text exposition, its storage gauges read now (one read transaction)."""
        async with self.db.read() as conn:
            backlog = await gauges.backlog(conn)
        m = self.recorder
        m.queue_depth.set(backlog.queued)
        oldest = backlog.oldest_queued_at
        m.queue_oldest_age.set(0 if oldest is None else max(0.0, self.clock.time() - oldest))
        m.ingestion_backlog.set(backlog.ingesting)
        return m.exposition()
