"""The in-memory store's rows, under one lock: frozen models, each checked to be JSON data.

Both the store (its queries and claims) and its transactions (their reads and the
commit) work on one :class:`MemoryRecords`; neither reaches into the other.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from pydantic_core import PydanticSerializationError

from closedloop.adapters.memory.due_index import DueIndex
from closedloop.adapters.memory.outbox_rows import OutboxRows
from closedloop.adapters.memory.staging import Staged
from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import IdempotencyRecord, OutboxMessage, OutboxStatus, TimerClaim
from closedloop.errors import ConcurrentModification, LeaseLost, StoreError

T = TypeVar("T", AuditEvent, ReporterContact, IdempotencyRecord)


class MemoryRecords:
    """Cases, contact data, audit events, idempotency keys, timers and the outbox.

    One lock guards every row; each method takes it, so each is atomic.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cases: dict[str, Case] = {}
        """Each case (without contact data), in the order the cases were added."""
        self._contacts: dict[str, ReporterContact] = {}
        self.events: dict[str, list[AuditEvent]] = {}
        """Each case's audit events, oldest first."""
        self._idempotency: dict[str, IdempotencyRecord] = {}
        self._due = DueIndex()
        self._outbox = OutboxRows()

    # -- reads -------------------------------------------------------------------------

    def case_ids(self) -> list[str]:
        """Every case id, in the order the cases were added."""
        with self._lock:
            return list(self._cases)

    def case_rows(self, start: int = 0) -> list[Case]:
        """The case rows from position ``start`` on, in the order the cases were added."""
        with self._lock:
            return list(self._cases.values())[start:]

    def read_case(self, case_id: str) -> Case | None:
        """The stored case, or ``None``."""
        with self._lock:
            return self._cases.get(case_id)

    def read_contact(self, case_id: str) -> ReporterContact | None:
        """The stored contact data of the case, or ``None``."""
        with self._lock:
            return self._contacts.get(case_id)

    def read_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The stored record under ``key``, or ``None``."""
        with self._lock:
            return self._idempotency.get(key)

    def read_events(self, case_id: str) -> list[AuditEvent]:
        """The case's stored audit events, oldest first."""
        with self._lock:
            return list(self.events.get(case_id, ()))

    def event_rows(self) -> list[tuple[tuple[datetime, str, int], AuditEvent]]:
        """Every stored audit event with its key in time order (at, case id, seq)."""
        with self._lock:
            return [
                ((event.at, case_id, event.seq), event)
                for case_id, events in self.events.items()
                for event in events
            ]

    def read_outbox_of(self, case_id: str) -> list[OutboxMessage]:
        """Every stored message of the case, whatever its status."""
        with self._lock:
            return self._outbox.of_case(case_id)

    def read_head(self, case_id: str) -> str | None:
        """The hash of the case's latest stored event, or ``None``."""
        with self._lock:
            found = self.events.get(case_id)
            return found[-1].hash if found else None

    def read_lease(self, case_id: str) -> TimerClaim | None:
        """The case's ticker's lease as stored (expired or not), or ``None``."""
        with self._lock:
            return self._due.lease(case_id)

    # -- timers and outbox, outside any transaction --------------------------------------

    def claim_due(
        self,
        now: datetime,
        limit: int,
        *,
        owner: str,
        expires_at: datetime,
        token: str,
        workflow: str | None = None,
    ) -> list[TimerClaim]:
        """Lease up to ``limit`` cases (of ``workflow``, or of any) whose earliest timer
        is due at ``now``."""
        with self._lock:
            return self._due.claim(
                now, limit, owner=owner, expires_at=expires_at, token=token, workflow=workflow
            )

    def next_due_at(self, workflow: str | None = None) -> datetime | None:
        """The earliest ``next_timer_at`` of any case (of ``workflow``, when given)."""
        with self._lock:
            return self._due.next_due_at(workflow)

    def claim_outbox(
        self, now: datetime, limit: int, held: dict[str, object]
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` pending messages due at ``now``; each attempt is counted."""
        with self._lock:
            return self._outbox.claim(now, limit, held)

    def finish_outbox(
        self,
        message: OutboxMessage,
        status: OutboxStatus,
        error: str | None,
        retry_at: datetime | None,
    ) -> bool:
        """Record an attempt's outcome unless the lease on ``message`` was lost."""
        with self._lock:
            return self._outbox.finish(message, status, error, retry_at)

    def dead_letters(self) -> list[OutboxMessage]:
        """Messages finished as ``dead`` or ``disabled``, oldest first."""
        with self._lock:
            return self._outbox.dead()

    def requeue(self, message_id: str, now: datetime) -> bool:
        """Make a dead or disabled message pending again at ``now``; ``False`` if there is
        no such one."""
        with self._lock:
            return self._outbox.requeue(message_id, now)

    # -- the commit ----------------------------------------------------------------------

    def apply(self, staged: Staged) -> None:
        """Write every staged write, or none.

        Raises:
            ConcurrentModification: a version, case id, key or message id check failed.
            LeaseLost: a claimed case is no longer leased under the claim's token.
            StoreError: a value is not JSON data.
        """
        # Everything is checked before the first row changes: a value that is not JSON
        # data fails the commit here, with nothing written. Each value is kept as it
        # reads back from its JSON row, as a database would give it back: checked once,
        # not on every read, and never the object the command still holds (cases and
        # events were copied so when they were staged, see ``kept``).
        cases, events, added = staged.cases, staged.events, staged.added
        # (A command stages no contact data, key, message or erasure mostly: nothing is
        # done for those it lacks.)
        try:
            contacts = (
                {
                    case.id: _checked(contact)
                    for case, contact in added.values()
                    if contact is not None
                }
                if added
                else {}
            )
            records = (
                {key: _checked(record) for key, record in staged.idempotency.items()}
                if staged.idempotency
                else {}
            )
            outbox = (
                {m.id: m.model_dump_json() for m in staged.outbox.values()} if staged.outbox else {}
            )
            erased = (
                {
                    key: [_checked(e) for e in erasure.events]
                    for key, erasure in staged.erasures.items()
                }
                if staged.erasures
                else {}
            )
        except PydanticSerializationError as exc:
            raise StoreError(f"cannot store a value that is not JSON data: {exc}") from None
        with self._lock:
            self._check(staged)
            if added:
                self._contacts.update(contacts)
                for case, _ in added.values():
                    self.events[case.id] = []
            self._cases.update(cases)
            for case_id, rendered in events.items():
                self.events[case_id].extend(rendered)
            if records:
                self._idempotency.update(records)
            for case_id, at in staged.timers.items():
                self._due.set_next(case_id, at, self._cases[case_id].workflow)
            for case_id, lease in staged.leases.items():
                self._due.set_lease(case_id, lease)
            if outbox:
                pending = (m.id for m in staged.outbox.values() if m.status == "pending")
                self._outbox.put(outbox, pending)
            for case_id, erasure in staged.erasures.items():
                self._erase(case_id, erased[case_id], erasure.outbox, erasure.contact)

    def _erase(
        self,
        case_id: str,
        events: list[AuditEvent],
        outbox: Sequence[OutboxMessage],
        contact: bool,
    ) -> None:
        rewritten = {event.seq: event for event in events}
        stored = self.events.get(case_id, [])
        self.events[case_id] = [rewritten.get(event.seq, event) for event in stored]
        for message in outbox:
            self._outbox.rewrite(message.id, message.payload, message.last_error)
        if contact:
            self._contacts.pop(case_id, None)
        for key in [k for k, r in self._idempotency.items() if r.case_id == case_id]:
            del self._idempotency[key]

    def _check(self, staged: Staged) -> None:
        for case, _ in staged.added.values():
            if case.id in self._cases:
                raise ConcurrentModification(case.id, 0, self._cases[case.id].version)
        for case_id, expected in staged.expected.items():
            current = self._cases.get(case_id)
            if current is None or current.version != expected:
                actual = None if current is None else current.version
                raise ConcurrentModification(case_id, expected, actual)
        for key in staged.idempotency:
            if key in self._idempotency:
                raise ConcurrentModification(self._idempotency[key].case_id, 0, None)
        for case_id, token in staged.tokens.items():
            held = self._due.lease(case_id)
            if held is None or held.token != token:
                raise LeaseLost(case_id)
        for message in staged.outbox.values():
            if message.id in self._outbox:
                raise ConcurrentModification(message.case_id or message.id, 0, None)


def _checked(value: T) -> T:
    """``value`` as it reads back from its JSON row (a value that is not JSON data fails)."""
    return type(value).model_validate_json(value.model_dump_json())
