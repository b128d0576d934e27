"""The Run's status machine on one screen: every status of the spec, the named
transitions between them (the only ways a status changes), the terminal set.

``TRANSITIONS`` (status → the statuses it may move to) is derived from the named
transitions, so the two cannot disagree. Storage applies a transition as a
compare-and-set (``UPDATE … WHERE status = :seen``) after checking here that
``seen`` is one of its sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


S = RunStatus

TERMINAL: frozenset[RunStatus] = frozenset(
    {S.CANCELLED, S.FAILED, S.COMPLETED, S.INCOMPLETE, S.EXPIRED}
)
ACTIVE: frozenset[RunStatus] = frozenset(set(RunStatus) - TERMINAL)


@dataclass(frozen=True)
class Transition:
    """A named move: from any of ``sources`` to ``target``."""

    name: str
    sources: frozenset[RunStatus]
    target: RunStatus

    def __str__(self) -> str:
        return self.name


def _t(name: str, sources: set[RunStatus] | frozenset[RunStatus], target: RunStatus) -> Transition:
    return Transition(name, frozenset(sources), target)


# A worker takes a queued run and holds a lease on it while its turn executes.
CLAIM = _t("claim", {S.QUEUED}, S.IN_PROGRESS)
# A turn that cannot go on (lost worker, aborted turn) gives its run back to the queue.
HAND_BACK = _t("hand back", {S.IN_PROGRESS}, S.QUEUED)
# The model called functions: the run waits for their outputs…
REQUIRE_ACTION = _t("require action", {S.IN_PROGRESS}, S.REQUIRES_ACTION)
# …which, submitted, queue it for its next turn.
RESUME = _t("resume", {S.REQUIRES_ACTION}, S.QUEUED)
COMPLETE = _t("complete", {S.IN_PROGRESS}, S.COMPLETED)
# A token budget ran out (``incomplete_details`` says which).
END_INCOMPLETE = _t("end incomplete", {S.IN_PROGRESS}, S.INCOMPLETE)
FAIL = _t("fail", {S.IN_PROGRESS}, S.FAILED)
# A client asked to cancel; whoever executes the run (or nobody) finishes the cancel.
CANCEL = _t("cancel", {S.QUEUED, S.IN_PROGRESS, S.REQUIRES_ACTION}, S.CANCELLING)
FINISH_CANCEL = _t("finish cancel", {S.CANCELLING}, S.CANCELLED)
# Past ``expires_at`` an unfinished run expires, whatever it was doing.
EXPIRE = _t("expire", ACTIVE, S.EXPIRED)

NAMED: tuple[Transition, ...] = (
    CLAIM,
    HAND_BACK,
    REQUIRE_ACTION,
    RESUME,
    COMPLETE,
    END_INCOMPLETE,
    FAIL,
    CANCEL,
    FINISH_CANCEL,
    EXPIRE,
)

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    status: frozenset(t.target for t in NAMED if status in t.sources) for status in RunStatus
}


class IllegalTransition(Exception):
    """``transition`` cannot move a run from ``current``."""

    def __init__(self, current: RunStatus, transition: Transition) -> None:
        super().__init__(
            f"a run cannot {transition.name} from {current.value} (only from "
            f"{', '.join(sorted(s.value for s in transition.sources))})"
        )
        self.current = current
        self.transition = transition


def sources_of(target: RunStatus) -> frozenset[RunStatus]:
    """Every status from which a run may move to ``target``."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def can_move(current: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS[current]


def transition(current: RunStatus, move: Transition) -> RunStatus:
    """``move``'s target if ``move`` may start from ``current``; else raise
    ``IllegalTransition``."""
    if current not in move.sources:
        raise IllegalTransition(current, move)
    return move.target
