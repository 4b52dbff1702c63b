"""Applying due timers: the sweep behind ``Engine.tick``.

Each due point is claimed with a lease and applied in a transaction of its own that
also completes the claim, so its effect happens once even when several engines sweep
one store; a lost lease rolls the whole transaction back. The change a timer makes is
written by the :class:`~closedloop.engine.writer.CaseWriter`, the same path commands
take.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.definition import Workflow
from closedloop.engine.kinds import TimerKind
from closedloop.engine.model import SYSTEM, Case
from closedloop.engine.ports import CaseStore, CaseTransaction, DuePoint
from closedloop.engine.writer import CaseWriter
from closedloop.errors import ClosedLoopError


class TimerOutcome(Enum):
    """What became of one claimed timer (counted in a :class:`TickReport`)."""

    APPLIED = "applied"
    """Its effect was written."""
    STALE = "stale"
    """The deadline had moved, or the case moved on: nothing to do."""
    DEFERRED = "deferred"
    """Another writer won, the lease was lost, or the expiry action was refused:
    nothing was written, and a later tick tries again."""


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one ``tick`` did: timers applied, found stale (the deadline had moved), and
    left for a later tick (another writer won, or the expiry action was refused)."""

    applied: int = 0
    stale: int = 0
    deferred: int = 0


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

    def tick(
        self, at: datetime, *, batch: int, should_stop: Callable[[], bool] | None = None
    ) -> TickReport:
        """Apply every timer due at ``at``, earliest first, until none is left (or until
        ``should_stop()`` answers ``True`` before a claim)."""
        totals: Counter[TimerOutcome] = Counter()
        while should_stop is None or not should_stop():
            points = self._store.claim_due(at, owner=self._owner, lease=self._lease, limit=batch)
            if not points:  # firing a rung can schedule the next one, due already
                break
            for point in points:
                totals[self._fire(point, at)] += 1
        return TickReport(
            applied=totals[TimerOutcome.APPLIED],
            stale=totals[TimerOutcome.STALE],
            deferred=totals[TimerOutcome.DEFERRED],
        )

    def _fire(self, point: DuePoint, now: datetime) -> TimerOutcome:
        """Apply one claimed timer."""
        try:
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
        except ClosedLoopError:
            # Another writer won, the lease was lost, or the expiry action was refused:
            # nothing was written; the lease runs out and a later tick tries again.
            return TimerOutcome.DEFERRED

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
        notify = self._clocks.escalation_targets(case, point)
        self._writer.mark(
            tx, case, trigger=trigger, updates=updates, payload=payload, now=now, notify=notify
        )
