"""The writes an in-memory transaction stages until it commits."""

from __future__ import annotations

from dataclasses import dataclass, field

from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import DuePoint, IdempotencyRecord, OutboxMessage


@dataclass(frozen=True)
class Erasure:
    """One case's personal data to erase: events and messages to rewrite (by sequence
    number and id), and whether its contact data goes."""

    events: tuple[AuditEvent, ...]
    outbox: tuple[OutboxMessage, ...]
    contact: bool


@dataclass
class Staged:
    """One transaction's writes, applied together by
    :meth:`~closedloop.adapters.memory.records.MemoryRecords.apply`, or not at all."""

    added: dict[str, tuple[Case, ReporterContact | None]] = field(default_factory=dict)
    """New cases with their contact data."""
    cases: dict[str, Case] = field(default_factory=dict)
    """The latest version of every case written, new ones included."""
    expected: dict[str, int] = field(default_factory=dict)
    """The stored version each updated (not new) case must still have at commit."""
    events: dict[str, list[AuditEvent]] = field(default_factory=dict)
    """New audit events by case, oldest first."""
    idempotency: dict[str, IdempotencyRecord] = field(default_factory=dict)
    due_plans: dict[str, list[DuePoint]] = field(default_factory=dict)
    """Each case's due points to make live."""
    completed: dict[str, DuePoint] = field(default_factory=dict)
    """Claimed points to mark done, by id."""
    outbox: dict[str, OutboxMessage] = field(default_factory=dict)
    erasures: dict[str, Erasure] = field(default_factory=dict)
    """Personal data to erase, by case."""

    def writes(self) -> bool:
        """Whether anything is staged."""
        return any(
            (
                self.added,
                self.cases,
                self.idempotency,
                self.due_plans,
                self.completed,
                self.outbox,
                self.erasures,
            )
        )

    def copy(self) -> Staged:
        """A copy that later writes to this one leave as it is (for a savepoint)."""
        return Staged(
            added=dict(self.added),
            cases=dict(self.cases),
            expected=dict(self.expected),
            events={key: list(found) for key, found in self.events.items()},
            idempotency=dict(self.idempotency),
            due_plans={key: list(points) for key, points in self.due_plans.items()},
            completed=dict(self.completed),
            outbox=dict(self.outbox),
            erasures=dict(self.erasures),
        )

    def clear(self) -> None:
        """Forget every staged write."""
        for staged in (self.added, self.cases, self.expected, self.events, self.idempotency):
            staged.clear()
        self.due_plans.clear()
        self.completed.clear()
        self.outbox.clear()
        self.erasures.clear()
