"""Applying due timers: the sweep behind ``Engine.tick``.

Each due point is claimed with a lease and applied in a transaction of its own that
also completes the claim, so its effect happens once even when several engines sweep
one store; a lost lease rolls the whole transaction back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from closedloop.engine import audit, inputs
from closedloop.engine.commands import record
from closedloop.engine.model import SYSTEM, Case
from closedloop.engine.ports import CaseTransaction, DuePoint
from closedloop.engine.registry import Context
from closedloop.errors import ClosedLoopError

if TYPE_CHECKING:
    from closedloop.engine.service import Engine


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one ``tick`` did: timers applied, found stale (the deadline had moved), and
    left for a later tick (another writer won, or the expiry action was refused)."""

    applied: int = 0
    stale: int = 0
    deferred: int = 0


class TimerSweep:
    """Claims and applies the due timers of one engine's store.

    A part of the Engine kept in its own module: it uses the engine's internals
    (its timekeeper, services and the command path that writes a change).
    """

    def __init__(self, engine: Engine, *, owner: str, lease: timedelta) -> None:
        self._engine = engine
        self._owner = owner
        self._lease = lease

    def tick(
        self, at: datetime, *, batch: int, should_stop: Callable[[], bool] | None = None
    ) -> TickReport:
        """Apply every timer due at ``at``, earliest first, until none is left (or until
        ``should_stop()`` answers ``True`` before a claim)."""
        totals = [0, 0, 0]
        store = self._engine.store
        while should_stop is None or not should_stop():
            points = store.claim_due(at, owner=self._owner, lease=self._lease, limit=batch)
            if not points:  # firing a rung can schedule the next one, due already
                break
            for point in points:
                totals[self._fire(point, at)] += 1
        return TickReport(*totals)

    def _fire(self, point: DuePoint, now: datetime) -> int:
        """Apply one claimed timer; 0 applied, 1 stale, 2 deferred (see TickReport)."""
        try:
            with self._engine.store.transaction() as tx:
                if point.id not in {p.id for p in tx.get_due_points(point.case_id)}:
                    return 1  # cancelled since it was claimed (the case moved on)
                tx.complete_due(point)  # first: a lost lease means another engine has it
                case = tx.get_case(point.case_id)
                live = {p.id for p in self._engine._timekeeper.due_points(case)} if case else set()
                outcome = 1
                if case is not None and point.id in live:
                    self._fire_on(tx, case, point, now)
                    outcome = 0
                tx.commit()
                return outcome
        except ClosedLoopError:
            # Another writer won, the lease was lost, or the expiry action was refused:
            # nothing was written; the lease runs out and a later tick tries again.
            return 2

    def _fire_on(self, tx: CaseTransaction, case: Case, point: DuePoint, now: datetime) -> None:
        if point.kind == "expiry":
            assert case.deadline is not None
            expiry = self._engine.workflow.clock(case.deadline.clock).on_expiry
            assert expiry is not None
            transition = self._engine.workflow.transition(expiry.trigger)
            payload = inputs.payload(transition, {"reason": expiry.reason})
            self._engine._apply(
                tx,
                Context(case, SYSTEM, payload, now, transition, self._engine._services),
                "system",
            )
            return
        trigger, updates, payload = self._engine._timekeeper.effect(case, point)
        payload["due_at"] = point.due_at.isoformat()
        new, event = record(
            case,
            case.model_copy(update=updates),
            actor=SYSTEM.id,
            now=now,
            payload=payload,
            trigger=trigger,
            role="system",
            reason=None,
            prev_hash=audit.chain_head(tx, case.id),
        )
        notify: tuple[str, ...] = ()
        if point.kind == "escalation" and case.deadline is not None:
            step = self._engine.workflow.clock(case.deadline.clock).escalation[point.level - 1]
            notify = step.notify
        tx.update_case(new, case.version, event)
        self._engine._save_side_effects(tx, new, event, notify)
