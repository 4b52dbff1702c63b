"""Applying due timers: the sweep behind ``Engine.tick``.

A tick claims due points with a lease, a batch at a time, and works case by case: for
each case with a claimed point it applies every live point of that case that is due,
earliest first, reading the case's points again after each one (a timer's change
reschedules the others). So a case's timers apply in due order whoever claimed them,
and a point whose case moved since the claim is looked at again, not dropped. Each
point is completed in the transaction that writes its effect, so its effect happens
once even when several engines sweep one store.

When the store's transactions offer savepoints (:class:`~closedloop.engine.ports.Savepoints`)
a batch is one transaction, each case inside a savepoint and each timer inside one of
its own: a refused expiry action rolls back alone and is reported, and a case that
another writer changed meanwhile is applied again, alone, after the batch commits.
Otherwise each case gets a transaction of its own. The change a timer makes is
written by the :class:`~closedloop.engine.writer.CaseWriter`, the same path commands
take.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.definition import Workflow
from closedloop.engine.kinds import TimerKind
from closedloop.engine.model import SYSTEM, Case
from closedloop.engine.ports import CaseStore, CaseTransaction, DuePoint, Savepoints
from closedloop.engine.writer import CaseWriter
from closedloop.errors import ClosedLoopError, ConcurrentModification, LeaseLost

ATTEMPTS = 8
"""How often a case whose timers lost a race is looked at again within one tick."""


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
            totals.update(self._apply(points, at))
        return TickReport(
            applied=totals[TimerOutcome.APPLIED],
            stale=totals[TimerOutcome.STALE],
            deferred=totals[TimerOutcome.DEFERRED],
        )

    def _apply(self, points: Sequence[DuePoint], now: datetime) -> Counter[TimerOutcome]:
        """Apply the timers of the cases of a claimed batch."""
        claimed: dict[str, set[str]] = {}
        for point in points:  # cases in the order of their earliest claimed point
            claimed.setdefault(point.case_id, set()).add(point.id)
        totals: Counter[TimerOutcome] = Counter()
        alone = list(claimed)
        if len(claimed) > 1:
            alone = []
            try:
                with self._store.transaction() as tx:
                    if not isinstance(tx, Savepoints):
                        raise _NoSavepoints
                    batch: Counter[TimerOutcome] = Counter()
                    for case_id, ids in claimed.items():
                        try:
                            with tx.savepoint():
                                batch.update(self._sweep_case(tx, case_id, ids, now, tx))
                        except (ConcurrentModification, LeaseLost):
                            alone.append(case_id)  # another writer moved it: again, alone
                    tx.commit()
                    totals.update(batch)
            except (_NoSavepoints, ClosedLoopError):
                totals.clear()
                alone = list(claimed)
        for case_id in alone:
            totals.update(self._case_alone(case_id, claimed[case_id], now))
        return totals

    def _case_alone(self, case_id: str, ids: set[str], now: datetime) -> Counter[TimerOutcome]:
        """Apply a case's due timers in a transaction of their own, again after a race."""
        refused: set[str] = set()
        for _ in range(ATTEMPTS):
            try:
                with self._store.transaction() as tx:
                    nested = tx if isinstance(tx, Savepoints) else None
                    outcomes = self._sweep_case(tx, case_id, ids, now, nested, refused)
                    tx.commit()
                    return outcomes
            except _Refused as refusal:
                refused.add(refusal.point_id)  # no savepoint: start again without it
            except (ConcurrentModification, LeaseLost):
                continue  # another writer moved the case or took the point: look again
            except ClosedLoopError:
                break  # the store failed: nothing was written
        # Still losing: the claims stay leased; a later tick tries again.
        return Counter({TimerOutcome.DEFERRED: len(ids)})

    def _sweep_case(
        self,
        tx: CaseTransaction,
        case_id: str,
        claimed: set[str],
        now: datetime,
        nested: Savepoints | None,
        refused: set[str] | None = None,
    ) -> Counter[TimerOutcome]:
        """Apply the case's live due points, earliest first, each as it stands now.

        ``claimed`` are this sweeper's claims: each one counts once, applied, deferred
        or stale (someone else applied it, or the case no longer needs it). Points not
        claimed here that it applies on the way count as applied.
        """
        skipped = set(refused or ())
        outcomes: Counter[TimerOutcome] = Counter()
        settled: set[str] = set()
        while True:
            due = [  # a point the store claimed counts as due: the claim is the store's word
                p
                for p in tx.get_due_points(case_id)
                if (p.due_at <= now or p.id in claimed) and p.id not in skipped
            ]
            if not due:
                break
            point = due[0]
            skipped.add(point.id)  # looked at once per sweep, whatever comes of it
            try:
                with nested.savepoint() if nested is not None else _plain():
                    applied = self._apply_point(tx, case_id, point, now)
            except (ConcurrentModification, LeaseLost):
                raise
            except ClosedLoopError as exc:  # the expiry action was refused
                if nested is None:
                    raise _Refused(point.id) from exc
                if point.id in claimed:
                    settled.add(point.id)
                    outcomes[TimerOutcome.DEFERRED] += 1
                continue
            if applied:
                outcomes[TimerOutcome.APPLIED] += 1
                settled.add(point.id)
            elif point.id in claimed:
                outcomes[TimerOutcome.STALE] += 1
                settled.add(point.id)
        for point_id in claimed - settled:
            # Refused in an earlier attempt, or applied by another sweeper meanwhile.
            refused_here = refused is not None and point_id in refused
            outcomes[TimerOutcome.DEFERRED if refused_here else TimerOutcome.STALE] += 1
        return outcomes

    def _apply_point(
        self, tx: CaseTransaction, case_id: str, point: DuePoint, now: datetime
    ) -> bool:
        """Complete ``point`` (as read in ``tx``) and write its effect if the case still
        needs it; whether it did."""
        tx.complete_due(point)  # first: whoever completed it first has it
        case = tx.get_case(case_id)
        if case is None or point.id not in {p.id for p in self._clocks.due_points(case)}:
            return False
        self._fire_on(tx, case, point, now)
        return True

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


class _NoSavepoints(Exception):
    """The store's transactions cannot roll part of their work back."""


class _Refused(Exception):
    """A timer's expiry action was refused (inside a transaction without savepoints)."""

    def __init__(self, point_id: str) -> None:
        super().__init__(point_id)
        self.point_id = point_id


def _plain() -> AbstractContextManager[None]:
    return nullcontext()
