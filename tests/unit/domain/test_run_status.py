"""The status machine: named transitions, the table derived from them, refusals."""

from __future__ import annotations

import pytest

from tests.support.spec_schema import RUN_STATUSES
from threadline.domain import run_status as rs
from threadline.domain.run_status import ACTIVE, TERMINAL, TRANSITIONS, RunStatus

S = RunStatus


def test_every_status_of_the_spec_and_no_other() -> None:
    assert {s.value for s in RunStatus} == RUN_STATUSES
    assert set(RunStatus) == TERMINAL | ACTIVE
    assert not TERMINAL & ACTIVE


def test_terminal_statuses_go_nowhere_and_active_ones_can_expire() -> None:
    for status in TERMINAL:
        assert status.is_terminal
        assert TRANSITIONS[status] == frozenset()
    for status in ACTIVE:
        assert not status.is_terminal
        assert S.EXPIRED in TRANSITIONS[status]


def test_table_is_exactly_the_named_transitions() -> None:
    edges = {(s, t) for s, targets in TRANSITIONS.items() for t in targets}
    named = {(s, t.target) for t in rs.NAMED for s in t.sources}
    assert edges == named
    assert len({t.name for t in rs.NAMED}) == len(rs.NAMED)


@pytest.mark.parametrize(
    ("move", "sources", "target"),
    [
        (rs.CLAIM, {S.QUEUED}, S.IN_PROGRESS),
        (rs.HAND_BACK, {S.IN_PROGRESS}, S.QUEUED),
        (rs.REQUIRE_ACTION, {S.IN_PROGRESS}, S.REQUIRES_ACTION),
        (rs.RESUME, {S.REQUIRES_ACTION}, S.QUEUED),
        (rs.COMPLETE, {S.IN_PROGRESS}, S.COMPLETED),
        (rs.END_INCOMPLETE, {S.IN_PROGRESS}, S.INCOMPLETE),
        (rs.FAIL, {S.IN_PROGRESS}, S.FAILED),
        (rs.CANCEL, {S.QUEUED, S.IN_PROGRESS, S.REQUIRES_ACTION}, S.CANCELLING),
        (rs.FINISH_CANCEL, {S.CANCELLING}, S.CANCELLED),
        (rs.EXPIRE, set(ACTIVE), S.EXPIRED),
    ],
)
def test_each_named_transition(
    move: rs.Transition, sources: set[RunStatus], target: RunStatus
) -> None:
    assert move.sources == sources
    for status in RunStatus:
        if status in sources:
            assert rs.transition(status, move) is target
            assert rs.can_move(status, target)
        else:
            with pytest.raises(rs.IllegalTransition) as refused:
                rs.transition(status, move)
            assert refused.value.current is status
            assert refused.value.transition is move
            assert move.name in str(refused.value)


def test_sources_of() -> None:
    assert rs.sources_of(S.CANCELLED) == {S.CANCELLING}
    assert rs.sources_of(S.QUEUED) == {S.IN_PROGRESS, S.REQUIRES_ACTION}
    assert rs.sources_of(S.IN_PROGRESS) == {S.QUEUED}
