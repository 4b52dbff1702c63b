"""The Engine: the service a host application calls.

Each command is one transaction: load the case, have the
:class:`~closedloop.engine.writer.CaseWriter` apply it (the trigger's legality, the
actor's roles, the payload and guards, the destination, the audit event, the case's
timers and notifications), commit with an optimistic version check. A command that
fails writes nothing. ``tick`` applies the timers that have come due, each in a transaction of its
own, exactly once however many engines sweep the same store.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Unpack

from closedloop.engine import audit, idempotency, inputs
from closedloop.engine.access import can_see, contact_for
from closedloop.engine.calendars import NaturalCalendar
from closedloop.engine.case_query import CasePage
from closedloop.engine.clock import SystemClock, utc
from closedloop.engine.context import Services
from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.definition import Workflow
from closedloop.engine.delivery import Deliverer, DeliveryReport, RetryPolicy
from closedloop.engine.duties.responsibility_list import ResponsibilityList
from closedloop.engine.model import Actor, AuditEvent, Case, Location, ReporterContact
from closedloop.engine.ports import (
    CaseStore,
    CaseTransaction,
    Clock,
    Directory,
    Notifier,
    OutboxMessage,
    WorkCalendar,
)
from closedloop.engine.reading import Criteria, Reader
from closedloop.engine.ticking import TickReport, TimerSweep
from closedloop.engine.writer import CaseWriter
from closedloop.errors import CaseNotFound, ConcurrentModification


def _new_id() -> str:
    return uuid.uuid4().hex


class Engine:
    """Runs cases of one workflow through their loop, on a store, with a clock.

    Args:
        workflow: The validated workflow definition, e.g. ``workflows.standard()``.
        store: Where cases live (``InMemoryStore()`` for tests, ``SQLStore(url)``).
        clock: Where time comes from; the system UTC clock by default.
        calendar: The calendar for clocks that name none; natural time by default.
        calendars: Further calendars by name, for clocks and SLA rows that name one.
        responsibilities: The responsibility list that ``dispatch`` routes by; without
            one, dispatchers name the unit.
        directory: Units and members, to check unit ids; the list's by default.
        notifier: Delivers the outbox: one notifier for every channel, or notifiers by
            channel name (``"*"`` for the rest).
        retry: Attempts, backoff and jitter for deliveries.
        id_factory: Makes new case ids; random UUIDs by default.
        worker_id: Names this engine on the leases it takes; random by default.
        lease: How long a claimed timer or message is held before another engine may
            take it over.
        seed: Seeds the jitter of retries (for reproducible tests and simulations).

    Raises:
        UnknownName: a clock of the workflow names a calendar not given here.
    """

    def __init__(
        self,
        workflow: Workflow,
        *,
        store: CaseStore,
        clock: Clock | None = None,
        calendar: WorkCalendar | None = None,
        calendars: Mapping[str, WorkCalendar] | None = None,
        responsibilities: ResponsibilityList | None = None,
        directory: Directory | None = None,
        id_factory: Callable[[], str] = _new_id,
        notifier: Notifier | Mapping[str, Notifier] | None = None,
        retry: RetryPolicy | None = None,
        worker_id: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        seed: int | None = None,
    ) -> None:
        self._workflow = workflow
        self._store = store
        self._clock: Clock = clock or SystemClock()
        default = calendar or NaturalCalendar()
        known = {**(calendars or {}), default.name: default}
        timekeeper = Timekeeper(workflow, known, default.name)
        if directory is None and responsibilities is not None:
            directory = responsibilities.directory
        services = Services(responsibilities, directory, default)
        self._writer = CaseWriter(workflow, timekeeper, services)
        self._reader = Reader(workflow, store)
        self._new_id = id_factory
        self._worker = worker_id or f"engine-{uuid.uuid4().hex[:12]}"
        self._lease = lease
        channels = (
            notifier if isinstance(notifier, Mapping) else {"*": notifier} if notifier else {}
        )
        self._timers = TimerSweep(
            store, workflow, timekeeper, self._writer, owner=self._worker, lease=lease
        )
        self._deliverer = Deliverer(
            store,
            channels,
            owner=self._worker,
            lease=lease,
            policy=retry or RetryPolicy(),
            rng=random.Random(seed),
        )

    @property
    def workflow(self) -> Workflow:
        """The workflow this engine runs."""
        return self._workflow

    @property
    def store(self) -> CaseStore:
        """The store this engine writes to."""
        return self._store

    # -- commands ------------------------------------------------------------------------

    def report(
        self,
        reporter: Actor,
        *,
        description: str,
        location: Location | str | Mapping[str, Any] | None = None,
        category: str | None = None,
        channel: str = "hotline",
        contact: ReporterContact | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Case:
        """Open a case for a report; the reporter is the only one who can confirm it.

        Raises:
            ValidationError: a field is missing or malformed; the error names it.
            IdempotencyConflict: the key was used for a different report.
        """
        report, checked_contact = inputs.report(
            self._new_id(), reporter, description, location, category, channel, contact
        )
        digest = idempotency.fingerprint(
            "report", reporter.id, description, location, category, channel, contact
        )
        with self._store.transaction() as tx:
            first = idempotency.first_result(tx, idempotency_key, digest)
            if first is not None:
                return self._shown(first, reporter, tx.get_contact(first.id))
            case = self._writer.open(tx, report, checked_contact, self._now())
            idempotency.remember(tx, idempotency_key, digest, case)
            tx.commit()
        return self._shown(case, reporter, checked_contact)

    def trigger(
        self,
        case_id: str,
        name: str,
        *,
        by: Actor,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
        **payload: Any,
    ) -> Case:
        """Fire the trigger ``name`` on a case as actor ``by`` with ``payload``.

        Raises:
            CaseNotFound: no such case, or ``by`` may not see it.
            ConcurrentModification: ``expected_version`` is stale, or another writer
                committed first.
            TransitionNotAllowed: ``name`` cannot fire from the case's state.
            PermissionDenied: ``by`` holds none of the roles that may fire it.
            ValidationError: the payload is malformed; the error names each field.
            GuardRejected: a guard refused, with its reason.
            IdempotencyConflict: the key was used for a different command.
        """
        digest = idempotency.fingerprint("trigger", case_id, name, by.id, payload)
        with self._store.transaction() as tx:
            first = idempotency.first_result(tx, idempotency_key, digest)
            if first is not None:
                return self._shown(first, by, tx.get_contact(first.id))
            case = self._visible(tx, case_id, by)
            if expected_version is not None and expected_version != case.version:
                raise ConcurrentModification(case_id, expected_version, case.version)
            new = self._writer.fire(tx, case, name, by=by, payload=payload, now=self._now())
            idempotency.remember(tx, idempotency_key, digest, new)
            contact = tx.get_contact(case_id)
            tx.commit()
        return self._shown(new, by, contact)

    # -- timers --------------------------------------------------------------------------

    def tick(
        self,
        now: datetime | None = None,
        *,
        batch: int = 100,
        should_stop: Callable[[], bool] | None = None,
    ) -> TickReport:
        """Apply every timer due at ``now`` (the clock's time by default), earliest first.

        Each timer is claimed with a lease and applied in its own transaction with the
        claim's completion, so its effect happens once even when several engines tick
        the same store, and a timer that came due while no engine ran fires on the next
        tick. A timer never fires before its ``due_at``.

        Args:
            now: The instant to apply timers at; the engine's clock by default.
            batch: How many timers to claim at once.
            should_stop: Asked before each claim; once it answers ``True`` the tick
                claims nothing more and returns after applying the timers it holds.
        """
        at = utc(now, "now") if now is not None else self._now()
        return self._timers.tick(at, batch=batch, should_stop=should_stop)

    def deliver(
        self,
        now: datetime | None = None,
        *,
        batch: int = 50,
        should_stop: Callable[[], bool] | None = None,
    ) -> DeliveryReport:
        """Send the notifications due at ``now``; see :mod:`closedloop.engine.delivery`.

        Args:
            now: The instant to deliver at; the engine's clock by default.
            batch: How many notifications to claim at once.
            should_stop: Asked before each claim; once it answers ``True`` delivery
                claims nothing more and returns after sending what it holds.
        """
        at = utc(now, "now") if now is not None else self._now()
        return self._deliverer.deliver(at, batch=batch, should_stop=should_stop)

    def dead_letters(self, *, limit: int = 100) -> list[OutboxMessage]:
        """Notifications that reached the attempt limit, oldest first."""
        return self._store.dead_letters(limit=limit)

    def requeue(self, message_id: str) -> None:
        """Put a dead letter back in the outbox with its attempts reset.

        Raises:
            MessageNotFound: no dead letter with that id.
        """
        self._store.requeue(message_id, now=self._now())

    def next_due_at(self) -> datetime | None:
        """When the earliest pending timer falls due (for schedulers to sleep until)."""
        return self._store.next_due_at()

    def now(self) -> datetime:
        """The engine's clock reading, in UTC: the time commands and ticks record."""
        return self._now()

    # -- queries -------------------------------------------------------------------------

    def allowed(self, case_id: str, actor: Actor) -> tuple[str, ...]:
        """The triggers ``actor`` may fire on the case now (roles and guards pass).

        Raises:
            CaseNotFound: no such case, or ``actor`` may not see it.
        """
        with self._store.transaction(read_only=True) as tx:
            case = self._visible(tx, case_id, actor)
        return self._writer.allowed(case, actor, self._now())

    def get(self, case_id: str, *, viewer: Actor) -> Case:
        """The case as ``viewer`` may see it, contact data masked unless entitled.

        Raises:
            CaseNotFound: no such case, or ``viewer`` may not see it.
        """
        with self._store.transaction(read_only=True) as tx:
            case = self._visible(tx, case_id, viewer)
            contact = tx.get_contact(case_id)
        return self._shown(case, viewer, contact)

    def find(
        self,
        viewer: Actor,
        *,
        order: str = "oldest",
        after: str | None = None,
        limit: int = 50,
        **criteria: Unpack[Criteria],
    ) -> CasePage:
        """The cases matching ``criteria`` that ``viewer`` may see, one keyset page at a time.

        Each case is shown as :meth:`get` shows it (contact data masked unless
        ``viewer`` is entitled to it). Criteria (every given one must hold): ``state``
        (one or several), ``waiting_on`` (an :class:`Actor`: cases whose current step
        that actor owns), ``lead_unit``, ``co_unit``, ``reporter`` (a reporter id),
        ``area`` and ``category`` (the code and everything under it), ``channel``,
        ``reported_from`` and ``reported_before``, ``warning_level``, ``overdue_at``,
        ``supervised``, ``text`` (in the description or the address).

        Args:
            order: ``"oldest"`` or ``"newest"`` report first, or ``"urgent"``: the
                running clock's warning level (red first), then its due instant.
            after: The ``next_cursor`` of the previous page (opaque).
            limit: The page size, 1 to 1000.

        Raises:
            ValidationError: a criterion, the order, the limit or the cursor is invalid.
            NaiveDatetime: an instant has no time zone.
            StoreError: the store answers no queries, or failed.
        """
        where = self._reader.criteria(viewer, **criteria)
        return self._reader.find(viewer, where, order=order, after=after, limit=limit)

    def count(self, viewer: Actor, **criteria: Unpack[Criteria]) -> int:
        """How many cases :meth:`find` would give ``viewer`` for ``criteria``."""
        return self._reader.count(self._reader.criteria(viewer, **criteria))

    def inbox(self, actor: Actor, *, after: str | None = None, limit: int = 50) -> CasePage:
        """The cases waiting on ``actor`` that they may see, most urgent first."""
        return self.find(actor, waiting_on=actor, order="urgent", after=after, limit=limit)

    def facets(
        self, viewer: Actor, *, by: str, **criteria: Unpack[Criteria]
    ) -> dict[str | None, int]:
        """How many of the cases :meth:`find` would give ``viewer`` have each value of
        ``by`` (``"state"``, ``"lead_unit"`` or ``"warning_level"``; ``None`` counts
        cases without one)."""
        return self._reader.facets(self._reader.criteria(viewer, **criteria), by)

    def history(self, case_id: str, *, viewer: Actor | None = None) -> list[AuditEvent]:
        """The audit events of the case, oldest first.

        Args:
            viewer: When given, the case must be visible to this actor.

        Raises:
            CaseNotFound: no such case, or ``viewer`` may not see it.
        """
        with self._store.transaction(read_only=True) as tx:
            if viewer is not None:
                self._visible(tx, case_id, viewer)
            elif tx.get_case(case_id) is None:
                raise CaseNotFound(case_id)
            return tx.get_events(case_id)

    def verify(self, case_id: str) -> audit.AuditReport:
        """Check the case's audit chain and that replaying it gives the stored case.

        Raises:
            CaseNotFound: no such case.
        """
        with self._store.transaction(read_only=True) as tx:
            case = tx.get_case(case_id)
            if case is None:
                raise CaseNotFound(case_id)
            events = tx.get_events(case_id)
        return audit.verify_chain(case_id, events, case)

    # -- internals -----------------------------------------------------------------------

    def _now(self) -> datetime:
        return utc(self._clock.now(), "clock.now()")

    def _visible(self, tx: CaseTransaction, case_id: str, actor: Actor) -> Case:
        case = tx.get_case(case_id) if isinstance(case_id, str) else None
        if case is None or not can_see(self._workflow, case, actor):
            raise CaseNotFound(str(case_id))
        return case

    def _shown(self, case: Case, viewer: Actor, contact: ReporterContact | None) -> Case:
        shown = contact_for(self._workflow, case, viewer, contact)
        return case.model_copy(update={"contact": shown})
