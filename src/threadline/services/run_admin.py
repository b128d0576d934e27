"""The operator's view of runs, across projects (``threadline runs``): the active
ones, one run with its steps and timeline, and a cancel made through the same
service, and so the same lifecycle transitions, as the API's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from threadline.domain.run_status import RunStatus
from threadline.errors import NotFoundError
from threadline.services.runs import RunService
from threadline.storage import runs as store
from threadline.storage.db import Database

S = RunStatus
LISTED = (S.QUEUED, S.IN_PROGRESS, S.REQUIRES_ACTION, S.CANCELLING)
"""What ``runs list`` shows unless asked for other statuses: the active runs."""

# The run's timestamps, in the order a run meets them, and what each says.
_RUN_TIMES = (
    ("created_at", "created"),
    ("started_at", "started"),
    ("cancelled_at", "cancelled"),
    ("failed_at", "failed"),
    ("completed_at", "completed"),
)
_STEP_TIMES = (
    ("created_at", "created"),
    ("completed_at", "completed"),
    ("cancelled_at", "cancelled"),
    ("failed_at", "failed"),
    ("expired_at", "expired"),
)


class RunAdmin:
    def __init__(self, db: Database, runs: RunService) -> None:
        self.db = db
        self.runs = runs

    async def list(
        self, statuses: Iterable[RunStatus] = LISTED, project: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            return await store.runs_with_status(conn, statuses, project_id=project, limit=limit)

    async def show(self, run_id: str) -> dict[str, Any]:
        """The run, its project, its steps (oldest first) and its timeline."""
        async with self.db.read() as conn:
            found = await store.find_run(conn, run_id)
            if found is None:
                raise NotFoundError(f"No run found with id '{run_id}'.", param="run_id")
            project, run = found
            steps = await store.steps_of(conn, run_id)
        return {"project_id": project, "run": run, "steps": steps, "timeline": timeline(run, steps)}

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel the run as its project's API would (``RunService.cancel``)."""
        async with self.db.read() as conn:
            found = await store.find_run(conn, run_id)
        if found is None:
            raise NotFoundError(f"No run found with id '{run_id}'.", param="run_id")
        project, run = found
        return await self.runs.cancel(project, run["thread_id"], run_id)


def timeline(run: dict[str, Any], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What happened to the run, in time order: its own timestamps and its steps'."""
    moments: list[dict[str, Any]] = [
        {"at": run[key], "what": f"run {what}"} for key, what in _RUN_TIMES if run.get(key)
    ]
    if run.get("status") == S.EXPIRED:
        moments.append({"at": None, "what": "run expired"})
    for step in steps:
        for key, what in _STEP_TIMES:
            if step.get(key):
                moments.append({"at": step[key], "what": f"step {step['id']} {what}"})
    dated = sorted((m for m in moments if m["at"] is not None), key=lambda m: m["at"])
    return dated + [m for m in moments if m["at"] is None]
