"""The in-memory store's outbox: messages kept as JSON rows, and the pending ones.

Not thread-safe on its own: :class:`~closedloop.adapters.memory.records.MemoryRecords`
holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from closedloop.engine.ports import UNDELIVERED, OutboxMessage, OutboxStatus


class OutboxRows:
    """Every message as a JSON row by id, and the ids of those still pending.

    A claim parses the pending rows only, not every message ever sent.
    """

    def __init__(self) -> None:
        self._rows: dict[str, str] = {}
        self._pending: set[str] = set()

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._rows

    def get(self, message_id: str) -> OutboxMessage | None:
        """The stored message, or ``None``."""
        row = self._rows.get(message_id)
        return None if row is None else OutboxMessage.model_validate_json(row)

    def of_case(self, case_id: str) -> list[OutboxMessage]:
        """Every message of the case, whatever its status, in the order they were put."""
        found = (OutboxMessage.model_validate_json(row) for row in self._rows.values())
        return [m for m in found if m.case_id == case_id]

    def rewrite(self, message_id: str, payload: dict[str, Any], error: str | None) -> None:
        """Replace the payload and last error of a stored message (no-op if unknown)."""
        current = self.get(message_id)
        if current is not None:
            update = {"payload": payload, "last_error": error}
            self._rows[message_id] = current.model_copy(update=update).model_dump_json()

    def put(self, rendered: dict[str, str], pending: Iterable[str]) -> None:
        """Store messages already rendered as JSON rows; ``pending`` names the pending ones."""
        self._rows.update(rendered)
        self._pending.update(pending)

    def claim(self, now: datetime, limit: int, held: dict[str, object]) -> list[OutboxMessage]:
        """Lease up to ``limit`` pending messages due at ``now``; each attempt is counted."""
        due = [
            m
            for m in (OutboxMessage.model_validate_json(self._rows[i]) for i in self._pending)
            if m.next_attempt_at <= now
            and (m.lease_expires_at is None or m.lease_expires_at <= now)
        ]
        due.sort(key=lambda m: (m.next_attempt_at, m.created_at, m.id))
        claimed = [m.model_copy(update={"attempts": m.attempts + 1, **held}) for m in due[:limit]]
        self._rows.update((m.id, m.model_dump_json()) for m in claimed)
        return claimed

    def finish(
        self,
        message: OutboxMessage,
        status: OutboxStatus,
        error: str | None,
        retry_at: datetime | None,
    ) -> bool:
        """Record an attempt's outcome unless the lease on ``message`` was lost."""
        current = self.get(message.id)
        if (
            current is None
            or current.status != "pending"
            or message.lease_token is None
            or current.lease_token != message.lease_token
        ):
            return False
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
        self._rows[message.id] = finished.model_dump_json()
        if status != "pending":
            self._pending.discard(message.id)
        return True

    def dead(self) -> list[OutboxMessage]:
        """Messages finished as ``dead`` or ``disabled``, oldest first."""
        messages = map(OutboxMessage.model_validate_json, list(self._rows.values()))
        return sorted(
            (m for m in messages if m.status in UNDELIVERED), key=lambda m: (m.created_at, m.id)
        )

    def requeue(self, message_id: str, now: datetime) -> bool:
        """Make a dead or disabled message pending again at ``now``; ``False`` if there
        is no such one."""
        message = self.get(message_id)
        if message is None or message.status not in UNDELIVERED:
            return False
        update = {"status": "pending", "attempts": 0, "next_attempt_at": now}
        self._rows[message_id] = message.model_copy(update=update).model_dump_json()
        self._pending.add(message_id)
        return True
