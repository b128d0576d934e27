"""The Run's status machine: every status of the spec, its moves, its ends."""

from __future__ import annotations

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

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    S.QUEUED: frozenset({S.IN_PROGRESS, S.CANCELLING, S.CANCELLED, S.FAILED, S.EXPIRED}),
    S.IN_PROGRESS: frozenset(
        {S.QUEUED, S.REQUIRES_ACTION, S.CANCELLING, S.COMPLETED, S.INCOMPLETE, S.FAILED, S.EXPIRED}
    ),
    S.REQUIRES_ACTION: frozenset({S.QUEUED, S.CANCELLING, S.CANCELLED, S.FAILED, S.EXPIRED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.FAILED, S.EXPIRED}),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
    S.COMPLETED: frozenset(),
    S.INCOMPLETE: frozenset(),
    S.EXPIRED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: RunStatus, target: RunStatus) -> None:
        super().__init__(f"a run cannot move from {current.value} to {target.value}")
        self.current = current
        self.target = target


def sources_of(target: RunStatus) -> frozenset[RunStatus]:
    """Every status from which a run may move to ``target``."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def can_move(current: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS[current]


def transition(current: RunStatus, target: RunStatus) -> RunStatus:
    """``target`` if the move is legal, else raise ``IllegalTransition``."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
    return target
