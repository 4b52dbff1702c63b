"""Applying due timers: the sweep behind ``Engine.tick``.

A case's timers are derived from the case (:meth:`Timekeeper.due_points`); the store
keeps only their earliest instant on the case's row. A tick claims, with a lease, the
cases whose instant has come, a batch at a time, and works case by case: it reads the
case, derives its timers and applies those due, earliest first, deriving them again
after each one (a timer's change reschedules the others). The first write checks and
ends the claim's lease; a case whose timers are no longer due (a command changed it
after the claim) is released with its instant as it now stands. A timer's effect
changes the case so that the timer is not derived again, so it happens once even when
several engines sweep one store.

When the store's transactions offer savepoints (:class:`~closedloop.engine.ports.Savepoints`)
a batch is first applied in one transaction without them, its cases read at once and
its writes sent together when the store offers that
(:class:`~closedloop.engine.ports.CaseBatches`). If anything in it fails, that
transaction rolls back and the batch is applied again in one transaction, each case
inside a savepoint and each timer inside one of its own: a refused expiry action rolls
back alone and is reported, and a case that another writer changed meanwhile is
applied again, alone, after the batch commits. When the store's transactions can
claim (:class:`~closedloop.engine.ports.ClaimsWithin`) the batch's transaction claims
the next batch after its writes, so the one commit makes both durable; a batch that
failed claims nothing, and the next claim is a transaction of its own. Either way the
outcomes, the report and the stuck timers are the same. Without savepoints each case
gets a transaction of its own. The change a timer makes is written by the
:class:`~closedloop.engine.writer.CaseWriter`, the same path commands take.

A timer left for a later tick is never retried in silence: its case stays leased
until the lease expires, and it is logged on the ``closedloop.timers`` logger with its
:class:`TimerFailure`, counted by reason in :attr:`TickReport.deferred_by`, and kept
as a :class:`StuckTimer` (``Engine.stuck_timers``) until a tick applies it or finds it
stale.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, StrEnum

from closedloop.engine import audit
from closedloop.engine.deadlines import Timekeeper, iso_text
from closedloop.engine.definition import Workflow
from closedloop.engine.kinds import TimerKind
from closedloop.engine.model import SYSTEM, Case
from closedloop.engine.ports import (
    CaseBatches,
    CaseStore,
    CaseTransaction,
    ClaimsWithin,
    DuePoint,
    Savepoints,
    TimerClaim,
)
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
    WorkflowMismatch,
)

log = logging.getLogger("closedloop.timers")

ATTEMPTS = 8
"""How often a case whose timers lost a race is looked at again within one tick (and
how often one tick sweeps a case claimed again)."""


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
    """Another writer kept changing the case first, or the lease was lost: it passes."""
    REFUSED = "refused"
    """The clock's expiry action was refused (not allowed, a guard, the payload)."""
    CALENDAR_NOT_COVERED = "calendar_not_covered"
    """A calendar of the host's own has no data for a day the timer needs."""
    UNFIT = "unfit"
    """The engine cannot derive the case's timers: the case is in a state, runs a
    clock or counts on a calendar the engine's workflow or calendars do not declare
    (another version of the workflow, or an engine made without that calendar)."""
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


def failure_of(error: BaseException) -> TimerFailure:
    """The typed reason of an error that stopped a timer."""
    if isinstance(error, WorkflowMismatch):
        return TimerFailure.UNFIT
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
    """Claims the cases with due timers in a store and applies them through a writer.

    Args:
        store: Where the cases live.
        workflow: The workflow of the cases (for the clocks' expiry and escalation).
        timekeeper: Says which timers a case has and what each one does.
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
        self._due: dict[str, list[DuePoint]] = {}  # each case's due timers, as last read

    def tick(
        self, at: datetime, *, batch: int, should_stop: Callable[[], bool] | None = None
    ) -> TickReport:
        """Apply every timer due at ``at``, earliest first, until none is left (or until
        ``should_stop()`` answers ``True`` before a claim)."""
        totals = _Outcomes()
        swept: Counter[str] = Counter()
        then = _NextClaim(at, batch, should_stop, self._workflow.name)
        claims: list[TimerClaim] | None = None  # claimed along with the last batch
        while True:
            if claims is None:
                if then.stops():
                    break
                claims = self._store.claim_due(
                    at,
                    owner=self._owner,
                    lease=self._lease,
                    limit=batch,
                    workflow=self._workflow.name,
                )
            if not claims:
                break
            # A case claimed again within one tick is one whose timers came due again
            # (or never stopped being due): after a few sweeps it waits, leased.
            ready = [c for c in claims if swept[c.case_id] < ATTEMPTS]
            swept.update(c.case_id for c in ready)
            claims = None
            if ready:
                with audit.keeping(2 * len(ready)):
                    outcomes, claims = self._apply(ready, at, then)
                totals.update(outcomes)
        reasons = Counter(
            s.reason
            for s in self._stuck.values()
            if s.last_tried_at == at and s.point.case_id in swept
        )
        return TickReport(
            applied=totals.applied,
            stale=totals.stale,
            deferred=totals.deferred,
            deferred_by=dict(reasons),
        )

    def stuck(self) -> list[StuckTimer]:
        """The timers that failed at their last try and are not applied yet, by due time."""
        return sorted(self._stuck.values(), key=lambda s: (s.point.due_at, s.point.id))

    def _failed(self, point: DuePoint, error: BaseException, now: datetime) -> None:
        """Keep and log a timer left for a later tick, with its reason."""
        reason = failure_of(error)
        before = self._stuck.get(point.id)
        attempts = 1 if before is None else before.attempts + (before.last_tried_at != now)
        self._stuck[point.id] = StuckTimer(point, reason, str(error), attempts, now)
        log.warning(
            "timer %s of case %s not applied (%s, attempt %d): %s",
            point.id,
            point.case_id,
            reason.value,
            attempts,
            error,
        )

    def _apply(
        self, claims: Sequence[TimerClaim], now: datetime, then: _NextClaim
    ) -> tuple[_Outcomes, list[TimerClaim] | None]:
        """Apply the timers of the claimed cases (in the order of their instants); with
        the claims of the next batch when they were made in the same transaction."""
        totals = _Outcomes()
        alone = list(claims)
        if len(claims) > 1:
            # A batch with a timer that failed before would likely fail again at once.
            failed_before = {s.point.case_id for s in self._stuck.values()}
            clean = failed_before.isdisjoint(c.case_id for c in claims)
            at_once = self._at_once(claims, now, then) if clean else None
            if at_once is not None:
                self._due.clear()
                return at_once
            alone = []
            try:
                with self._store.transaction() as tx:
                    if not isinstance(tx, Savepoints):
                        raise _NoSavepoints
                    batch = _Outcomes()
                    for claim in claims:
                        if not self._sweep_saved(tx, tx, claim, now, batch):
                            alone.append(claim)  # another writer moved it: again, alone
                    tx.commit()
                    totals.update(batch)
            except (_NoSavepoints, ClosedLoopError):
                totals = _Outcomes()
                alone = list(claims)
        for claim in alone:
            totals.update(self._case_alone(claim, now))
        self._due.clear()  # read for this batch's failures only
        return totals, None

    def _at_once(
        self, claims: Sequence[TimerClaim], now: datetime, then: _NextClaim
    ) -> tuple[_Outcomes, list[TimerClaim] | None] | None:
        """Apply a batch in one transaction without savepoints, as long as nothing in it
        fails; ``None`` when something did (a refused expiry action, another writer, a
        lost lease, the store): nothing of the batch is written then, no timer is kept
        as stuck, and the caller applies the batch case by case, as it would have.

        When the store's transactions can claim (:class:`~closedloop.engine.ports.
        ClaimsWithin`) the next batch is claimed after the batch's writes, in the same
        transaction: its claims come back with the outcomes (``None`` otherwise)."""
        stuck = dict(self._stuck)
        totals = _Outcomes()
        following: list[TimerClaim] | None = None
        stopping: Exception | None = None
        then.ask_ahead()  # not while the batch holds the store's locks
        try:
            with self._store.transaction() as tx:
                if not isinstance(tx, Savepoints):
                    return None  # case by case, each in a transaction of its own
                batches = tx if isinstance(tx, CaseBatches) else None
                read: Mapping[str, Case] = {}
                if batches is not None:
                    read = batches.get_cases([claim.case_id for claim in claims])
                with batches.batched_writes() if batches is not None else _plain():
                    for claim in claims:
                        known = read.get(claim.case_id)
                        totals.update(self._sweep_case(tx, claim, now, None, case=known))
                if isinstance(tx, ClaimsWithin):
                    following, stopping = then.claim_within(tx, self._owner, self._lease)
                tx.commit()
        except (_Refused, ClosedLoopError):
            self._stuck = stuck
            return None
        if stopping is not None:
            raise stopping  # the host's should_stop failed: after the batch, as before
        return totals, following

    def _sweep_saved(
        self,
        tx: CaseTransaction,
        nested: Savepoints,
        claim: TimerClaim,
        now: datetime,
        into: _Outcomes,
    ) -> bool:
        """Sweep a claimed case of a batch inside a savepoint; ``False`` when another
        writer moved it (nothing of it is written then)."""
        refused: set[str] = set()
        while True:
            try:
                with nested.savepoint():
                    into.update(self._sweep_case(tx, claim, now, nested, refused))
                return True
            except _Refused as refusal:
                refused.add(refusal.point.id)  # its savepoint is gone: again without it
                self._failed(refusal.point, refusal.error, now)
            except (ConcurrentModification, LeaseLost):
                return False

    def _case_alone(self, claim: TimerClaim, now: datetime) -> _Outcomes:
        """Apply a case's due timers in a transaction of their own, again after a race."""
        refused: set[str] = set()
        last: ClosedLoopError | None = None
        for _ in range(ATTEMPTS):
            try:
                with self._store.transaction() as tx:
                    nested = tx if isinstance(tx, Savepoints) else None
                    outcomes = self._sweep_case(tx, claim, now, nested, refused)
                    tx.commit()
                    return outcomes
            except _Refused as refusal:
                refused.add(refusal.point.id)  # no savepoint: start again without it
                self._failed(refusal.point, refusal.error, now)
            except (ConcurrentModification, LeaseLost) as lost:
                last = lost
                continue  # another writer moved the case or took the claim: look again
            except ClosedLoopError as failed:
                last = failed
                break  # the store failed: nothing was written
        # Still losing: the claim stays leased; a later tick tries again.
        due = self._due.get(claim.case_id, [])
        for point in due:
            self._failed(point, last or LeaseLost(claim.case_id), now)
        return _Outcomes(deferred=max(len(due), 1))

    def _sweep_case(
        self,
        tx: CaseTransaction,
        claim: TimerClaim,
        now: datetime,
        nested: Savepoints | None,
        refused: set[str] | None = None,
        *,
        case: Case | None = None,
    ) -> _Outcomes:
        """Apply the claimed case's due timers, earliest first, each as it stands now.

        The first write ends the claim; when nothing is written the claim is released
        with the case's earliest instant as it now stands. A case with a timer left for
        a later tick stays leased under the claim (``case``: the case as this
        transaction read it already).
        """
        outcomes = _Outcomes()
        if case is None:
            case = tx.get_case(claim.case_id)
        if case is None:
            return _Outcomes(stale=1)
        try:
            due = self._derived(case, claim, now)
        except _Unfit as unfit:
            # Nothing the engine could write: the case stays leased and is reported.
            self._due[case.id] = [unfit.point]
            self._failed(unfit.point, unfit.error, now)
            return _Outcomes(deferred=1)
        self._due[case.id] = due
        if self._stuck:
            for point_id in [i for i, s in self._stuck.items() if s.point.case_id == case.id]:
                if point_id not in {p.id for p in due}:
                    del self._stuck[point_id]  # the case no longer needs it
        done = set(refused) if refused else set()
        deferred = len(done & {p.id for p in due}) if done else 0
        held: TimerClaim | None = claim  # the claim no write has ended yet
        current = due  # the case's due timers as it now stands
        while True:
            ready = [p for p in current if p.id not in done]
            if not ready:
                break
            point = ready[0]
            done.add(point.id)  # looked at once per sweep, whatever comes of it
            # Until this case has a write to keep, a refusal undoes nothing worth a
            # savepoint: the caller starts the case again without the refused timer.
            saved = nested is not None and outcomes.applied > 0
            try:
                if saved and nested is not None:
                    with nested.savepoint():
                        new = self._fire_on(tx, case, point, now, held)
                else:
                    new = self._fire_on(tx, case, point, now, held)
            except (ConcurrentModification, LeaseLost):
                raise
            except ClosedLoopError as exc:  # the expiry action was refused
                if not saved:
                    raise _Refused(point, exc) from exc
                deferred += 1
                self._failed(point, exc, now)
                continue
            if self._stuck:
                self._stuck.pop(point.id, None)
            outcomes.applied += 1
            case, held = new, None
            next_at = self._writer.next_timer_at(case)  # as the write stored it
            current = [] if next_at is None or next_at > now else self._due_now(case, now)
        outcomes.deferred += deferred
        if held is None:
            if deferred:
                tx.hold_claim(claim, version=case.version)  # the rest waits, leased
        elif not deferred:
            tx.release_claim(
                held, version=case.version, next_timer_at=self._clocks.next_timer_at(case)
            )
            outcomes.stale += 1
        return outcomes

    def _derived(self, case: Case, claim: TimerClaim, now: datetime) -> list[DuePoint]:
        """The claimed case's timers due at ``now`` (see :meth:`_due_now`).

        Raises:
            _Unfit: the engine cannot derive them: the case's workflow is not the
                engine's, or names a state, a clock or a calendar it lacks.
        """
        reason = misfit(case, self._workflow)
        if reason is None:
            try:
                return self._due_now(case, now)
            except CalendarNotCovered as uncovered:
                raise _Unfit(_standing_for(case, claim), uncovered) from uncovered
            except (ClosedLoopError, LookupError) as failed:
                reason = f"its timers cannot be counted: {failed}"
        mismatch = WorkflowMismatch(self._workflow.name, case.id, case.workflow, reason)
        raise _Unfit(_standing_for(case, claim), mismatch)

    def _due_now(self, case: Case, now: datetime) -> list[DuePoint]:
        """The case's timers due at ``now``, earliest first: whatever the claim said, a
        timer never fires before its instant."""
        return self._clocks.due_points(case, until=now)

    def _fire_on(
        self,
        tx: CaseTransaction,
        case: Case,
        point: DuePoint,
        now: datetime,
        claim: TimerClaim | None,
    ) -> Case:
        """Write what ``point`` does to ``case``; the case as written."""
        if point.kind == TimerKind.EXPIRY:
            assert case.deadline is not None
            expiry = self._workflow.clock(case.deadline.clock).on_expiry
            assert expiry is not None
            return self._writer.fire(
                tx,
                case,
                expiry.trigger,
                by=SYSTEM,
                payload={"reason": expiry.reason},
                now=now,
                role="system",
                claim=claim,
            )
        trigger, updates, payload = self._clocks.effect(case, point)
        payload["due_at"] = iso_text(point.due_at)
        notify = self._clocks.escalation_targets(case, point)
        return self._writer.mark(
            tx,
            case,
            trigger=trigger,
            updates=updates,
            payload=payload,
            now=now,
            notify=notify,
            claim=claim,
        )


def misfit(case: Case, workflow: Workflow) -> str | None:
    """Why ``workflow`` cannot handle ``case``; ``None`` when it can (as far as its name,
    states and clocks go)."""
    try:
        workflow.state(case.state)
    except KeyError:
        return f"it is in state {case.state!r}, which workflow {workflow.name!r} does not declare"
    if case.deadline is not None:
        clock = case.deadline.clock
        try:
            workflow.clock(clock)
        except KeyError:
            return f"its clock {clock!r} is not a clock of workflow {workflow.name!r}"
    if case.workflow != workflow.name:
        return "the workflows' names differ"
    return None


def _standing_for(case: Case, claim: TimerClaim) -> DuePoint:
    """A point standing for the timers of a case the engine cannot derive: the next one
    its clock's warning level leads to, at the instant the claim read."""
    deadline = case.deadline
    clock = deadline.clock if deadline is not None else "-"
    warning = deadline.warning if deadline is not None else "none"
    kind = {"none": TimerKind.WARNING, "yellow": TimerKind.BREACH}.get(
        warning, TimerKind.ESCALATION
    )
    due_at = claim.next_timer_at
    return DuePoint(
        id=f"{case.id}/{clock}/{kind}/underived/{due_at.isoformat()}",
        case_id=case.id,
        clock=clock,
        kind=kind,
        due_at=due_at,
    )


class _NextClaim:
    """How a tick claims its next batch: at its instant, so many at a time, unless the
    host asks it to stop. ``should_stop`` is asked once per claim, and never inside a
    transaction: a batch whose transaction claims the next one asks it before opening
    (:meth:`ask_ahead`), and the claim after takes that answer."""

    __slots__ = ("_ahead", "at", "limit", "should_stop", "workflow")

    def __init__(
        self,
        at: datetime,
        limit: int,
        should_stop: Callable[[], bool] | None,
        workflow: str,
    ) -> None:
        self.at = at
        self.limit = limit
        self.should_stop = should_stop
        self.workflow = workflow
        self._ahead: bool | Exception | None = None  # an answer not yet taken

    def ask_ahead(self) -> None:
        """Ask ``should_stop`` now for the next claim (what it raises is kept too)."""
        if self.should_stop is not None and self._ahead is None:
            try:
                self._ahead = self.should_stop()
            except Exception as failed:  # raised when the answer is taken
                self._ahead = failed

    def stops(self) -> bool:
        """Whether the host asks the tick to stop before its next claim.

        Raises:
            Exception: what ``should_stop`` raised.
        """
        ahead, self._ahead = self._ahead, None
        if isinstance(ahead, Exception):
            raise ahead
        if ahead is not None:
            return ahead
        return self.should_stop is not None and self.should_stop()

    def claim_within(
        self, tx: ClaimsWithin, owner: str, lease: timedelta
    ) -> tuple[list[TimerClaim], Exception | None]:
        """The next batch's claims made in ``tx`` (none once the host asks to stop), and
        what ``should_stop`` raised, if it did (raised once ``tx`` has committed)."""
        try:
            if self.stops():
                return [], None
        except Exception as failed:  # raised again once the batch has committed
            return [], failed
        claims = tx.claim_due(
            self.at, owner=owner, lease=lease, limit=self.limit, workflow=self.workflow
        )
        return claims, None


class _Outcomes:
    """How many claimed timers came to each :class:`TimerOutcome` (counted as a tick
    goes: plain numbers, not a ``Counter`` of the enumeration's members)."""

    __slots__ = ("applied", "deferred", "stale")

    def __init__(self, *, applied: int = 0, stale: int = 0, deferred: int = 0) -> None:
        self.applied = applied
        self.stale = stale
        self.deferred = deferred

    def update(self, other: _Outcomes) -> None:
        """Add ``other``'s numbers to these."""
        self.applied += other.applied
        self.stale += other.stale
        self.deferred += other.deferred


class _NoSavepoints(Exception):
    """The store's transactions cannot roll part of their work back."""


class _Unfit(Exception):
    """The engine cannot derive a claimed case's timers (``point`` stands for them)."""

    def __init__(self, point: DuePoint, error: ClosedLoopError) -> None:
        super().__init__(point.id)
        self.point = point
        self.error = error


class _Refused(Exception):
    """A timer's expiry action was refused (inside a transaction without savepoints)."""

    def __init__(self, point: DuePoint, error: ClosedLoopError) -> None:
        super().__init__(point.id)
        self.point = point
        self.error = error


def _plain() -> AbstractContextManager[None]:
    return nullcontext()
