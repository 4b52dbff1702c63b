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
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Unpack, cast

from closedloop.engine import arguments, audit, checkpoints, idempotency, inputs, integrity
from closedloop.engine.access import can_see, events_shown, shown_as
from closedloop.engine.calendars import NaturalCalendar
from closedloop.engine.case_query import CasePage
from closedloop.engine.clock import SystemClock, utc
from closedloop.engine.context import Services
from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.definition import Workflow
from closedloop.engine.delivery import Deliverer, DeliveryReport, RetryPolicy, checked_channels
from closedloop.engine.duties.responsibility_list import ResponsibilityList
from closedloop.engine.model import (
    Actor,
    AuditEvent,
    Case,
    Location,
    MediaRef,
    ReporterContact,
    replaced,
    unshared,
    unshared_event,
)
from closedloop.engine.ports import (
    CaseHead,
    CaseStore,
    CaseTransaction,
    Checkpoint,
    CheckpointStore,
    Clock,
    Directory,
    DuePoint,
    EventsByTime,
    Notifier,
    OutboxMessage,
    RecentCases,
    WorkCalendar,
)
from closedloop.engine.reading import Criteria, Reader, checked_criteria, sight_of
from closedloop.engine.recomputing import Recount
from closedloop.engine.retention import PurgeReport, Retention
from closedloop.engine.ticking import StuckTimer, TickReport, TimerSweep
from closedloop.engine.writer import CaseWriter
from closedloop.errors import (
    CaseNotFound,
    CheckpointRefused,
    CheckpointTaken,
    ClosedLoopError,
    ConcurrentModification,
    DamagedRecord,
    StoreError,
    ValidationError,
)


def _new_id() -> str:
    return uuid.uuid4().hex


CHANGES_PAGE = 1000
"""How many audit events :meth:`Engine.changes` reads from a store at a time."""


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
        worker_id: Names this engine on the leases it takes (1 to 1000 printable
            characters); random by default.
        lease: How long a claimed timer or message is held before another engine may
            take it over.
        seed: Seeds the jitter of retries (for reproducible tests and simulations).
        checkpoint_key: The host's secret (at least 32 random bytes) that signs
            checkpoints of the audit heads (:meth:`checkpoint`); kept out of the store.

    Raises:
        UnknownName: a clock of the workflow names a calendar not given here, or
            ``notifier`` maps a channel no notification rule of the workflow uses.
        NotifierUnusable: ``notifier`` (or one it maps) has no ``send`` method, or its
            ``send`` is ``async def``.
        ValidationError: ``worker_id`` is not text of 1 to 1000 printable characters.
        UnknownCode: an SLA row of a clock names a category the list's catalogue does
            not list (with the closest codes it does).
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
        checkpoint_key: bytes | None = None,
    ) -> None:
        self._workflow = workflow
        self._store = store
        self._checkpoint_key = (
            None if checkpoint_key is None else checkpoints.checked_key(checkpoint_key)
        )
        self._clock: Clock = clock or SystemClock()
        default = calendar or NaturalCalendar()
        known = {**(calendars or {}), default.name: default}
        timekeeper = Timekeeper(workflow, known, default.name)
        if directory is None and responsibilities is not None:
            directory = responsibilities.directory
        services = Services(responsibilities, directory, default, workflow.route_at)
        self._writer = CaseWriter(workflow, timekeeper, services)
        self._recent_kinds: dict[type, bool] = {}  # transaction type: offers RecentCases
        self._writer.check_codes(
            {
                f"clocks[{i}] ({clock.name}).sla[{j}].category": row.category
                for i, clock in enumerate(workflow.clocks)
                for j, row in enumerate(clock.sla)
            },
            f"workflow {workflow.name!r} for the list's category catalogue",
        )
        self._timekeeper = timekeeper
        self._reader = Reader(workflow, store)
        self._retention = Retention(workflow, store, self._writer)
        self._new_id = id_factory
        self._worker = (
            f"engine-{uuid.uuid4().hex[:12]}"
            if worker_id is None
            else arguments.identifier(worker_id, "worker_id")
        )
        self._lease = lease
        channels = checked_channels(notifier, {rule.channel for rule in workflow.notifications})
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

    @property
    def signs_checkpoints(self) -> bool:
        """Whether the engine has a ``checkpoint_key`` to sign checkpoints with."""
        return self._checkpoint_key is not None

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
        media: Sequence[MediaRef | Mapping[str, Any]] | None = None,
        idempotency_key: str | None = None,
    ) -> Case:
        """Open a case for a report; the reporter is the only one who can confirm it.

        ``media`` are references to photos or files the host keeps (see
        :class:`~closedloop.engine.model.MediaRef`); they go into the report's hashed
        event, never their bytes.

        Raises:
            ValidationError: a field is missing or malformed; the error names it.
            IdempotencyConflict: the key was used for a different report.
        """
        report, checked_contact = inputs.report(
            self._new_id(), reporter, description, location, category, channel, contact, media
        )
        shown = (
            {"media": [ref.model_dump(exclude_none=True) for ref in report.media]}
            if report.media
            else {}
        )
        digest = idempotency.keyed(
            idempotency_key,
            "report",
            reporter.id,
            description,
            location,
            category,
            channel,
            contact,
            *shown.values(),
        )
        try:
            with self._store.transaction() as tx:
                first = idempotency.first_result(tx, idempotency_key, digest)
                if first is not None:
                    return self._shown_read(first, reporter, tx.get_contact(first.id))
                case = self._writer.open(tx, report, checked_contact, self._now())
                idempotency.remember(tx, idempotency_key, digest, case)
                tx.commit()
        except ClosedLoopError as refusal:
            first, contact = idempotency.settled(self._store, idempotency_key, digest, refusal)
            return self._shown_read(first, reporter, contact)
        return self._shown(case, reporter, checked_contact)

    def trigger(
        self,
        case_id: str,
        name: str,
        /,
        *,
        by: Actor,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
        **payload: Any,
    ) -> Case:
        """Fire the trigger ``name`` on a case as actor ``by`` with ``payload``.

        ``case_id`` and ``name`` are positional, so a payload may hold keys of those
        names (refused as fields the trigger lacks, as any other). A host that passes a
        request's body as the payload checks its keys with :meth:`check_payload_keys`
        first, so that a key ``by``, ``expected_version`` or ``idempotency_key`` is
        refused as such rather than taken for an argument.

        Raises:
            CaseNotFound: no such case, or ``by`` may not see it.
            ConcurrentModification: ``expected_version`` is stale, or another writer
                committed first.
            TransitionNotAllowed: ``name`` cannot fire from the case's state.
            PermissionDenied: ``by`` holds none of the roles that may fire it.
            ValidationError: ``name`` is not a trigger of the workflow (the error lists
                those it declares), or the payload is malformed; the error names each
                field.
            GuardRejected: a guard refused, with its reason.
            IdempotencyConflict: the key was used for a different command.
        """
        case_id = arguments.identifier(case_id, "case_id")
        name = arguments.trigger(name, self._workflow).name
        by = arguments.actor(by, "by")
        expected_version = arguments.version(expected_version, "expected_version")
        digest = idempotency.keyed(idempotency_key, "trigger", case_id, name, by.id, payload)
        recent = True  # the case may come from memory (RecentCases), checked as written
        while True:
            from_memory = False
            try:
                with self._store.transaction() as tx:
                    first = idempotency.first_result(tx, idempotency_key, digest)
                    if first is not None:
                        return self._shown_read(first, by, tx.get_contact(first.id))
                    case, from_memory = self._visible_recent(tx, case_id, by, recent)
                    if expected_version is not None and expected_version != case.version:
                        raise ConcurrentModification(case_id, expected_version, case.version)
                    new = self._writer.fire(tx, case, name, by=by, payload=payload, now=self._now())
                    idempotency.remember(tx, idempotency_key, digest, new)
                    contact = tx.get_contact(case_id)
                    tx.commit()
            except ClosedLoopError as refusal:
                # Refused on a case from memory, which may be out of date: read it and
                # run again. Not on a store's failure, after which the commit may have
                # happened (a connection lost as it committed): that is the caller's.
                if from_memory and not isinstance(refusal, StoreError):
                    recent = False
                    continue
                # A sender with the same key may have committed between our reads.
                first, contact = idempotency.settled(self._store, idempotency_key, digest, refusal)
                return self._shown_read(first, by, contact)
            return self._shown(new, by, contact)

    def check_payload_keys(self, name: str, payload: Mapping[str, object]) -> None:
        """Refuse the keys of ``payload`` that are not fields of the trigger ``name``, as
        :meth:`trigger` would, before any store is read.

        For a host passing a request's body on: ``engine.trigger(case_id, name, by=actor,
        **body)`` would take a key ``by``, ``expected_version`` or ``idempotency_key``
        for its own argument (or fail with Python's ``TypeError``); checked first, such
        a key is refused with the trigger's fields listed. Values are checked by
        :meth:`trigger`, which knows the case they are for.

        Raises:
            ValidationError: ``name`` is not a trigger of the workflow (the error lists
                those it declares), ``payload`` is not a mapping, or a key is not a
                field of the trigger (each one named, with the trigger's fields).
        """
        transition = arguments.trigger(name, self._workflow)
        if not isinstance(payload, Mapping) or not all(isinstance(k, str) for k in payload):
            raise ValidationError(
                [("<payload>", "must be a mapping of field names to values")],
                subject=f"payload of {transition.name!r}",
            )
        unknown = inputs.unknown_fields(transition, payload)
        if unknown:
            raise ValidationError(unknown, subject=f"payload of {transition.name!r}")

    # -- timers --------------------------------------------------------------------------

    def tick(
        self,
        now: datetime | None = None,
        *,
        batch: int = 100,
        should_stop: Callable[[], bool] | None = None,
    ) -> TickReport:
        """Apply every timer due at ``now`` (the clock's time by default), earliest first.

        The cases whose earliest timer has come are claimed a batch at a time, each with
        a lease, and a batch is applied in one transaction: all together while nothing
        in it fails, otherwise again with each case in a savepoint of its own when the
        store offers them, so one that fails rolls back alone and is reported. A
        timer's effect happens once even when several engines tick the same store, a
        timer that came due while no engine ran fires on the next tick, and a timer
        never fires before its ``due_at``.

        Args:
            now: The instant to apply timers at; the engine's clock by default.
            batch: How many cases to claim at once.
            should_stop: Asked before each claim, never inside a transaction (when a
                batch's transaction claims the next batch, before that batch is
                applied); once it answers ``True`` the tick claims nothing more and
                returns after applying the timers it holds.
        """
        at = utc(now, "now") if now is not None else self._now()
        batch = arguments.count(batch, "batch")
        should_stop = arguments.callback(should_stop, "should_stop")
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
        batch = arguments.count(batch, "batch")
        should_stop = arguments.callback(should_stop, "should_stop")
        return self._deliverer.deliver(at, batch=batch, should_stop=should_stop)

    def dead_letters(self, *, limit: int = 100) -> list[OutboxMessage]:
        """Notifications given up on, oldest first: ``status`` ``"dead"`` (they reached
        the attempt limit) or ``"disabled"`` (their endpoint answered that it is gone),
        each with its ``attempts`` and ``last_error``."""
        return self._store.dead_letters(limit=arguments.count(limit, "limit"))

    def stuck_timers(self) -> list[StuckTimer]:
        """Timers this engine failed to apply at their last try, by due time: each with
        its typed reason (:class:`~closedloop.engine.ticking.TimerFailure`), the error's
        words and how many ticks have tried it. A later tick tries them again; one that
        then applies, or is found stale, leaves the list."""
        return self._timers.stuck()

    def requeue(self, message_id: str) -> None:
        """Put a dead letter (dead or disabled) back in the outbox, due now, with its
        attempts reset.

        Raises:
            MessageNotFound: no dead or disabled message with that id.
        """
        message_id = arguments.identifier(message_id, "message_id")
        self._store.requeue(message_id, now=self._now())

    def recompute_deadlines(
        self, *, since: date, calendar: WorkCalendar | str | None = None
    ) -> tuple[str, ...]:
        """Count open clocks again once a calendar's data is supplied or corrected.

        Every open case whose clock was counted over local days from ``since`` on (and
        every provisional one) is counted again, each in its own transaction; a clock
        that moves gets a ``deadline_recomputed`` event (by ``system``, with the old and
        new timers) and new timers. Warnings fired and rungs climbed stay: nothing is
        taken back and nothing fires twice. See :mod:`closedloop.engine.recomputing`.

        Args:
            since: The first corrected local day (the first day of an added year).
            calendar: The corrected calendar, which replaces the engine's calendar of
                its name from now on; or a calendar's name; ``None`` for every calendar
                as the engine has them.

        Returns:
            The ids of the cases whose clocks moved.

        Raises:
            ValidationError: ``since`` is not a date.
            UnknownName: the engine has no calendar of that name.
            StoreError: the store answers no case queries, or the backend failed.
        """
        if not isinstance(since, date) or isinstance(since, datetime):
            shown = type(since).__name__
            raise ValidationError([("since", f"must be a date, got {shown}")], subject="argument")
        name = calendar if isinstance(calendar, str) or calendar is None else calendar.name
        before = self._timekeeper.copy()
        if calendar is not None and not isinstance(calendar, str):
            self._timekeeper.use(calendar)
        elif name is not None:
            self._timekeeper.calendar(name)
        recount = Recount(self._store, self._workflow, self._timekeeper, self._writer, before)
        return recount.run(since, name, self._now())

    def purge(self, *, now: datetime | None = None, dry_run: bool = False) -> PurgeReport:
        """Erase the personal data the workflow's ``retention`` rules make due at ``now``
        (the engine's clock by default): contact data deleted, sealed personal fields of
        audit events and the case's own copy replaced by ``[purged]``, outbox messages
        and idempotency records of the case cleaned; each case gets a ``purged`` event
        naming the kinds of data and the rule. ``dry_run`` only reports what is due.

        Raises:
            ErasureRefused: the store cannot erase personal data.
            StoreError: the backend failed.
        """
        return self._retention.purge(self._now() if now is None else now, dry_run=dry_run)

    def subject_report(self, reporter_id: str) -> dict[str, Any]:
        """Everything held about a reporter, as JSON data: each of their cases (contact
        data unmasked), their own inputs and the notifications addressed to them."""
        return self._retention.subject_report(reporter_id)

    def erase_subject(self, reporter_id: str, *, by: Actor, force: bool = False) -> PurgeReport:
        """Erase every kind of personal data held about a reporter, ahead of the policy;
        ``by`` is recorded on each case's ``purged`` event.

        Raises:
            ErasureRefused: a case of theirs is still open and ``force`` is not given.
            PermissionDenied: ``force`` is given but ``by`` holds no role the workflow's
                ``privacy.force_erase`` names.
        """
        return self._retention.erase_subject(reporter_id, by=by, force=force, now=self._now())

    def next_due_at(self) -> datetime | None:
        """When the earliest pending timer of this engine's workflow falls due (for
        schedulers to sleep until)."""
        return self._store.next_due_at(self._workflow.name)

    def due_points(self, case: Case) -> list[DuePoint]:
        """The timers ``case`` has, earliest first (none while its clock is paused or
        once it is final): what ``tick`` applies as they come due. They are derived
        from the case; the store keeps only the earliest instant."""
        return self._timekeeper.due_points(case)

    def now(self) -> datetime:
        """The engine's clock reading, in UTC: the time commands and ticks record."""
        return self._now()

    # -- queries -------------------------------------------------------------------------

    def allowed(self, case_id: str, actor: Actor) -> tuple[str, ...]:
        """The triggers ``actor`` may fire on the case now (roles and guards pass).

        Guards run with an empty payload. A trigger whose guard refuses after looking
        for one of the trigger's own ``fields`` is offered all the same: the guard
        decides once the fields are filled in (``dispatch`` before the unit is named).

        Raises:
            CaseNotFound: no such case, or ``actor`` may not see it.
        """
        case_id = arguments.identifier(case_id, "case_id")
        actor = arguments.actor(actor, "actor")
        with self._store.transaction(read_only=True) as tx:
            case = self._visible(tx, case_id, actor)
        return self._writer.allowed(case, actor, self._now())

    def get(self, case_id: str, *, viewer: Actor) -> Case:
        """The case as ``viewer`` may see it, contact data masked unless entitled.

        Raises:
            CaseNotFound: no such case, or ``viewer`` may not see it.
        """
        case_id = arguments.identifier(case_id, "case_id")
        viewer = arguments.actor(viewer, "viewer")
        with self._store.transaction(read_only=True) as tx:
            case = self._visible(tx, case_id, viewer)
            with arguments.reading(f"contact data of case {case_id!r}", case_id):
                contact = tx.get_contact(case_id)
        return self._shown_read(case, viewer, contact)

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
        ``reported_from`` and ``reported_before``, ``updated_from`` and
        ``updated_before`` (the case's latest change), ``warning_level``, ``overdue_at``,
        ``supervised``, ``merged_into`` (the master's id), ``text`` (in the
        description or the address).

        Args:
            order: ``"oldest"`` or ``"newest"`` report first, ``"urgent"``: the
                running clock's warning level (red first), then its due instant, or
                ``"updated"``: least recently changed first (a case changed while its
                pages are read moves to the end and may come again).
            after: The ``next_cursor`` of the previous page (opaque).
            limit: The page size, 1 to 1000.

        Raises:
            ValidationError: a criterion, the order, the limit or the cursor is invalid:
                a name that is no criterion, a state the workflow does not declare, a
                warning level that does not exist (each named, with what is allowed).
            NaiveDatetime: an instant has no time zone.
            StoreError: the store answers no queries, or failed.
        """
        where = self._reader.criteria(viewer, **checked_criteria(self._workflow, criteria))
        return self._reader.find(viewer, where, order=order, after=after, limit=limit)

    def count(self, viewer: Actor, **criteria: Unpack[Criteria]) -> int:
        """How many cases :meth:`find` would give ``viewer`` for ``criteria``."""
        checked = checked_criteria(self._workflow, criteria)
        return self._reader.count(self._reader.criteria(viewer, **checked))

    def inbox(self, actor: Actor, *, after: str | None = None, limit: int = 50) -> CasePage:
        """The cases waiting on ``actor`` that they may see, most urgent first."""
        return self.find(actor, waiting_on=actor, order="urgent", after=after, limit=limit)

    def facets(
        self, viewer: Actor, *, by: str, **criteria: Unpack[Criteria]
    ) -> dict[str | None, int]:
        """How many of the cases :meth:`find` would give ``viewer`` have each value of
        ``by`` (``"state"``, ``"lead_unit"`` or ``"warning_level"``; ``None`` counts
        cases without one)."""
        checked = checked_criteria(self._workflow, criteria)
        return self._reader.facets(self._reader.criteria(viewer, **checked), by)

    def history(self, case_id: str, *, viewer: Actor | None = None) -> list[AuditEvent]:
        """The audit events of the case, oldest first: copies of their own, which the
        caller may change without changing the trail.

        Args:
            viewer: When given, the case must be visible to this actor, and the events
                are shown as :meth:`get` shows the case: to a citizen following a case
                their report was merged into, every other reporter's id reads
                ``[hidden]`` (docs/privacy.md).

        Raises:
            CaseNotFound: no such case, or ``viewer`` may not see it.
            DamagedRecord: a stored row of the case does not read back; it is named.
        """
        case_id = arguments.identifier(case_id, "case_id")
        viewer = arguments.optional_actor(viewer, "viewer")
        with self._store.transaction(read_only=True) as tx:
            case = self._stored(tx, case_id) if viewer is None else None
            if viewer is not None:
                case = self._visible(tx, case_id, viewer)
            elif case is None:
                raise CaseNotFound(case_id)
            with arguments.reading(f"audit trail of case {case_id!r}", case_id):
                events = tx.get_events(case_id)
        # Copies of their own: a store may hand out the events it keeps (the in-memory
        # store does), and the caller may change what it gets.
        copies = [unshared_event(event) for event in events]
        if viewer is None or case is None:
            return copies
        return events_shown(self._workflow, case, viewer, copies)

    def changes(self, viewer: Actor, *, start: datetime, before: datetime) -> Iterator[AuditEvent]:
        """The audit events recorded at or after ``start`` and before ``before``, of the
        cases of the engine's workflow that ``viewer`` may see, in time order (each
        event's instant, then its case id and seq). Each event is a copy of its own,
        shown as :meth:`history` shows it to ``viewer`` (another reporter's id hidden
        from a citizen).

        A store with the optional :class:`~closedloop.engine.ports.EventsByTime` port
        reads the window's events alone, :data:`CHANGES_PAGE` at a time (each page in a
        read of its own), and a case only to decide whether ``viewer`` sees it (once per
        case, never for a viewer who sees every case). Any other store reads the cases
        changed since ``start`` through its case queries, and the trail of each.

        Raises:
            ValidationError: ``viewer`` is not an :class:`Actor`.
            NaiveDatetime: ``start`` or ``before`` has no time zone.
            DamagedRecord: a stored row does not read back; it is named.
        """
        viewer = arguments.actor(viewer, "viewer")
        start, before = utc(start, "start"), utc(before, "before")
        if not isinstance(self._store, EventsByTime):
            return self._changes_by_case(viewer, start, before)
        return self._changes_by_time(self._store, viewer, start, before)

    def _changes_by_time(
        self, store: EventsByTime, viewer: Actor, start: datetime, before: datetime
    ) -> Iterator[AuditEvent]:
        # Each case read once: whether the viewer sees it, and how its events are shown
        # to them (another reporter's id hidden from a citizen, as ``history`` shows it).
        seen: dict[str, Case | None] = {}
        every = sight_of(self._workflow, viewer) is None
        after = None
        while True:
            with arguments.reading("audit events", None):
                page = store.events_between(
                    start, before, after=after, limit=CHANGES_PAGE, workflow=self._workflow.name
                )
            for event in page:
                # A copy of its own: a store may hand out the events it keeps.
                copy = unshared_event(event)
                if every:
                    yield copy
                    continue
                if event.case_id not in seen:
                    seen[event.case_id] = self._seen_case(event.case_id, viewer)
                case = seen[event.case_id]
                if case is not None:
                    yield events_shown(self._workflow, case, viewer, [copy])[0]
            if len(page) < CHANGES_PAGE:
                return
            last = page[-1]
            after = (last.at, last.case_id, last.seq)

    def _seen_case(self, case_id: str, viewer: Actor) -> Case | None:
        """The stored case when ``viewer`` may see it, else ``None``."""
        with self._store.transaction(read_only=True) as tx:
            case = self._stored(tx, case_id)
        return case if case is not None and can_see(self._workflow, case, viewer) else None

    def _changes_by_case(
        self, viewer: Actor, start: datetime, before: datetime
    ) -> Iterator[AuditEvent]:
        found: list[AuditEvent] = []
        after = None
        while True:
            page = self.find(
                viewer, order="updated", after=after, limit=CHANGES_PAGE,
                updated_from=start, reported_before=before,
            )  # fmt: skip
            for case in page.cases:
                trail = self.history(case.id, viewer=viewer)
                found += (event for event in trail if start <= event.at < before)
            after = page.next_cursor
            if after is None:
                break
        # A case changed while the pages were read comes again: its events once each.
        unique = {(event.case_id, event.seq): event for event in found}
        yield from sorted(unique.values(), key=lambda e: (e.at, e.case_id, e.seq))

    def verify(self, case_id: str) -> audit.AuditReport:
        """Check the case's audit chain, that replaying it gives the stored case, that
        the store's queryable columns agree with it, and that the trail still holds the
        head its latest checkpoint signed.

        A stored row that does not read back is reported as a problem naming it, not
        raised.

        Raises:
            CaseNotFound: no such case.
        """
        case_id = arguments.identifier(case_id, "case_id")
        # The anchor is read first: events read afterwards are at least as new as it.
        anchored = integrity.anchor_of(self._store, case_id)
        unreadable: list[str] = []
        with self._store.transaction(read_only=True) as tx:
            try:
                case = self._stored(tx, case_id)
            except DamagedRecord as damaged:
                case, unreadable = None, [str(damaged)]
            else:
                if case is None:
                    raise CaseNotFound(case_id)
            try:
                with arguments.reading(f"audit trail of case {case_id!r}", case_id):
                    events = tx.get_events(case_id)
            except DamagedRecord as damaged:
                return audit.AuditReport(case_id, False, 0, (*unreadable, str(damaged)))
        report = audit.verify_chain(case_id, events, case)
        problems = list(report.problems)
        if unreadable:
            problems = [*unreadable, *problems[:-1]]  # not "no stored case" again
        if anchored is not None:
            number, checkpoint, row = anchored
            key = self._checkpoint_key
            problems += checkpoints.anchor_problems(events, checkpoint, number, key)
            problems += checkpoints.anchor_row_problems(number, row)
        if case is not None:
            problems += integrity.column_problems(self._store, case)
        return audit.AuditReport(case_id, not problems, report.events, tuple(problems))

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint(self, *, limit: int = 10_000) -> Checkpoint | None:
        """Sign the current audit head of every case changed since the last checkpoint.

        The checkpoint (at most ``limit`` cases; call again while it is full) is signed
        with the engine's ``checkpoint_key``, chained to the previous checkpoint and
        stored; from then on :meth:`verify` reports a trail of those cases cut back
        before the signed head, or rewritten up to it. Publish checkpoints elsewhere
        (:meth:`export_checkpoints`) so that deleting them from the database is seen.

        Returns:
            The new checkpoint, or ``None`` when no case changed.

        Raises:
            ValidationError: the engine has no ``checkpoint_key``, or ``limit`` is not
                a whole number of at least 1.
            StoreError: the store keeps no checkpoints, or failed.
        """
        limit = arguments.count(limit, "limit")
        key = self._checkpoint_key
        if key is None:
            raise ValidationError(
                [("checkpoint_key", "is needed to sign checkpoints: Engine(checkpoint_key=...)")],
                subject="engine",
            )
        store = self._checkpoint_store()
        taken: CheckpointTaken | None = None
        for _ in range(5):  # another engine may checkpoint at the same moment
            heads = store.unanchored_heads(limit=limit)
            if not heads:
                return None
            self._refuse_lost_heads(store, heads, key)
            last = store.last_checkpoint()
            made = checkpoints.signed(
                key,
                number=1 if last is None else last.number + 1,
                made_at=self._now(),
                previous=checkpoints.previous_of(last),
                heads=heads,
            )
            try:
                store.add_checkpoint(made)
            except CheckpointTaken as error:
                taken = error
                continue
            return made
        assert taken is not None
        raise taken

    def export_checkpoints(self, *, after: int = 0, limit: int = 100) -> list[Checkpoint]:
        """The stored checkpoints numbered above ``after``, oldest first, to publish.

        Each is JSON-ready with ``checkpoint.model_dump(mode="json")``; a host sends them
        somewhere the database's writers cannot change (another system, a transparency
        log, a timestamping service) and hands them back to
        :meth:`verify_checkpoints`.

        Raises:
            ValidationError: ``after`` is negative or ``limit`` below 1.
            StoreError: the store keeps no checkpoints, or failed.
        """
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < 2**31:
            raise ValidationError([("after", "must be a checkpoint number, or 0 for all")])
        limit = arguments.count(limit, "limit")
        return self._checkpoint_store().checkpoints(after=after, limit=limit)

    def verify_checkpoints(self, published: Sequence[Checkpoint]) -> tuple[str, ...]:
        """How the store's checkpoints differ from ``published`` copies; empty when not.

        Every published checkpoint must still be stored, unchanged, chained to the one
        before it and (with the engine's key) signed by that key.

        Raises:
            StoreError: the store keeps no checkpoints, or failed.
        """
        wanted = list(published)
        if not all(isinstance(c, Checkpoint) for c in wanted):
            raise ValidationError([("published", "must be a sequence of Checkpoint")])
        store = self._checkpoint_store()
        low = min((c.number for c in wanted), default=1)
        stored: list[Checkpoint] = []
        while True:
            page = store.checkpoints(after=(stored[-1].number if stored else low - 1), limit=1000)
            stored += page
            if len(page) < 1000:
                break
        return tuple(checkpoints.chain_problems(wanted, stored, self._checkpoint_key))

    # -- internals -----------------------------------------------------------------------

    def _now(self) -> datetime:
        return utc(self._clock.now(), "clock.now()")

    def _refuse_lost_heads(
        self, store: CheckpointStore, heads: Sequence[CaseHead], key: bytes
    ) -> None:
        """Raise :class:`CheckpointRefused` when a trail about to be signed no longer
        holds the head an earlier checkpoint signed (found in the checkpoints' own heads,
        not in the anchor rows), or that checkpoint was changed or is missing."""
        signed = store.signed_anchors([head.case_id for head in heads])
        loaded: dict[int, Checkpoint | None] = {}
        for number in sorted(set(signed.values())):
            found = store.checkpoints(after=number - 1, limit=1)
            loaded[number] = found[0] if found and found[0].number == number else None
        problems: list[str] = []
        with self._store.transaction(read_only=True) as tx:
            for case_id, number in signed.items():
                with arguments.reading(f"audit trail of case {case_id!r}", case_id):
                    events = tx.get_events(case_id)
                lost = checkpoints.anchor_problems(events, loaded[number], number, key)
                problems += (f"case {case_id!r}: {problem}" for problem in lost)
        if problems:
            raise CheckpointRefused(problems)

    def _checkpoint_store(self) -> CheckpointStore:
        if not isinstance(self._store, CheckpointStore):
            raise StoreError(
                f"{type(self._store).__name__} keeps no checkpoints: it does not implement "
                "the CheckpointStore port (closedloop.engine.ports)"
            )
        return self._store

    def _stored(self, tx: CaseTransaction, case_id: str) -> Case | None:
        """The stored case when it is one of this engine's workflow, else ``None``: a
        store may hold the cases of several workflows, and each engine handles (shows,
        changes, verifies) only its own; another's is not found, as a case the actor
        may not see is not, and nothing is written."""
        with arguments.reading(f"case {case_id!r}", case_id):
            case = tx.get_case(case_id)
        return case if case is None or case.workflow == self._workflow.name else None

    def _visible_recent(
        self, tx: CaseTransaction, case_id: str, actor: Actor, recent: bool
    ) -> tuple[Case, bool]:
        """:meth:`_visible`, read from memory when ``recent`` and the transaction can
        (:class:`~closedloop.engine.ports.RecentCases`); and whether it was."""
        kind = type(tx)
        offers = self._recent_kinds.get(kind)
        if offers is None:
            offers = self._recent_kinds[kind] = isinstance(tx, RecentCases)
        if not (recent and offers):
            return self._visible(tx, case_id, actor), False
        with arguments.reading(f"case {case_id!r}", case_id):
            case, from_memory = cast(RecentCases, tx).recent_case(case_id)
        if case is None or case.workflow != self._workflow.name:
            case = None
        if case is None or not can_see(self._workflow, case, actor):
            if from_memory:  # refused on the strength of memory: read it
                return self._visible(tx, case_id, actor), False
            raise CaseNotFound(str(case_id))
        return case, from_memory

    def _visible(self, tx: CaseTransaction, case_id: str, actor: Actor) -> Case:
        case = self._stored(tx, case_id)
        if case is None or not can_see(self._workflow, case, actor):
            raise CaseNotFound(str(case_id))
        return case

    def _shown(self, case: Case, viewer: Actor, contact: ReporterContact | None) -> Case:
        return replaced(case, shown_as(self._workflow, case, viewer, contact))

    def _shown_read(self, case: Case, viewer: Actor, contact: ReporterContact | None) -> Case:
        """:meth:`_shown` for a case read, not written: a copy of its own, since a store
        may hand out the case it keeps (the in-memory store does) and the caller may
        change what it gets. (A case a command wrote is the caller's already.)"""
        return unshared(case, shown_as(self._workflow, case, viewer, contact))
