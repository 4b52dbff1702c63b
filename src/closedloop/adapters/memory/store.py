"""The in-memory store itself: its rows, the store-level claims and the commit."""

from __future__ import annotations

import heapq
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic_core import PydanticSerializationError

from closedloop.adapters.memory.transaction import InMemoryTransaction
from closedloop.adapters.store_base import check_claim
from closedloop.engine.case_query import CaseFilter, CasePage, bad_cursor, check_page
from closedloop.engine.clock import utc
from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import (
    CaseQueries,
    DuePoint,
    IdempotencyRecord,
    OutboxMessage,
    OutboxStatus,
)
from closedloop.errors import ConcurrentModification, LeaseLost, MessageNotFound, StoreError


@dataclass
class _Rows:
    cases: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, str] = field(default_factory=dict)
    events: dict[str, list[str]] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)
    due: dict[str, DuePoint] = field(default_factory=dict)
    """Every due point by id; those in ``done`` have fired and never fire again."""
    done: set[str] = field(default_factory=set)
    by_case: dict[str, set[str]] = field(default_factory=dict)
    """The ids of each case's due points."""
    order: list[tuple[datetime, str]] = field(default_factory=list)
    """A heap of (``due_at``, id): the index a claim reads, so its cost follows the number
    due, not the number open. Entries of points since done, dropped or moved are stale
    and skipped when they reach the top."""
    outbox: dict[str, str] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    """The ids of pending messages: a claim parses these, not every message ever sent."""


class InMemoryStore(CaseQueries):
    """A CaseStore held in this process's memory; gone when the process ends."""

    def __init__(self) -> None:
        self._rows = _Rows()
        self._lock = threading.Lock()

    def transaction(self, *, read_only: bool = False) -> InMemoryTransaction:
        """Open a unit of work; it rolls back unless committed.

        Args:
            read_only: The transaction only reads; committing a write raises
                ``StoreError``, as the SQL store does at the write.
        """
        return InMemoryTransaction(self, read_only=read_only)

    def case_ids(self) -> list[str]:
        """Every case id, in the order the cases were added."""
        with self._lock:
            return list(self._rows.cases)

    def close(self) -> None:
        """Nothing to release; present so every store can be closed alike."""

    # -- queries ---------------------------------------------------------------------

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
        """Cases matching every given criterion, oldest first, one page at a time.

        Raises:
            ValidationError: ``limit`` is not between 1 and 1000, or ``after`` is not
                a cursor this store returned.
            NaiveDatetime: ``overdue_at`` has no time zone.
        """
        where = CaseFilter.of(state, lead_unit, category, area, warning_level, overdue_at)
        start = _cursor(after, limit)
        with self._lock:
            rows = list(self._rows.cases.values())[start:]
        found: list[tuple[int, Case]] = []
        for index, row in enumerate(rows, start=start):
            case = Case.model_validate_json(row)
            if where.matches(case):
                found.append((index, case))
                if len(found) > limit:
                    break
        page = found[:limit]
        more = len(found) > limit
        return CasePage(tuple(c for _, c in page), str(page[-1][0] + 1) if more else None)

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
        """How many cases match every given criterion (see :meth:`find_cases`)."""
        where = CaseFilter.of(state, lead_unit, category, area, warning_level, overdue_at)
        with self._lock:
            rows = list(self._rows.cases.values())
        return sum(1 for row in rows if where.matches(Case.model_validate_json(row)))

    # -- due points ------------------------------------------------------------------

    def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> list[DuePoint]:
        """Lease up to ``limit`` live points due at ``now`` whose lease is free or expired."""
        now = check_claim(now, lease, limit)
        token, expires = uuid.uuid4().hex, now + lease
        with self._lock:
            rows = self._rows
            due: list[DuePoint] = []
            kept: set[tuple[datetime, str]] = set()
            while rows.order and rows.order[0][0] <= now and len(due) < limit:
                entry = heapq.heappop(rows.order)
                if entry in kept or not self._current(entry):
                    continue  # a duplicate or stale entry
                kept.add(entry)
                if _claimable(rows.due[entry[1]], now):
                    due.append(rows.due[entry[1]])
            for entry in kept:  # claimed or leased points stay live until completed
                heapq.heappush(rows.order, entry)
            held = {"lease_owner": owner, "lease_expires_at": expires, "lease_token": token}
            claimed = [p.model_copy(update=held) for p in due]
            rows.due.update((p.id, p) for p in claimed)
        return claimed

    def next_due_at(self) -> datetime | None:
        """The earliest ``due_at`` of any live due point."""
        with self._lock:
            order = self._rows.order
            while order and not self._current(order[0]):
                heapq.heappop(order)
            return order[0][0] if order else None

    # -- outbox ----------------------------------------------------------------------

    def claim_outbox(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` pending messages due at ``now``; each attempt is counted."""
        now = check_claim(now, lease, limit)
        token, expires = uuid.uuid4().hex, now + lease
        with self._lock:
            rows = self._rows.outbox
            pending = [
                m
                for m in (OutboxMessage.model_validate_json(rows[i]) for i in self._rows.pending)
                if m.next_attempt_at <= now and _claimable(m, now)
            ]
            pending.sort(key=lambda m: (m.next_attempt_at, m.created_at, m.id))
            claimed = [
                m.model_copy(
                    update={
                        "attempts": m.attempts + 1,
                        "lease_owner": owner,
                        "lease_expires_at": expires,
                        "lease_token": token,
                    }
                )
                for m in pending[:limit]
            ]
            self._rows.outbox.update((m.id, m.model_dump_json()) for m in claimed)
        return claimed

    def finish_outbox(
        self,
        message: OutboxMessage,
        *,
        status: OutboxStatus,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Record an attempt's outcome unless the lease on ``message`` was lost."""
        retry_at = None if next_attempt_at is None else utc(next_attempt_at, "next_attempt_at")
        with self._lock:
            row = self._rows.outbox.get(message.id)
            current = None if row is None else OutboxMessage.model_validate_json(row)
            if not _holds_lease(current, message):
                return False
            assert current is not None  # for mypy: _holds_lease checked it
            finished = current.model_copy(
                update={
                    "status": status,
                    "last_error": error,
                    "next_attempt_at": retry_at or current.next_attempt_at,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "lease_token": None,
                }
            )
            self._rows.outbox[message.id] = finished.model_dump_json()
            if status != "pending":
                self._rows.pending.discard(message.id)
        return True

    def dead_letters(self, *, limit: int = 100) -> list[OutboxMessage]:
        """Messages finished as ``dead``, oldest first."""
        with self._lock:
            rows = list(self._rows.outbox.values())
        dead = [m for m in map(OutboxMessage.model_validate_json, rows) if m.status == "dead"]
        return sorted(dead, key=lambda m: (m.created_at, m.id))[:limit]

    def requeue(self, message_id: str, *, now: datetime) -> None:
        """Make a dead letter pending again, due at ``now``, with its attempts reset.

        Raises:
            MessageNotFound: no dead letter has that id.
        """
        now = utc(now, "now")
        with self._lock:
            row = self._rows.outbox.get(message_id)
            message = None if row is None else OutboxMessage.model_validate_json(row)
            if message is None or message.status != "dead":
                raise MessageNotFound(message_id)
            update = {"status": "pending", "attempts": 0, "next_attempt_at": now}
            self._rows.outbox[message_id] = message.model_copy(update=update).model_dump_json()
            self._rows.pending.add(message_id)

    # Used by InMemoryTransaction only.
    def _apply(self, tx: InMemoryTransaction) -> None:
        # Everything is serialised before the first row changes: a value that cannot be
        # stored fails the commit here, with nothing written.
        try:
            contacts = {
                case.id: contact.model_dump_json()
                for case, contact in tx.added.values()
                if contact is not None
            }
            cases = {
                key: case.model_dump_json(exclude={"contact"}) for key, case in tx.cases.items()
            }
            events = {key: [e.model_dump_json() for e in found] for key, found in tx.events.items()}
            records = {key: record.model_dump_json() for key, record in tx.idempotency.items()}
            outbox = {m.id: m.model_dump_json() for m in tx.outbox.values()}
        except PydanticSerializationError as exc:
            raise StoreError(f"cannot store a value that is not JSON data: {exc}") from None
        with self._lock:
            self._check(tx)
            rows = self._rows
            rows.contacts.update(contacts)
            for case, _ in tx.added.values():
                rows.events[case.id] = []
            rows.cases.update(cases)
            for case_id, rendered in events.items():
                rows.events[case_id].extend(rendered)
            rows.idempotency.update(records)
            rows.done.update(tx.completed)
            for case_id, points in tx.due_plans.items():
                self._replace_due(case_id, points)
            rows.outbox.update(outbox)
            rows.pending.update(m.id for m in tx.outbox.values() if m.status == "pending")

    def _check(self, tx: InMemoryTransaction) -> None:
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
        for point in tx.completed.values():
            stored = rows.due.get(point.id)
            if stored is None or point.id in rows.done or stored.lease_token != point.lease_token:
                raise LeaseLost(point.id)
        for message in tx.outbox.values():
            if message.id in rows.outbox:
                raise ConcurrentModification(message.case_id or message.id, 0, None)

    def _replace_due(self, case_id: str, points: Sequence[DuePoint]) -> None:
        for point in self._merged_due(case_id, points, live_only=False):
            self._put_due(point)
        wanted = {p.id for p in points}
        for gone in [p.id for p in self._live_due(case_id) if p.id not in wanted]:
            self._drop_due(gone)

    def _put_due(self, point: DuePoint) -> None:
        rows = self._rows
        old = rows.due.get(point.id)
        rows.due[point.id] = point
        rows.by_case.setdefault(point.case_id, set()).add(point.id)
        if point.id in rows.done or (old is not None and old.due_at == point.due_at):
            return
        heapq.heappush(rows.order, (point.due_at, point.id))

    def _drop_due(self, point_id: str) -> None:
        rows = self._rows
        point = rows.due.pop(point_id)  # its heap entry goes stale
        rows.by_case.get(point.case_id, set()).discard(point_id)

    def _current(self, entry: tuple[datetime, str]) -> bool:
        """Whether a heap entry still stands for a live point at that due time."""
        at, point_id = entry
        point = self._rows.due.get(point_id)
        return point is not None and point_id not in self._rows.done and point.due_at == at

    def _live_due(self, case_id: str) -> list[DuePoint]:
        rows = self._rows
        ids = rows.by_case.get(case_id, ())
        return [rows.due[i] for i in ids if i not in rows.done]

    def _merged_due(
        self, case_id: str, points: Sequence[DuePoint], *, live_only: bool = True
    ) -> list[DuePoint]:
        """``points`` as they would be stored: leases kept, fired points left as they are."""
        rows = self._rows
        stored = {i: rows.due[i] for i in rows.by_case.get(case_id, ())}
        merged = []
        for point in points:
            if point.id in self._rows.done:
                if not live_only:
                    merged.append(stored[point.id])
                continue
            held = stored.get(point.id)
            lease = (held.lease_owner, held.lease_expires_at, held.lease_token) if held else None
            owner, expires, token = lease or (None, None, None)
            merged.append(
                point.model_copy(
                    update={"lease_owner": owner, "lease_expires_at": expires, "lease_token": token}
                )
            )
        return merged

    def _read_case(self, case_id: str) -> Case | None:
        with self._lock:
            row = self._rows.cases.get(case_id)
        return None if row is None else Case.model_validate_json(row)

    def _read_contact(self, case_id: str) -> ReporterContact | None:
        with self._lock:
            row = self._rows.contacts.get(case_id)
        return None if row is None else ReporterContact.model_validate_json(row)

    def _read_idempotency(self, key: str) -> IdempotencyRecord | None:
        with self._lock:
            row = self._rows.idempotency.get(key)
        return None if row is None else IdempotencyRecord.model_validate_json(row)

    def _read_events(self, case_id: str) -> list[AuditEvent]:
        with self._lock:
            rows = list(self._rows.events.get(case_id, ()))
        return [AuditEvent.model_validate_json(row) for row in rows]

    def _read_head(self, case_id: str) -> str | None:
        with self._lock:
            rows = self._rows.events.get(case_id)
            last = rows[-1] if rows else None
        return None if last is None else AuditEvent.model_validate_json(last).hash

    def _read_due(self, case_id: str, points: Sequence[DuePoint] | None) -> list[DuePoint]:
        with self._lock:
            live = self._live_due(case_id) if points is None else self._merged_due(case_id, points)
        return sorted(live, key=lambda p: (p.due_at, p.id))


def _version(row: str) -> int:
    return Case.model_validate_json(row).version


def _claimable(item: DuePoint | OutboxMessage, now: datetime) -> bool:
    return item.lease_expires_at is None or item.lease_expires_at <= now


def _holds_lease(current: OutboxMessage | None, message: OutboxMessage) -> bool:
    return (
        current is not None
        and current.status == "pending"
        and message.lease_token is not None
        and current.lease_token == message.lease_token
    )


def _cursor(after: str | None, limit: int) -> int:
    check_page(limit)
    if after is None:
        return 0
    if not (after.isascii() and after.isdigit()):
        raise bad_cursor()
    return int(after)
