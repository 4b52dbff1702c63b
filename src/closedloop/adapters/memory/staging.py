"""The writes an in-memory transaction stages until it commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import IdempotencyRecord, OutboxMessage, TimerClaim


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
    """The latest version of every case written, new ones included: the copies the
    commit stores, taken when each was staged
    (:func:`~closedloop.adapters.memory.kept.kept_case`), so a writer changing its own
    object afterwards changes nothing staged."""
    expected: dict[str, int] = field(default_factory=dict)
    """The stored version each updated (not new) case must still have at commit."""
    events: dict[str, list[AuditEvent]] = field(default_factory=dict)
    """New audit events by case, oldest first (copies, as the cases are)."""
    idempotency: dict[str, IdempotencyRecord] = field(default_factory=dict)
    timers: dict[str, datetime | None] = field(default_factory=dict)
    """Each written case's earliest timer instant."""
    leases: dict[str, TimerClaim | None] = field(default_factory=dict)
    """Each case's ticker's lease to store (``None``: released)."""
    tokens: dict[str, str] = field(default_factory=dict)
    """The lease token each claimed case must still hold at commit."""
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
                self.timers,
                self.leases,
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
            timers=dict(self.timers),
            leases=dict(self.leases),
            tokens=dict(self.tokens),
            outbox=dict(self.outbox),
            erasures=dict(self.erasures),
        )

    def clear(self) -> None:
        """Forget every staged write."""
        for staged in (self.added, self.cases, self.expected, self.events, self.idempotency):
            staged.clear()
        self.timers.clear()
        self.leases.clear()
        self.tokens.clear()
        self.outbox.clear()
        self.erasures.clear()
