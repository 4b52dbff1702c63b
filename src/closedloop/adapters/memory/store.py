"""``InMemoryStore``: the reference CaseStore, for tests and for trying things out.

It keeps rows as JSON text, as a database would, so nothing a caller holds can
change what is stored, and every value makes the same round trip it makes in SQL.
Commits are atomic and checked optimistically under one lock, so threads see the
same outcomes as with a real database: success or ``ConcurrentModification``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import TracebackType

from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import IdempotencyRecord
from closedloop.errors import ConcurrentModification


@dataclass
class _Rows:
    cases: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, str] = field(default_factory=dict)
    events: dict[str, list[str]] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)


class InMemoryStore:
    """A CaseStore held in this process's memory; gone when the process ends."""

    def __init__(self) -> None:
        self._rows = _Rows()
        self._lock = threading.Lock()

    def transaction(self) -> InMemoryTransaction:
        """Open a unit of work; it rolls back unless committed."""
        return InMemoryTransaction(self)

    def case_ids(self) -> list[str]:
        """Every case id, in the order the cases were added."""
        with self._lock:
            return list(self._rows.cases)

    # Used by InMemoryTransaction only.
    def _apply(self, tx: InMemoryTransaction) -> None:
        with self._lock:
            rows = self._rows
            for case, _ in tx.added.values():
                if case.id in rows.cases:
                    raise ConcurrentModification(case.id, 0, _version(rows.cases[case.id]))
            for case_id, expected in tx.expected.items():
                current = rows.cases.get(case_id)
                if current is None or _version(current) != expected:
                    actual = None if current is None else _version(current)
                    raise ConcurrentModification(case_id, expected, actual)
            for key in tx.idempotency:
                if key in rows.idempotency:
                    record = IdempotencyRecord.model_validate_json(rows.idempotency[key])
                    raise ConcurrentModification(record.case_id, 0, None)
            for case, contact in tx.added.values():
                if contact is not None:
                    rows.contacts[case.id] = contact.model_dump_json()
                rows.events[case.id] = []
            for case_id, case in tx.cases.items():
                rows.cases[case_id] = case.model_dump_json(exclude={"contact"})
            for case_id, events in tx.events.items():
                rows.events[case_id].extend(e.model_dump_json() for e in events)
            for key, record in tx.idempotency.items():
                rows.idempotency[key] = record.model_dump_json()

    def _read_case(self, case_id: str) -> Case | None:
        with self._lock:
            row = self._rows.cases.get(case_id)
        return None if row is None else Case.model_validate_json(row)

    def _read_contact(self, case_id: str) -> ReporterContact | None:
        with self._lock:
            row = self._rows.contacts.get(case_id)
        return None if row is None else ReporterContact.model_validate_json(row)

    def _read_events(self, case_id: str) -> list[AuditEvent]:
        with self._lock:
            rows = list(self._rows.events.get(case_id, ()))
        return [AuditEvent.model_validate_json(row) for row in rows]

    def _read_idempotency(self, key: str) -> IdempotencyRecord | None:
        with self._lock:
            row = self._rows.idempotency.get(key)
        return None if row is None else IdempotencyRecord.model_validate_json(row)


def _version(row: str) -> int:
    return Case.model_validate_json(row).version


class InMemoryTransaction:
    """A unit of work over an :class:`InMemoryStore`; reads see its own writes."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.added: dict[str, tuple[Case, ReporterContact | None]] = {}
        self.cases: dict[str, Case] = {}
        self.expected: dict[str, int] = {}
        self.events: dict[str, list[AuditEvent]] = {}
        self.idempotency: dict[str, IdempotencyRecord] = {}
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
        if case_id in self.cases:
            return self.cases[case_id]
        return self._store._read_case(case_id)

    def get_contact(self, case_id: str) -> ReporterContact | None:
        """The reporter's contact data."""
        if case_id in self.added:
            return self.added[case_id][1]
        return self._store._read_contact(case_id)

    def get_events(self, case_id: str) -> list[AuditEvent]:
        """Stored events followed by this transaction's new ones."""
        stored = [] if case_id in self.added else self._store._read_events(case_id)
        return stored + list(self.events.get(case_id, ()))

    def add_case(self, case: Case, contact: ReporterContact | None, event: AuditEvent) -> None:
        """Stage a new case with its first event."""
        if case.id in self.cases or self._store._read_case(case.id) is not None:
            raise ConcurrentModification(case.id, 0, None)
        self.added[case.id] = (case, contact)
        self.cases[case.id] = case
        self.events[case.id] = [event]

    def update_case(self, case: Case, expected_version: int, event: AuditEvent) -> None:
        """Stage a new version; the version check happens now and again at commit."""
        current = self.get_case(case.id)
        if current is None or current.version != expected_version:
            actual = None if current is None else current.version
            raise ConcurrentModification(case.id, expected_version, actual)
        if case.id not in self.added:
            self.expected.setdefault(case.id, expected_version)
        self.cases[case.id] = case
        self.events.setdefault(case.id, []).append(event)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The record under ``key``, staged or stored."""
        return self.idempotency.get(key) or self._store._read_idempotency(key)

    def put_idempotency(self, record: IdempotencyRecord) -> None:
        """Stage a record; a key taken meanwhile fails the commit."""
        self.idempotency[record.key] = record

    def commit(self) -> None:
        """Apply every staged write atomically, or none."""
        try:
            self._store._apply(self)
        finally:
            self._done = True

    def rollback(self) -> None:
        """Discard every staged write."""
        self.added.clear()
        self.cases.clear()
        self.expected.clear()
        self.events.clear()
        self.idempotency.clear()
        self._done = True
