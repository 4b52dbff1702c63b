"""What every shipped CaseStore adapter checks alike before it touches its rows.

:class:`StoreTransaction` is the base of the in-memory and SQL transactions: its
public write methods check their arguments and the transaction's state, then call the
backend's hook (``_add_case``, ``_update_case`` ...), which only writes. So both
stores refuse the same calls with the same errors, and a new check is added once.
:func:`check_claim` does the same for the stores' claims.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from closedloop.engine.clock import utc
from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import IdempotencyRecord, OutboxMessage, TimerClaim
from closedloop.errors import ClosedLoopError, StoreError, ValidationError


def check_claim(now: datetime, lease: timedelta, limit: int) -> datetime:
    """Validate the arguments of a claim; returns ``now`` in UTC.

    Raises:
        NaiveDatetime: ``now`` has no time zone.
        ValidationError: ``lease`` is not positive or ``limit`` is below 1.
    """
    errors = [] if lease > timedelta(0) else [("lease", "must be positive")]
    if limit < 1:
        errors.append(("limit", "must be at least 1"))
    if errors:
        raise ValidationError(errors, subject="claim")
    return utc(now, "now")


def check_case(case: Case, event: AuditEvent) -> None:
    """Check the instants of a case and its event, which a store keeps as instants.

    Models validate their instants, but ``model_copy(update=...)`` does not.

    Raises:
        NaiveDatetime: one of them has no time zone.
    """
    instants = {"reported_at": case.reported_at, "updated_at": case.updated_at}
    if case.deadline is not None:
        instants.update(due_at=case.deadline.due_at, warn_at=case.deadline.warn_at)
    for name, value in instants.items():
        if type(value) is not datetime or value.tzinfo is not UTC:  # else in UTC already
            utc(value, f"case.{name}")
    utc(event.at, "event.at")


def _instant(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value, "next_timer_at")


def _check_claim_of(claim: TimerClaim, case_id: str) -> None:
    if claim.case_id != case_id:
        raise StoreError(f"a claim on case {claim.case_id!r} cannot write case {case_id!r}")


class StoreTransaction(ABC):
    """The checks every CaseTransaction makes before a write; a backend adds the writes.

    A subclass implements the reads and the ``_``-prefixed write hooks, ``_commit`` and
    ``_rollback``; the public methods here run the checks and then the hook. After
    :meth:`commit` or :meth:`rollback` the transaction has ended (``_finished``).

    Args:
        read_only: Refuse every write with ``StoreError``.
    """

    def __init__(self, *, read_only: bool = False) -> None:
        self._read_only = read_only
        self._finished = False
        self._spoiled = False  # a batched_writes block failed: commit refuses

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._finished:
            return
        if exc is None:
            self.rollback()
            return
        # Already failing: a second failure while rolling back must not hide the first.
        with suppress(ClosedLoopError):
            self.rollback()

    # -- reads (the backend's) -------------------------------------------------------

    @abstractmethod
    def get_case(self, case_id: str) -> Case | None:
        """The stored case (without contact data), or ``None``."""

    @abstractmethod
    def get_contact(self, case_id: str) -> ReporterContact | None:
        """The reporter's contact data for the case, or ``None``."""

    @abstractmethod
    def get_events(self, case_id: str) -> list[AuditEvent]:
        """The case's audit events, oldest first."""

    @abstractmethod
    def get_head(self, case_id: str) -> str | None:
        """The hash of the case's latest audit event, this transaction's own included."""

    @abstractmethod
    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The record stored under ``key``, or ``None``."""

    def get_cases(self, case_ids: Sequence[str]) -> Mapping[str, Case]:
        """The stored cases among ``case_ids``, by id (an id with no case left out);
        a backend may read them at once."""
        found = {case_id: self.get_case(case_id) for case_id in dict.fromkeys(case_ids)}
        return {case_id: case for case_id, case in found.items() if case is not None}

    @contextmanager
    def batched_writes(self) -> Iterator[None]:
        """A block whose writes a backend may hold back and send together (here each
        goes as it is made). When the block raises, the transaction cannot commit."""
        self._check_writable()
        try:
            yield
        except BaseException:
            self._spoiled = True
            raise

    # -- writes: checked here, written by the backend --------------------------------

    def add_case(
        self,
        case: Case,
        contact: ReporterContact | None,
        event: AuditEvent,
        *,
        next_timer_at: datetime | None = None,
    ) -> None:
        """Insert a new case with its contact data, first event and earliest timer instant.

        Raises:
            ConcurrentModification: a case with that id exists already.
            NaiveDatetime: an instant of the case or the event has no time zone.
            StoreError: the transaction is read-only or has ended.
        """
        self._check_writable()
        check_case(case, event)
        self._add_case(case, contact, event, _instant(next_timer_at))

    def update_case(
        self,
        case: Case,
        expected_version: int,
        event: AuditEvent,
        *,
        next_timer_at: datetime | None = None,
        claim: TimerClaim | None = None,
    ) -> None:
        """Write the new version if the stored one is ``expected_version``; append the
        event; with ``claim``, check and end the ticker's lease on the case.

        Raises:
            ConcurrentModification: the stored version differs (now or at commit).
            LeaseLost: ``claim`` no longer holds the case (now or at commit).
            NaiveDatetime: an instant of the case or the event has no time zone.
            StoreError: the transaction is read-only or has ended, or ``claim`` is of
                another case.
        """
        self._check_writable()
        check_case(case, event)
        if claim is not None:
            _check_claim_of(claim, case.id)
        self._update_case(case, expected_version, event, _instant(next_timer_at), claim)

    def release_claim(
        self, claim: TimerClaim, *, version: int, next_timer_at: datetime | None
    ) -> None:
        """End ``claim`` without changing the case; its earliest timer instant is set.

        Raises:
            LeaseLost: the case is no longer leased under the claim's token.
            ConcurrentModification: the case's version is no longer ``version``.
            NaiveDatetime: ``next_timer_at`` has no time zone.
            StoreError: the transaction is read-only or has ended.
        """
        self._check_writable()
        self._release_claim(claim, version, _instant(next_timer_at))

    def hold_claim(self, claim: TimerClaim, *, version: int) -> None:
        """Lease the case again under ``claim``, in this transaction.

        Raises:
            ConcurrentModification: the case's version is no longer ``version``.
            StoreError: the transaction is read-only or has ended.
        """
        self._check_writable()
        self._hold_claim(claim, version)

    def put_idempotency(self, record: IdempotencyRecord) -> None:
        """Remember the first result of a keyed command.

        Raises:
            ConcurrentModification: another command with this key committed first.
            StoreError: the transaction is read-only or has ended.
        """
        self._check_writable()
        self._put_idempotency(record)

    def add_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        """Stage notifications; they exist if and only if this transaction commits.

        Raises:
            ConcurrentModification: a message with one of these ids exists already.
            NaiveDatetime: an instant of a message has no time zone.
            StoreError: the transaction is read-only or has ended.
        """
        if not messages:
            return
        self._check_writable()
        for message in messages:
            utc(message.next_attempt_at, "next_attempt_at")
            utc(message.created_at, "created_at")
        self._add_outbox(messages)

    def outbox_of(self, case_id: str) -> list[OutboxMessage]:
        """Every outbox message of the case, whatever its status, oldest first."""
        return self._outbox_of(case_id)

    def erase_personal(
        self,
        case_id: str,
        *,
        events: Sequence[AuditEvent],
        outbox: Sequence[OutboxMessage],
        contact: bool,
    ) -> None:
        """Replace the stored ``events`` and ``outbox`` messages' contents, delete the
        case's idempotency records and (when ``contact``) its contact data; see
        :class:`~closedloop.engine.ports.PersonalErasure`.

        Raises:
            StoreError: the transaction is read-only or has ended, or an event does not
                belong to the case.
        """
        self._check_writable()
        if any(event.case_id != case_id for event in events):
            raise StoreError(f"an event to erase does not belong to case {case_id!r}")
        self._erase_personal(case_id, events, outbox, contact)

    @abstractmethod
    def _outbox_of(self, case_id: str) -> list[OutboxMessage]: ...

    @abstractmethod
    def _erase_personal(
        self,
        case_id: str,
        events: Sequence[AuditEvent],
        outbox: Sequence[OutboxMessage],
        contact: bool,
    ) -> None: ...

    def commit(self) -> None:
        """Make every write durable, atomically; the transaction ends either way.

        Raises:
            ConcurrentModification: an optimistic check failed; nothing was written.
            StoreError: the transaction has ended, a ``batched_writes`` block of it
                raised, or the backend failed; nothing was written.
        """
        if self._finished:
            raise StoreError("this transaction has already ended")
        if self._spoiled:
            self.rollback()
            raise StoreError(
                "a batch of writes in this transaction failed, so it cannot commit: "
                "it was rolled back and nothing was written"
            )
        try:
            self._commit()
        finally:
            self._finished = True

    def rollback(self) -> None:
        """Discard every write of this transaction; it ends."""
        try:
            self._rollback()
        finally:
            self._finished = True

    def _check_writable(self) -> None:
        if self._finished:
            raise StoreError("this transaction has already ended")
        if self._read_only:
            raise StoreError("this transaction was opened read-only; it cannot write")

    # -- the backend's writes --------------------------------------------------------

    @abstractmethod
    def _add_case(
        self,
        case: Case,
        contact: ReporterContact | None,
        event: AuditEvent,
        next_timer_at: datetime | None,
    ) -> None:
        """Write a new case, its contact data and first event (arguments checked)."""

    @abstractmethod
    def _update_case(
        self,
        case: Case,
        expected_version: int,
        event: AuditEvent,
        next_timer_at: datetime | None,
        claim: TimerClaim | None,
    ) -> None:
        """Write a new version and its event, checking ``expected_version`` (and the
        claim's token, ending its lease, when a claim is given)."""

    @abstractmethod
    def _release_claim(
        self, claim: TimerClaim, version: int, next_timer_at: datetime | None
    ) -> None:
        """Clear the claim's lease and set the case's earliest timer instant."""

    @abstractmethod
    def _hold_claim(self, claim: TimerClaim, version: int) -> None:
        """Lease the case again under ``claim``."""

    @abstractmethod
    def _put_idempotency(self, record: IdempotencyRecord) -> None:
        """Write an idempotency record."""

    @abstractmethod
    def _add_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        """Write messages (at least one)."""

    @abstractmethod
    def _commit(self) -> None:
        """Make the writes durable (the transaction has not ended yet)."""

    @abstractmethod
    def _rollback(self) -> None:
        """Discard the writes; may be called on an ended transaction."""
