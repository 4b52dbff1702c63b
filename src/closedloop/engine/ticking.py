"""Applying due timers: the sweep behind ``Engine.tick``.

Each due point is claimed with a lease and applied in a transaction of its own that
also completes the claim, so its effect happens once even when several engines sweep
one store; a lost lease rolls the whole transaction back. The change a timer makes is
written by the :class:`~closedloop.engine.writer.CaseWriter`, the same path commands
take.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, StrEnum

from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.definition import Workflow
from closedloop.engine.kinds import TimerKind
from closedloop.engine.model import SYSTEM, Case
from closedloop.engine.ports import CaseStore, CaseTransaction, DuePoint
from closedloop.engine.writer import CaseWriter
from closedloop.errors import (
    CalendarNotCovered,
    CaseError,
    ClosedLoopError,
    ConcurrentModification,
    InputError,
    LeaseLost,
    PermissionDenied,
    StoreError,
)

log = logging.getLogger("closedloop.timers")


class TimerOutcome(Enum):
    """What became of one claimed timer (counted in a :class:`TickReport`)."""

    APPLIED = "applied"
    """Its effect was written."""
    STALE = "stale"
    """The deadline had moved, or the case moved on: nothing to do."""
    DEFERRED = "deferred"
    """Another writer won, the lease was lost, or the expiry action was refused:
    nothing was written, and a later tick tries again."""


class TimerFailure(StrEnum):
    """Why a claimed timer could not be applied (see :class:`StuckTimer`)."""

    CONFLICT = "conflict"
    """Another writer changed the case first, or the lease was lost: it passes."""
    REFUSED = "refused"
    """The clock's expiry action was refused (not allowed, a guard, the payload)."""
    CALENDAR_NOT_COVERED = "calendar_not_covered"
    """A calendar of the host's own has no data for a day the timer needs."""
    STORE = "store"
    """The store failed."""
    ERROR = "error"
    """Any other refusal by the engine."""


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one ``tick`` did: timers applied, found stale (the deadline had moved), and
    left for a later tick, with why (``deferred_by``: a :class:`TimerFailure` each)."""

    applied: int = 0
    stale: int = 0
    deferred: int = 0
    deferred_by: Mapping[TimerFailure, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StuckTimer:
    """A timer that failed and waits for a later tick, as ``Engine.stuck_timers`` lists
    it: the point, why it failed (the last time), the error's words, how many ticks
    have tried it and when the last one did."""

    point: DuePoint
    reason: TimerFailure
    detail: str
    attempts: int
    last_tried_at: datetime


def failure_of(error: ClosedLoopError) -> TimerFailure:
    """The typed reason of an error that stopped a timer."""
    if isinstance(error, ConcurrentModification | LeaseLost):
        return TimerFailure.CONFLICT
    if isinstance(error, CalendarNotCovered):
        return TimerFailure.CALENDAR_NOT_COVERED
    if isinstance(error, StoreError):
        return TimerFailure.STORE
    if isinstance(error, CaseError | PermissionDenied | InputError):
        return TimerFailure.REFUSED
    return TimerFailure.ERROR


class TimerSweep:
    """Claims the due timers of a store and applies them through a writer.

    Args:
        store: Where the timers and cases live.
        workflow: The workflow of the cases (for the clocks' expiry and escalation).
        timekeeper: Says which timers a case should have and what each one does.
        writer: Writes each timer's change.
        owner: Names this sweeper on its leases.
        lease: How long a claim is held.
    """

    def __init__(
        self,
        store: CaseStore,
        workflow: Workflow,
        timekeeper: Timekeeper,
        writer: CaseWriter,
        *,
        owner: str,
        lease: timedelta,
    ) -> None:
        self._store = store
        self._workflow = workflow
        self._clocks = timekeeper
        self._writer = writer
        self._owner = owner
        self._lease = lease
        self._stuck: dict[str, StuckTimer] = {}

    def tick(
        self, at: datetime, *, batch: int, should_stop: Callable[[], bool] | None = None
    ) -> TickReport:
        """Apply every timer due at ``at``, earliest first, until none is left (or until
        ``should_stop()`` answers ``True`` before a claim)."""
        totals: Counter[TimerOutcome] = Counter()
        reasons: Counter[TimerFailure] = Counter()
        while should_stop is None or not should_stop():
            points = self._store.claim_due(at, owner=self._owner, lease=self._lease, limit=batch)
            if not points:  # firing a rung can schedule the next one, due already
                break
            for point in points:
                outcome = self._fire(point, at)
                totals[outcome] += 1
                if outcome is TimerOutcome.DEFERRED:
                    reasons[self._stuck[point.id].reason] += 1
        return TickReport(
            applied=totals[TimerOutcome.APPLIED],
            stale=totals[TimerOutcome.STALE],
            deferred=totals[TimerOutcome.DEFERRED],
            deferred_by=dict(reasons),
        )

    def stuck(self) -> list[StuckTimer]:
        """The timers that failed at their last try and are not applied yet, by due time."""
        return sorted(self._stuck.values(), key=lambda s: (s.point.due_at, s.point.id))

    def _fire(self, point: DuePoint, now: datetime) -> TimerOutcome:
        """Apply one claimed timer; a failure is logged and kept with its reason."""
        try:
            outcome = self._applied(point, now)
        except ClosedLoopError as error:
            # Nothing was written; the lease runs out and a later tick tries again.
            self._failed(point, error, now)
            return TimerOutcome.DEFERRED
        self._stuck.pop(point.id, None)
        return outcome

    def _failed(self, point: DuePoint, error: ClosedLoopError, now: datetime) -> None:
        reason = failure_of(error)
        before = self._stuck.get(point.id)
        attempts = before.attempts + 1 if before is not None else 1
        self._stuck[point.id] = StuckTimer(point, reason, str(error), attempts, now)
        log.warning(
            "timer %s of case %s not applied (%s, attempt %d): %s",
            point.id,
            point.case_id,
            reason.value,
            attempts,
            error,
        )

    def _applied(self, point: DuePoint, now: datetime) -> TimerOutcome:
        """Apply one claimed timer in its own transaction."""
        with self._store.transaction() as tx:
            if point.id not in {p.id for p in tx.get_due_points(point.case_id)}:
                return TimerOutcome.STALE  # cancelled since it was claimed
            tx.complete_due(point)  # first: a lost lease means another engine has it
            case = tx.get_case(point.case_id)
            live = {p.id for p in self._clocks.due_points(case)} if case else set()
            outcome = TimerOutcome.STALE
            if case is not None and point.id in live:
                self._fire_on(tx, case, point, now)
                outcome = TimerOutcome.APPLIED
            tx.commit()
            return outcome

    def _fire_on(self, tx: CaseTransaction, case: Case, point: DuePoint, now: datetime) -> None:
        if point.kind == TimerKind.EXPIRY:
            assert case.deadline is not None
            expiry = self._workflow.clock(case.deadline.clock).on_expiry
            assert expiry is not None
            self._writer.fire(
                tx,
                case,
                expiry.trigger,
                by=SYSTEM,
                payload={"reason": expiry.reason},
                now=now,
                role="system",
            )
            return
        trigger, updates, payload = self._clocks.effect(case, point)
        payload["due_at"] = point.due_at.isoformat()
        notify: tuple[str, ...] = ()
        if point.kind == TimerKind.ESCALATION and case.deadline is not None:
            step = self._workflow.clock(case.deadline.clock).escalation[point.level - 1]
            notify = step.notify
        self._writer.mark(
            tx, case, trigger=trigger, updates=updates, payload=payload, now=now, notify=notify
        )
