"""The in-memory unit of work: writes are staged here and applied to the rows at commit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from pydantic_core import PydanticSerializationError

from closedloop.adapters.memory.kept import kept_case, kept_event
from closedloop.adapters.memory.records import MemoryRecords
from closedloop.adapters.memory.staging import Erasure, Staged
from closedloop.adapters.store_base import StoreTransaction
from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import IdempotencyRecord, OutboxMessage, TimerClaim
from closedloop.errors import ConcurrentModification, LeaseLost, StoreError


class InMemoryTransaction(StoreTransaction):
    """A unit of work over an :class:`InMemoryStore`'s rows; reads see its own writes.

    The checks every store makes are :class:`~closedloop.adapters.store_base.StoreTransaction`'s;
    this class stages the writes in :attr:`staged` and applies them at commit.
    """

    def __init__(self, records: MemoryRecords, *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self._records = records
        self.staged = Staged()
        """The writes made so far; applied to the rows at :meth:`commit`."""

    # -- reads -----------------------------------------------------------------------

    def get_case(self, case_id: str) -> Case | None:
        """The case as this transaction sees it."""
        if case_id in self.staged.cases:
            return self.staged.cases[case_id]
        return self._records.read_case(case_id)

    def get_contact(self, case_id: str) -> ReporterContact | None:
        """The reporter's contact data."""
        erasure = self.staged.erasures.get(case_id)
        if erasure is not None and erasure.contact:
            return None
        if case_id in self.staged.added:
            return self.staged.added[case_id][1]
        return self._records.read_contact(case_id)

    def get_events(self, case_id: str) -> list[AuditEvent]:
        """Stored events (as this transaction erased them) followed by its new ones."""
        stored = [] if case_id in self.staged.added else self._records.read_events(case_id)
        erasure = self.staged.erasures.get(case_id)
        if erasure is not None:
            rewritten = {event.seq: event for event in erasure.events}
            stored = [rewritten.get(event.seq, event) for event in stored]
        return stored + list(self.staged.events.get(case_id, ()))

    def get_head(self, case_id: str) -> str | None:
        """The hash of the latest event, this transaction's own included."""
        staged = self.staged.events.get(case_id)
        if staged:
            return staged[-1].hash
        return None if case_id in self.staged.added else self._records.read_head(case_id)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The record under ``key``, staged or stored."""
        return self.staged.idempotency.get(key) or self._records.read_idempotency(key)

    # -- writes (checked by the base) ------------------------------------------------

    def _add_case(
        self,
        case: Case,
        contact: ReporterContact | None,
        event: AuditEvent,
        next_timer_at: datetime | None,
    ) -> None:
        if case.id in self.staged.cases or self._records.read_case(case.id) is not None:
            raise ConcurrentModification(case.id, 0, None)
        case, event = _kept(case, None, event)
        self.staged.added[case.id] = (case, contact)
        self.staged.cases[case.id] = case
        self.staged.events[case.id] = [event]
        self.staged.timers[case.id] = next_timer_at

    def _update_case(
        self,
        case: Case,
        expected_version: int,
        event: AuditEvent,
        next_timer_at: datetime | None,
        claim: TimerClaim | None,
    ) -> None:
        # The version (and the claim's token) is checked now and again at commit.
        stored = self._check_version(case.id, expected_version)
        case, event = _kept(case, stored, event)
        if claim is not None:
            self._end_lease(claim)
        self.staged.cases[case.id] = case
        self.staged.events.setdefault(case.id, []).append(event)
        self.staged.timers[case.id] = next_timer_at

    def _release_claim(
        self, claim: TimerClaim, version: int, next_timer_at: datetime | None
    ) -> None:
        self._check_version(claim.case_id, version)
        self._end_lease(claim)
        self.staged.timers[claim.case_id] = next_timer_at

    def _hold_claim(self, claim: TimerClaim, version: int) -> None:
        self._check_version(claim.case_id, version)
        self.staged.leases[claim.case_id] = claim

    def _check_version(self, case_id: str, expected: int) -> Case:
        """The case as this transaction sees it, checked to be at version ``expected``."""
        current = self.get_case(case_id)
        if current is None or current.version != expected:
            actual = None if current is None else current.version
            raise ConcurrentModification(case_id, expected, actual)
        if case_id not in self.staged.added:
            self.staged.expected.setdefault(case_id, expected)
        return current

    def _end_lease(self, claim: TimerClaim) -> None:
        """Check that ``claim`` holds its case (as this transaction sees it); release it."""
        case_id = claim.case_id
        held = (
            self.staged.leases[case_id]
            if case_id in self.staged.leases
            else self._records.read_lease(case_id)
        )
        if held is None or held.token != claim.token:
            raise LeaseLost(case_id)
        if case_id not in self.staged.leases:
            self.staged.tokens[case_id] = claim.token  # checked again at commit
        self.staged.leases[case_id] = None

    def _put_idempotency(self, record: IdempotencyRecord) -> None:
        # A key taken meanwhile fails the commit.
        self.staged.idempotency[record.key] = record

    def _add_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        for message in messages:
            self.staged.outbox[message.id] = message

    def _outbox_of(self, case_id: str) -> list[OutboxMessage]:
        staged = [m for m in self.staged.outbox.values() if m.case_id == case_id]
        return self._records.read_outbox_of(case_id) + staged

    def _erase_personal(
        self,
        case_id: str,
        events: Sequence[AuditEvent],
        outbox: Sequence[OutboxMessage],
        contact: bool,
    ) -> None:
        for message in outbox:
            if message.id in self.staged.outbox:
                self.staged.outbox[message.id] = message
        earlier = self.staged.erasures.get(case_id)
        if earlier is not None:
            kept = {e.seq: e for e in earlier.events} | {e.seq: e for e in events}
            events = sorted(kept.values(), key=lambda e: e.seq)
            outbox = [*earlier.outbox, *outbox]
            contact = contact or earlier.contact
        self.staged.erasures[case_id] = Erasure(tuple(events), tuple(outbox), contact)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A block whose staged writes are dropped, and only they, if it raises."""
        self._check_writable()
        before = self.staged.copy()
        try:
            yield
        except BaseException:
            self.staged = before
            raise

    def _commit(self) -> None:
        self._records.apply(self.staged)

    def _rollback(self) -> None:
        self.staged.clear()


def _kept(case: Case, stored: Case | None, event: AuditEvent) -> tuple[Case, AuditEvent]:
    """The copies of ``case`` and its event that the commit stores, taken when they are
    staged (see :mod:`~closedloop.adapters.memory.kept`; ``stored``: the case of that id
    as the transaction sees it): what the writer changes in its objects afterwards is
    not stored, as a SQL store encodes a case and its event when they are written.

    Raises:
        StoreError: a value is not JSON data.
    """
    try:
        return kept_case(case, stored), kept_event(event)
    except PydanticSerializationError as exc:
        raise StoreError(f"cannot store a value that is not JSON data: {exc}") from None
