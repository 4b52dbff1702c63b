"""The in-memory unit of work: writes are staged here and applied to the rows at commit."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from closedloop.adapters.memory.records import MemoryRecords
from closedloop.adapters.memory.staging import Staged
from closedloop.engine.clock import utc
from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import DuePoint, IdempotencyRecord, OutboxMessage
from closedloop.errors import (
    CaseNotFound,
    ConcurrentModification,
    LeaseLost,
    StoreError,
    ValidationError,
)


def _check_case(case: Case) -> None:
    # Models validate their instants, but model_copy(update=...) does not.
    instants = {"reported_at": case.reported_at, "updated_at": case.updated_at}
    if case.deadline is not None:
        instants.update(due_at=case.deadline.due_at, warn_at=case.deadline.warn_at)
    for name, value in instants.items():
        utc(value, f"case.{name}")


class InMemoryTransaction:
    """A unit of work over an :class:`InMemoryStore`; reads see its own writes."""

    def __init__(self, records: MemoryRecords, *, read_only: bool = False) -> None:
        self._records = records
        self._read_only = read_only
        self.staged = Staged()
        """The writes made so far; applied to ``records`` at :meth:`commit`."""
        self._done = False

    def __enter__(self) -> InMemoryTransaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.rollback()

    def get_case(self, case_id: str) -> Case | None:
        """The case as this transaction sees it."""
        if case_id in self.staged.cases:
            return self.staged.cases[case_id]
        return self._records.read_case(case_id)

    def get_contact(self, case_id: str) -> ReporterContact | None:
        """The reporter's contact data."""
        if case_id in self.staged.added:
            return self.staged.added[case_id][1]
        return self._records.read_contact(case_id)

    def get_events(self, case_id: str) -> list[AuditEvent]:
        """Stored events followed by this transaction's new ones."""
        stored = [] if case_id in self.staged.added else self._records.read_events(case_id)
        return stored + list(self.staged.events.get(case_id, ()))

    def get_head(self, case_id: str) -> str | None:
        """The hash of the latest event, this transaction's own included."""
        staged = self.staged.events.get(case_id)
        if staged:
            return staged[-1].hash
        return None if case_id in self.staged.added else self._records.read_head(case_id)

    def add_case(self, case: Case, contact: ReporterContact | None, event: AuditEvent) -> None:
        """Stage a new case with its first event."""
        _check_case(case)
        utc(event.at, "event.at")
        if case.id in self.staged.cases or self._records.read_case(case.id) is not None:
            raise ConcurrentModification(case.id, 0, None)
        self.staged.added[case.id] = (case, contact)
        self.staged.cases[case.id] = case
        self.staged.events[case.id] = [event]

    def update_case(self, case: Case, expected_version: int, event: AuditEvent) -> None:
        """Stage a new version; the version check happens now and again at commit."""
        _check_case(case)
        utc(event.at, "event.at")
        current = self.get_case(case.id)
        if current is None or current.version != expected_version:
            actual = None if current is None else current.version
            raise ConcurrentModification(case.id, expected_version, actual)
        if case.id not in self.staged.added:
            self.staged.expected.setdefault(case.id, expected_version)
        self.staged.cases[case.id] = case
        self.staged.events.setdefault(case.id, []).append(event)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The record under ``key``, staged or stored."""
        return self.staged.idempotency.get(key) or self._records.read_idempotency(key)

    def put_idempotency(self, record: IdempotencyRecord) -> None:
        """Stage a record; a key taken meanwhile fails the commit."""
        self.staged.idempotency[record.key] = record

    def get_due_points(self, case_id: str) -> list[DuePoint]:
        """The case's live due points as this transaction sees them, earliest first."""
        points = self._records.read_due(case_id, self.staged.due_plans.get(case_id))
        return [p for p in points if p.id not in self.staged.completed]

    def replace_due_points(self, case_id: str, points: Sequence[DuePoint]) -> None:
        """Stage ``points`` as the case's live due points.

        A point that already fired stays fired; a live one keeps its lease.

        Raises:
            CaseNotFound: there is no such case.
            ValidationError: a point belongs to another case.
            NaiveDatetime: a ``due_at`` has no time zone.
        """
        if points and self.get_case(case_id) is None:
            raise CaseNotFound(case_id)
        for point in points:
            utc(point.due_at, "due_at")
            if point.case_id != case_id:
                raise ValidationError([("case_id", f"point {point.id!r} belongs to another case")])
        self.staged.due_plans[case_id] = list(points)

    def complete_due(self, point: DuePoint) -> None:
        """Stage marking a claimed point done; its lease is checked now and at commit.

        Raises:
            LeaseLost: the point is not live with ``point.lease_token`` any more.
        """
        live = {p.id: p for p in self.get_due_points(point.case_id)}
        current = live.get(point.id)
        if current is None or current.lease_token != point.lease_token:
            raise LeaseLost(point.id)
        self.staged.completed[point.id] = point

    def add_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        """Stage notifications; they are stored only if this transaction commits."""
        for message in messages:
            utc(message.next_attempt_at, "next_attempt_at")
            utc(message.created_at, "created_at")
            self.staged.outbox[message.id] = message

    def commit(self) -> None:
        """Apply every staged write atomically, or none.

        Raises:
            StoreError: the transaction was opened read-only and has writes.
        """
        if self._read_only and self.staged.writes():
            raise StoreError("this transaction was opened read-only; it cannot write")
        try:
            self._records.apply(self.staged)
        finally:
            self._done = True

    def rollback(self) -> None:
        """Discard every staged write."""
        self.staged.clear()
        self._done = True
