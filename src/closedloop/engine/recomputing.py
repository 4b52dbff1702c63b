"""Counting open clocks again when a calendar is corrected: :class:`Recount`.

A host adds a year's holiday data, or corrects a day (a make-up working day announced
late), and asks ``Engine.recompute_deadlines(since=...)``. Every open case whose
clock was counted over days from ``since`` on (a provisional clock always) is counted
again on the calendars as they are now, each case in a transaction of its own. When a
due point moves, or a provisional clock becomes definite, the writer records a
``deadline_recomputed`` event by the system with the old timers (derived from the
case on the calendars as they were) and the new ones, and stores the case's new
earliest timer instant. A clock running beside the case's (the handling clock from
the dispatch, beside the sign-for clock) is counted again with it, and the event then
gives its old and new due instants too. Warnings fired and rungs climbed stay as they
were: nothing is taken back, and nothing fires twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime

from closedloop.engine.case_query import MAX_PAGE
from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.definition import Workflow
from closedloop.engine.kinds import SUBTASK_TIMERS, EngineTrigger, TimerKind
from closedloop.engine.model import Case, Deadline
from closedloop.engine.ports import CaseQueries, CaseStore, DuePoint
from closedloop.engine.writer import CaseWriter
from closedloop.errors import StoreError


class Recount:
    """Counts the open clocks of one store again, through the writer.

    Args:
        store: Where the cases live; it must answer case queries (both shipped stores do).
        workflow: The workflow of the cases (which states are open).
        timekeeper: Counts the clocks, on the calendars as they are now.
        writer: Records each move.
        before: Counts on the calendars as they were before the correction: the timers
            each case had (the store keeps none; they are derived from the case).
    """

    def __init__(
        self,
        store: CaseStore,
        workflow: Workflow,
        timekeeper: Timekeeper,
        writer: CaseWriter,
        before: Timekeeper | None = None,
    ) -> None:
        self._store = store
        self._workflow = workflow
        self._clocks = timekeeper
        self._before = before or timekeeper
        self._writer = writer

    def run(self, since: date, calendar: str | None, now: datetime) -> tuple[str, ...]:
        """Count again every open clock touching ``since`` on ``calendar`` (any calendar
        when ``None``); the ids of the cases whose clocks moved, in the order found.

        Raises:
            StoreError: the store answers no case queries, or the backend failed.
        """
        moved = []
        for case_id in self._open_cases():
            with self._store.transaction() as tx:
                case = tx.get_case(case_id)
                if case is None or case.deadline is None:
                    continue
                if case.workflow != self._workflow.name:
                    continue  # another workflow's case, in the same store
                if not self._clocks.touches(case.deadline, since, calendar):
                    continue
                new = self._clocks.recomputed(case.deadline, now)
                old_timers = _named(self._old_timers(case))
                new_timers = self._clocks.timers(new)
                if old_timers == new_timers and _marks(case.deadline) == _marks(new):
                    continue
                payload: dict[str, object] = {
                    "since": since.isoformat(),
                    "calendar": new.calendar,
                    "old_due_at": case.deadline.due_at.isoformat(),
                    "new_due_at": new.due_at.isoformat(),
                    "old_timers": old_timers,
                    "new_timers": new_timers,
                    "provisional": new.provisional,
                }
                if case.deadline.beside is not None and new.beside is not None:
                    payload["old_beside_due_at"] = case.deadline.beside.due_at.isoformat()
                    payload["new_beside_due_at"] = new.beside.due_at.isoformat()
                self._writer.mark(
                    tx,
                    case,
                    trigger=EngineTrigger.DEADLINE_RECOMPUTED,
                    updates={"deadline": new},
                    payload=payload,
                    now=now,
                )
                tx.commit()
                moved.append(case_id)
        return tuple(moved)

    def _old_timers(self, case: Case) -> list[DuePoint]:
        """The timers the case had: counted on the calendars as they were before the
        correction, unless the case was counted on corrected ones already."""
        assert case.deadline is not None
        before = self._before if self._before.counts(case.deadline) else self._clocks
        return before.due_points(case)

    def _open_cases(self) -> Iterator[str]:
        if not isinstance(self._store, CaseQueries):
            raise StoreError(
                f"{type(self._store).__name__} answers no case queries: "
                "recomputing deadlines needs find_cases"
            )
        waiting = [s.name for s in self._workflow.states if not s.final]
        ids: list[str] = []
        cursor: str | None = None
        while True:  # every id first: the pages do not shift under the writes
            page = self._store.find_cases(state=waiting, after=cursor, limit=MAX_PAGE)
            ids += [case.id for case in page.cases]
            cursor = page.next_cursor
            if cursor is None:
                break
        yield from ids


def _named(points: Sequence[DuePoint]) -> dict[str, str]:
    """The timers a case had scheduled, named as :meth:`Timekeeper.timers` names them."""
    return {
        point.kind if point.kind != TimerKind.ESCALATION else f"{point.kind}.{point.level}": (
            point.due_at.isoformat()
        )
        for point in points
        if point.kind not in SUBTASK_TIMERS  # a subtask's clock does not move with the case's
    }


def _marks(deadline: Deadline) -> tuple[object, ...]:
    """What a recount may move in a deadline, the clock beside it included."""
    return (
        deadline.due_at,
        deadline.warn_at,
        deadline.provisional,
        deadline.provisional_reason,
        deadline.fallback_days,
        None if deadline.beside is None else _marks(deadline.beside),
    )
