"""The ports: what the engine needs from the outside world, as ``typing.Protocol``\\ s.

Adapters in :mod:`closedloop.adapters` implement these. Each method's docstring names
what it raises; adapters translate their driver's errors into these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta, tzinfo
from types import TracebackType
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from closedloop.engine.case_query import CaseFilter, CasePage, Facet, Order, Show
from closedloop.engine.durations import Duration
from closedloop.engine.kinds import TimerKind
from closedloop.engine.model import Actor, AuditEvent, Case, Instant, ReporterContact, Unit


class IdempotencyRecord(BaseModel):
    """The first result of a command sent with an idempotency key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    fingerprint: str
    case_id: str
    version: int


OutboxStatus = Literal["pending", "delivered", "dead", "disabled"]

UNDELIVERED: tuple[OutboxStatus, ...] = ("dead", "disabled")
"""The statuses of messages given up on: ``dead`` (the attempt limit was reached) and
``disabled`` (the endpoint said it is gone). They are listed as dead letters and may be
re-queued."""


class DuePoint(BaseModel):
    """A timer of a case: at ``due_at`` the engine applies one effect to the case.

    The engine derives a case's points from the case itself
    (:meth:`~closedloop.engine.deadlines.Timekeeper.due_points`), so a store keeps none
    of them: only the earliest ``due_at`` on the case's row (see :class:`TimerClaim`).
    Identified by ``id`` (``case_id/clock/.../kind/level/instant``); firing a point
    changes the case so that it is not derived again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    case_id: str
    clock: str
    kind: TimerKind
    level: int = 0
    due_at: Instant


class TimerClaim(BaseModel):
    """A ticker's lease on a case whose earliest timer is due (``CaseStore.claim_due``).

    While the lease runs (until ``expires_at``) no other ticker claims the case. The
    ticker's write of the case (``CaseTransaction.update_case`` with ``claim=``) or
    its release (``CaseTransaction.release_claim``) checks ``token`` and ends the lease.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_id: str
    next_timer_at: Instant
    """The case's earliest timer instant when it was claimed."""
    owner: str
    expires_at: Instant
    token: str


class MessageBody(BaseModel):
    """What a notification says: the rendered texts and the facts for machines.

    The engine writes it into an outbox message's ``payload`` as a JSON object with
    these keys (:meth:`to_payload`) and reads it back when delivering
    (:meth:`from_payload`); keys it does not know are ignored, missing ``format`` and
    ``data`` take their defaults.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    subject: str
    """One line of text (a header: never HTML)."""
    body: str
    """The text, in ``format``."""
    format: Literal["text", "html"] = "text"
    """``html`` when every value in the body was HTML-escaped."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Structured facts (case id, event, state, seq, the exact due instant)."""

    def to_payload(self) -> dict[str, Any]:
        """The JSON object an outbox message stores."""
        return self.model_dump(mode="json")

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> MessageBody:
        """The body an outbox message stores.

        Raises:
            pydantic.ValidationError: the payload lacks a text or holds a malformed one.
        """
        return cls.model_validate(payload)


class OutboxMessage(BaseModel):
    """A notification written in the same transaction as the change that caused it.

    The engine's own messages keep a :class:`MessageBody` in ``payload``; a store keeps
    the payload as the JSON object it is given.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """Stable across retries: receivers use it as the idempotency key."""
    case_id: str | None
    event: str
    channel: str
    recipient: str
    payload: dict[str, Any]
    status: OutboxStatus = "pending"
    attempts: int = 0
    next_attempt_at: Instant
    last_error: str | None = None
    created_at: Instant
    lease_owner: str | None = None
    lease_expires_at: Instant | None = None
    lease_token: str | None = None


class Notification(BaseModel):
    """One message to deliver, as a channel adapter receives it.

    ``id`` is stable across retries (receivers de-duplicate on it); ``attempt``
    counts from 1. ``recipient`` is a logical address: ``unit:<id>``, ``actor:<id>``,
    ``role:<name>`` or ``reporter``. For the reporter, ``contact`` carries the contact
    data, read at delivery time and never stored in the outbox.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    case_id: str | None
    event: str
    channel: str
    recipient: str
    subject: str
    body: str
    data: dict[str, Any]
    attempt: int
    contact: ReporterContact | None = None


class CaseTransaction(Protocol):
    """A unit of work over the case store.

    Used as a context manager: leaving the block without :meth:`commit` rolls back
    everything written in it. Reads see the transaction's own writes.
    """

    def __enter__(self) -> CaseTransaction: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def get_case(self, case_id: str) -> Case | None:
        """The stored case (without contact data), or ``None`` if there is none."""
        ...

    def get_contact(self, case_id: str) -> ReporterContact | None:
        """The reporter's contact data for the case, or ``None``."""
        ...

    def get_events(self, case_id: str) -> list[AuditEvent]:
        """The audit events of the case in stored order (oldest first)."""
        ...

    def get_head(self, case_id: str) -> str | None:
        """The hash of the case's latest audit event, this transaction's own included.

        ``None`` when the case has no events (or does not exist). Every command chains
        its event to this hash, so a store answers it without reading the whole trail.
        """
        ...

    def add_case(
        self,
        case: Case,
        contact: ReporterContact | None,
        event: AuditEvent,
        *,
        next_timer_at: datetime | None = None,
    ) -> None:
        """Insert a new case with its first event.

        Args:
            next_timer_at: The earliest ``due_at`` of the case's timers (``None``: it
                has none); what ``claim_due`` and ``next_due_at`` read.

        Raises:
            ConcurrentModification: a case with that id exists already.
        """
        ...

    def update_case(
        self,
        case: Case,
        expected_version: int,
        event: AuditEvent,
        *,
        next_timer_at: datetime | None = None,
        claim: TimerClaim | None = None,
    ) -> None:
        """Replace the case if its stored version is ``expected_version``; append the event.

        Args:
            next_timer_at: The earliest ``due_at`` of the new case's timers (``None``:
                it has none).
            claim: A ticker's claim on the case: the case must still be leased under
                its token, and the lease ends with this write. Without it the lease
                (if any) is left as it is.

        Raises:
            ConcurrentModification: the stored version differs (checked at commit at
                the latest).
            LeaseLost: ``claim`` is given and the case is no longer leased under its
                token (another ticker took it over); the transaction must roll back.
        """
        ...

    def release_claim(
        self, claim: TimerClaim, *, version: int, next_timer_at: datetime | None
    ) -> None:
        """End ``claim`` without changing the case: the lease is cleared and the case's
        earliest timer instant set to ``next_timer_at``, in this transaction.

        Args:
            version: The version of the case the instant was derived from.

        Raises:
            LeaseLost: the case is no longer leased under the claim's token.
            ConcurrentModification: the case's version is no longer ``version``.
        """
        ...

    def hold_claim(self, claim: TimerClaim, *, version: int) -> None:
        """Lease the case again under ``claim`` (after a write with ``claim=`` ended
        its lease in this transaction): a timer left for a later tick stays with its
        ticker until the lease expires.

        Raises:
            ConcurrentModification: the case's version is no longer ``version``.
        """
        ...

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The record stored under ``key``, or ``None``."""
        ...

    def put_idempotency(self, record: IdempotencyRecord) -> None:
        """Remember the first result of a keyed command.

        Raises:
            ConcurrentModification: another command with this key committed first.
        """
        ...

    def add_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        """Stage notifications; they exist if and only if this transaction commits."""
        ...

    def commit(self) -> None:
        """Make every write of this transaction durable, atomically.

        Raises:
            ConcurrentModification: an optimistic version check failed; nothing was
                written.
            StoreError: the backend failed; nothing was written.
        """
        ...

    def rollback(self) -> None:
        """Discard every write of this transaction."""
        ...


@runtime_checkable
class PersonalErasure(Protocol):
    """A :class:`CaseTransaction` that can erase a case's personal data (both shipped
    stores' can); what ``Engine.purge`` and ``Engine.erase_subject`` need.
    """

    def outbox_of(self, case_id: str) -> list[OutboxMessage]:
        """Every outbox message of the case, whatever its status (sent, pending, dead)."""
        ...

    def erase_personal(
        self,
        case_id: str,
        *,
        events: Sequence[AuditEvent],
        outbox: Sequence[OutboxMessage],
        contact: bool,
    ) -> None:
        """Erase what is held about the case's reporter beside the case row.

        Each of ``events`` (already stored: matched by case and sequence number) replaces
        the stored event's payload, reason, changes and seals; its hash does not change.
        Each of ``outbox`` replaces the payload and last error of the stored message with
        its id. The case's contact data is deleted when ``contact`` is true, and its
        idempotency records always (their keys and fingerprints are the host's words).

        Raises:
            StoreError: the transaction is read-only or has ended, or the backend failed.
        """
        ...


@runtime_checkable
class ErasureFinish(Protocol):
    """A store that keeps erased text somewhere beyond its rows (a search index's
    segments) and can drop it; ``Engine.purge`` and ``Engine.erase_subject`` call it
    once after their erasures (optional)."""

    def finish_erasures(self) -> None:
        """Drop what the backend still holds of erased values.

        Raises:
            StoreError: the backend failed.
        """
        ...


@runtime_checkable
class RecentCases(Protocol):
    """A :class:`CaseTransaction` that can hand out a case as this process last read or
    committed it, without reading the database (optional; the SQL store's can).

    ``Engine.trigger`` reads the case it fires on with :meth:`recent_case`. Such a
    case is not checked when it is read: the guarded UPDATE that writes it is the
    check (its ``WHERE version = :expected`` matches no row when another writer
    changed the case since), and a case read so and not written is checked at commit.
    Because the case may be out of date, the engine takes any refusal of a command
    that read one (the trigger not allowed from its state, a stale version, a guard)
    as possibly due to that, and runs the command once more with :meth:`get_case`:
    a command is never refused on the strength of a case from memory. A ``StoreError``
    is not run again (the commit may have happened as the connection failed).
    """

    def recent_case(self, case_id: str) -> tuple[Case | None, bool]:
        """The case (as :meth:`CaseTransaction.get_case` gives it), and whether it came
        from memory rather than from the database: true whenever it may be out of date,
        since the engine runs a refused command again only then. A case this
        transaction wrote is handed out as written.

        Raises:
            StoreError: the transaction has ended, or the backend failed.
        """
        ...


@runtime_checkable
class Savepoints(Protocol):
    """A :class:`CaseTransaction` that can roll part of its work back (optional).

    ``Engine.tick`` applies a batch of due timers in one transaction when the store's
    transactions offer this (without savepoints while nothing fails; a batch in which
    something failed is applied again with each case's timers inside a savepoint of
    their own); otherwise it applies each case's timers in a transaction of their own.
    """

    def savepoint(self) -> AbstractContextManager[None]:
        """A block whose writes are undone, and only they, if it raises.

        The transaction stays open after such a rollback, with every write made before
        the block; leaving the block normally keeps its writes in the transaction.

        Raises:
            StoreError: the transaction is read-only or has ended.
        """
        ...


@runtime_checkable
class CaseBatches(Protocol):
    """A :class:`CaseTransaction` that reads and writes many cases at a time (optional).

    ``Engine.tick`` reads a claimed batch's cases with one :meth:`get_cases` and applies
    their timers inside one :meth:`batched_writes` block; without these it reads each
    case with ``get_case`` and each write goes out as it is made.
    """

    def get_cases(self, case_ids: Sequence[str]) -> Mapping[str, Case]:
        """The stored cases among ``case_ids`` (without contact data), by id, each as
        ``get_case`` would answer it; an id with no case is left out.

        Raises:
            StoreError: the transaction has ended, or the backend failed.
        """
        ...

    def batched_writes(self) -> AbstractContextManager[None]:
        """A block whose writes the store may hold back and send together, at the
        latest when the block ends; reads in the block still see them.

        An optimistic check of a held-back write fails when they are sent: by the end
        of the block, a read, or :meth:`CaseTransaction.commit`
        (``ConcurrentModification``, ``LeaseLost``). Once the block has raised, for
        that or any other reason, the transaction cannot commit: part of the batch may
        be sent, the rest is dropped, and ``commit`` rolls it all back and raises
        ``StoreError``.

        Raises:
            StoreError: the transaction is read-only or has ended.
        """
        ...


@runtime_checkable
class ClaimsWithin(Protocol):
    """A :class:`CaseTransaction` that can claim due cases as one of its writes (optional).

    ``Engine.tick`` claims the next batch inside the transaction that applied the last
    one, after its writes, when the store's transactions offer this: the batch's
    commit makes the next batch's leases durable too, one commit fewer per batch. The
    other claims go through :meth:`CaseStore.claim_due`: a tick's first, and the one
    after a batch applied case by case (a batch of one case, one holding a case whose
    timer failed before, one that failed, or whose cases were all swept enough times).
    """

    def claim_due(
        self,
        now: datetime,
        *,
        owner: str,
        lease: timedelta,
        limit: int,
        workflow: str | None = None,
    ) -> list[TimerClaim]:
        """Lease up to ``limit`` cases whose earliest timer is due, as
        :meth:`CaseStore.claim_due` does, this transaction's own writes seen; the leases
        are seen by others from this transaction's commit (they run out at ``now`` plus
        ``lease``, as always) and are gone if it rolls back.

        Raises:
            StoreError: the transaction is read-only or has ended, or the backend failed.
        """
        ...


class CaseStore(Protocol):
    """Durable home of cases, their audit events, contact data and idempotency keys."""

    def transaction(self, *, read_only: bool = False) -> CaseTransaction:
        """Open a unit of work; see :class:`CaseTransaction`.

        Args:
            read_only: The unit of work only reads. Its reads agree with each other (one
                snapshot, or the store's equivalent), it takes no write lock, and a write
                in it raises ``StoreError``.
        """
        ...

    def close(self) -> None:
        """Release what the store holds (connections); it is not used afterwards."""
        ...

    def case_ids(self) -> Sequence[str]:
        """Every stored case id, oldest first (for tools and tests, not hot paths)."""
        ...

    def claim_due(
        self,
        now: datetime,
        *,
        owner: str,
        lease: timedelta,
        limit: int,
        workflow: str | None = None,
    ) -> list[TimerClaim]:
        """Lease up to ``limit`` cases whose earliest timer is due (``next_timer_at <=
        now``) and that no live lease holds, earliest first; only cases of ``workflow``
        (the name a case records) when it is given.

        A store may hold the cases of several workflows: each engine claims those of
        its own. A case whose lease has expired is claimable again. Each claim gets a
        new token; the claims are committed before this returns. Uses an index on the
        cases' ``next_timer_at``: the cost follows the number due, not the number open.
        """
        ...

    def next_due_at(self, workflow: str | None = None) -> datetime | None:
        """The earliest ``next_timer_at`` of any case (of ``workflow``, when given), or
        ``None``."""
        ...

    def claim_outbox(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` pending messages due for an attempt; count the attempt now."""
        ...

    def finish_outbox(
        self,
        message: OutboxMessage,
        *,
        status: OutboxStatus,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Record an attempt's outcome; ``False`` (and no change) if the lease was lost."""
        ...

    def dead_letters(self, *, limit: int = 100) -> list[OutboxMessage]:
        """Messages given up on (status ``dead`` or ``disabled``: :data:`UNDELIVERED`),
        oldest first."""
        ...

    def requeue(self, message_id: str, *, now: datetime) -> None:
        """Put a dead or disabled message back as pending with its attempts reset.

        Raises:
            LookupError-derived ClosedLoopError: no such dead or disabled message.
        """
        ...


@runtime_checkable
class CaseQueries(Protocol):
    """The case queries a host application's screens ask, over indexed case columns.

    Not part of :class:`CaseStore`: a store may answer them (both shipped stores do).
    Criteria combine (every given one must hold); ``None`` means any. The values and
    checks shared by every implementation are in :mod:`closedloop.engine.case_query`.
    """

    def find_cases(
        self,
        *,
        state: str | Sequence[str] | None = None,
        lead_unit: str | None = None,
        category: str | None = None,
        area: str | None = None,
        warning_level: str | None = None,
        overdue_at: datetime | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> CasePage:
        """Cases matching every given criterion, oldest first, one keyset page at a time.

        Args:
            state: A state, or several (any of them).
            lead_unit: The unit that leads the case.
            category: The case's category code.
            area: The area or grid code of the case's location.
            warning_level: ``"yellow"`` or ``"red"``.
            overdue_at: Only cases whose running clock is overdue at this instant (see
                :func:`~closedloop.engine.case_query.is_overdue`).
            after: The ``next_cursor`` of the previous page.
            limit: The page size, 1 to :data:`~closedloop.engine.case_query.MAX_PAGE`.

        Raises:
            ValidationError: ``limit`` is out of range or ``after`` is not a cursor this
                store returned.
            NaiveDatetime: ``overdue_at`` has no time zone.
            StoreError: the backend failed.
        """
        ...

    def count_cases(
        self,
        *,
        state: str | Sequence[str] | None = None,
        lead_unit: str | None = None,
        category: str | None = None,
        area: str | None = None,
        warning_level: str | None = None,
        overdue_at: datetime | None = None,
    ) -> int:
        """How many cases match every given criterion (see :meth:`find_cases`).

        Raises:
            NaiveDatetime: ``overdue_at`` has no time zone.
            StoreError: the backend failed.
        """
        ...

    def select_cases(
        self,
        where: CaseFilter,
        *,
        order: Order = "oldest",
        after: str | None = None,
        limit: int = 50,
    ) -> CasePage:
        """Cases ``where`` selects, in ``order``, one keyset page at a time.

        What :meth:`closedloop.Engine.find` asks. The cursor is opaque: it holds the
        sort key of the page's last case, so cases added meanwhile do not shift pages.

        Raises:
            ValidationError: ``limit`` is out of range, or ``after`` is not a cursor this
                store returned for ``order``.
            StoreError: the backend failed.
        """
        ...

    def count_selected(self, where: CaseFilter) -> int:
        """How many cases ``where`` selects.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def facet_counts(self, where: CaseFilter, by: Facet) -> dict[str | None, int]:
        """How many cases ``where`` selects, per value of ``by`` (``None``: no value).

        Raises:
            StoreError: the backend failed.
        """
        ...

    def contacts_of(self, case_ids: Sequence[str]) -> dict[str, ReporterContact]:
        """The stored contact data of these cases, in one read (cases without any are
        left out). The engine masks it before anyone sees it.

        Raises:
            StoreError: the backend failed.
        """
        ...


@runtime_checkable
class ShownCases(Protocol):
    """A store that reads a page of cases together with their contact data (the SQL
    store does, in one statement); ``Engine.find`` and ``Engine.inbox`` use it when the
    store has it, and :meth:`CaseQueries.select_cases` then
    :meth:`CaseQueries.contacts_of` otherwise.
    """

    def select_shown(
        self,
        where: CaseFilter,
        *,
        order: Order = "oldest",
        after: str | None = None,
        limit: int = 50,
        show: Show | None = None,
    ) -> tuple[CasePage, dict[str, ReporterContact]]:
        """The page :meth:`CaseQueries.select_cases` returns, and the stored contact
        data of its cases (cases without any left out). The engine masks it before
        anyone sees it. Each case of the page is the caller's own: a copy nobody else
        holds (the engine sets its contact data in place).

        With ``show``, each case goes through it with its contact data (as a copy of
        the caller's own, or as a case the store keeps when it keeps one: then
        ``show`` makes the copy, once); the page holds what it returns, in order, and
        the contact data returned is empty. A store may leave ``show`` out of its
        signature: the engine then shows the page's cases itself.

        Raises:
            ValidationError: ``limit`` is out of range, or ``after`` is not a cursor this
                store returned for ``order``.
            StoreError: the backend failed.
        """
        ...


class EventRecord(Protocol):
    """One audit event as a streamed read hands it on: the fields a fold over trails reads.

    :class:`~closedloop.engine.model.AuditEvent` has them; so may a database row, read
    without building the model (no hashes, no actor). ``at`` is timezone-aware;
    ``payload`` and ``changes`` are decoded JSON data.
    """

    @property
    def case_id(self) -> str:
        """The case the event belongs to."""
        ...

    @property
    def at(self) -> datetime:
        """When the event happened (timezone-aware)."""
        ...

    @property
    def trigger(self) -> str:
        """The trigger fired (``report`` for the first event)."""
        ...

    @property
    def to_state(self) -> str:
        """The state the case was in after the event."""
        ...

    @property
    def payload(self) -> Mapping[str, object]:
        """The command's checked payload."""
        ...

    @property
    def changes(self) -> Mapping[str, object]:
        """The case body fields the event changed, as JSON data."""
        ...


@runtime_checkable
class EventStream(Protocol):
    """A store that reads every case's audit trail in one streamed pass.

    Optional, beside :class:`CaseStore`: readers of whole trails (the metrics, exports)
    use it when a store offers it (``isinstance(store, EventStream)``) and otherwise read
    case by case through :class:`CaseTransaction`. The SQL store offers it.
    """

    def stream_events(self) -> Iterator[Sequence[EventRecord]]:
        """Each stored case's audit events, oldest first, one case at a time.

        Every case comes once, with all its events; the order of the cases is the
        store's. The read is one consistent snapshot: writes committed while the
        iteration runs are not seen, and it does not hold writers up. Memory holds a
        bounded part of the trail at a time, not all of it.

        Raises:
            StoreError: the backend failed.
        """
        ...


EventKey = tuple[datetime, str, int]
"""Where an event stands in time order: its ``at``, its case id and its ``seq``."""


@runtime_checkable
class EventsByTime(Protocol):
    """A store that reads the audit events recorded in a window of time, in time order.

    Optional, beside :class:`CaseStore`: ``Engine.changes`` (and the Open311 updates
    feed) reads a window's events through it when a store offers it
    (``isinstance(store, EventsByTime)``), instead of the whole trail of every case
    changed since the window began. Both shipped stores offer it.
    """

    def events_between(
        self,
        start: datetime,
        before: datetime,
        *,
        after: EventKey | None = None,
        limit: int,
        workflow: str | None = None,
    ) -> list[AuditEvent]:
        """Up to ``limit`` events whose ``at`` is at or after ``start`` and before
        ``before``, in order of (``at``, case id, ``seq``), from the first one past
        ``after`` (the key of the last event a previous call gave); with ``workflow``,
        only the events of the cases that record that workflow's name (an engine reads
        its own; one store may hold several workflows).

        Raises:
            StoreError: the backend failed.
        """
        ...


class CaseHead(BaseModel):
    """A case's audit head: its latest event's sequence number and hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_id: str
    seq: int = Field(ge=1)
    hash: str


class Checkpoint(BaseModel):
    """Signed heads of the cases that changed since the previous checkpoint.

    ``signature`` is an HMAC-SHA256 under the host's key over the checkpoint's other
    fields (:mod:`closedloop.engine.checkpoints`); ``previous`` is the previous
    checkpoint's signature, so the checkpoints form a chain of their own. A host
    publishes them elsewhere (``Engine.export_checkpoints``): a trail later cut back to
    before a signed head, or rewritten, no longer matches them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(ge=1)
    made_at: Instant
    previous: str
    heads: tuple[CaseHead, ...]
    signature: str


@runtime_checkable
class CheckpointStore(Protocol):
    """A store that keeps signed checkpoints of audit heads beside the cases.

    Optional, beside :class:`CaseStore`: ``Engine.checkpoint`` needs it and says so in a
    ``StoreError`` when a store lacks it; ``Engine.verify`` compares a trail with its
    checkpoint when the store has one. Both shipped stores are checkpoint stores.
    """

    def unanchored_heads(self, *, limit: int) -> list[CaseHead]:
        """Up to ``limit`` current heads no checkpoint has signed, oldest case first:
        cases never checkpointed, and cases with events since their last checkpoint.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def last_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest number, or ``None`` before the first."""
        ...

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint`` and make its heads its cases' anchors, atomically.

        Raises:
            CheckpointTaken: a checkpoint with that number exists already (another
                engine checkpointed first); nothing was written.
            StoreError: the backend failed.
        """
        ...

    def checkpoints(self, *, after: int = 0, limit: int = 100) -> list[Checkpoint]:
        """Up to ``limit`` checkpoints numbered above ``after``, in number order."""
        ...

    def anchor(self, case_id: str) -> int | None:
        """The number of the latest checkpoint that signed a head of the case, or ``None``."""
        ...

    def signed_anchors(self, case_ids: Sequence[str]) -> dict[str, int]:
        """For each of ``case_ids`` that a checkpoint signed a head of, the number of the
        latest such checkpoint, found in the checkpoints' own (signed) heads and never
        in the anchors :meth:`anchor` reads: a deleted or edited anchor cannot hide a
        signed head. Cases no checkpoint signed are left out.

        Raises:
            StoreError: the backend failed.
        """
        ...


@runtime_checkable
class IndexedColumns(Protocol):
    """A store that keeps queryable columns beside each case (state, lead unit, ...).

    Optional: ``Engine.verify`` compares them with the case when a store offers them,
    so a column edited on its own (a ``lead_unit`` changed, taking the case out of a
    unit's inbox) is reported. The SQL store offers them.
    """

    def indexed_columns(self, case_id: str) -> Mapping[str, object] | None:
        """The case's columns as stored, by the names of
        :func:`~closedloop.engine.integrity.indexed_values`; ``None`` for no case."""
        ...


@runtime_checkable
class Clock(Protocol):
    """Where the engine gets the time; always timezone-aware."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class WorkCalendar(Protocol):
    """Counts time the way a deadline is counted: natural, working days or hours.

    All instants in and out are timezone-aware.
    """

    @property
    def name(self) -> str:
        """A name to record on cases and in audit events."""
        ...

    @property
    def timezone(self) -> tzinfo:
        """The zone this calendar's due times are shown to people in (notification
        texts); a calendar of local working time counts in it too."""
        ...

    def add(self, start: datetime, duration: Duration) -> datetime:
        """The due instant of ``duration`` counted from ``start``.

        Raises:
            CalendarNotCovered: the count reaches a day with no calendar data.
        """
        ...

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """How much counted time lies between ``start`` and ``end``.

        Raises:
            CalendarNotCovered: the interval reaches a day with no calendar data.
        """
        ...

    def advance(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant ``t`` with ``working_time(start, t) == amount``.

        Raises:
            CalendarNotCovered: the count reaches a day with no calendar data.
        """
        ...

    def fallback_days(self, start: datetime, end: datetime) -> tuple[date, ...]:
        """The days in ``[start, end)`` answered by the calendar's fallback policy, not data.

        The engine records them on the case, so a guess is never silent.
        """
        ...


class Notifier(Protocol):
    """A channel that delivers notifications (webhook, email, SMS gateway, ...).

    ``send`` returns when the message was accepted by the channel. It raises
    ``DeliveryFailed`` for a failure worth retrying and ``EndpointGone`` when the
    endpoint says it will never accept messages again; any other exception is
    treated as a retryable failure.
    """

    def send(self, notification: Notification) -> None:
        """Deliver one notification.

        Raises:
            DeliveryFailed: not delivered this time; the outbox retries later.
            EndpointGone: the endpoint is gone for good; the message is not retried.
        """
        ...


class Directory(Protocol):
    """Who belongs to which unit, which units exist and which areas they serve."""

    def unit(self, unit_id: str) -> Unit:
        """The unit with that id.

        Raises:
            UnknownName: no such unit.
        """
        ...

    def units(self) -> Sequence[Unit]:
        """Every unit."""
        ...

    def has_area(self, code: str) -> bool:
        """Whether the area or grid code is known."""
        ...

    def areas(self) -> Sequence[str]:
        """Every known area and grid code."""
        ...

    def members(self, unit_id: str) -> frozenset[str]:
        """The actor ids of the unit's members (empty for an unknown unit)."""
        ...

    def actor(self, actor_id: str) -> Actor | None:
        """The actor with its roles and units, or ``None`` if unknown."""
        ...
