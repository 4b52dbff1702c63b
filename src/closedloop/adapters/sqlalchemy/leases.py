"""Claims with leases on due points and outbox rows; each function is one transaction's work.

A claim takes the earliest rows that are due and not held by a live lease, and
stamps them with an owner, an expiry and a fresh token. On PostgreSQL the rows are
selected ``FOR UPDATE SKIP LOCKED``, so concurrent sweepers divide the work instead
of queueing behind each other; on SQLite the write lock taken at ``BEGIN IMMEDIATE``
already makes claims one at a time. A holder whose lease expired may be overtaken;
its later acknowledgement then matches no row (the token changed) and is discarded.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, or_, select, update

from closedloop.adapters.sqlalchemy import rows
from closedloop.adapters.sqlalchemy.schema import due_points, outbox
from closedloop.engine.ports import DuePoint, OutboxMessage, OutboxStatus

_DUE_COLUMNS = [c for c in due_points.c if c.name != "status"]
PENDING = "pending"


def claim_due(
    connection: Connection, now: datetime, *, owner: str, lease: timedelta, limit: int
) -> list[DuePoint]:
    """Lease up to ``limit`` live points with ``due_at <= now``, earliest first."""
    free = or_(due_points.c.lease_expires_at.is_(None), due_points.c.lease_expires_at <= now)
    ids = (
        connection.execute(
            select(due_points.c.id)
            .where(due_points.c.status == rows.LIVE, due_points.c.due_at <= now, free)
            .order_by(due_points.c.due_at, due_points.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    claimed = connection.execute(
        update(due_points)
        .where(due_points.c.id.in_(ids))
        .values(lease_owner=owner, lease_expires_at=now + lease, lease_token=uuid.uuid4().hex)
        .returning(*_DUE_COLUMNS)
    ).mappings()
    return sorted(map(rows.due_from_row, claimed), key=lambda p: (p.due_at, p.id))


def next_due_at(connection: Connection) -> datetime | None:
    """The earliest ``due_at`` of any live point."""
    earliest = select(func.min(due_points.c.due_at)).where(due_points.c.status == rows.LIVE)
    return connection.execute(earliest).scalar()


def claim_outbox(
    connection: Connection, now: datetime, *, owner: str, lease: timedelta, limit: int
) -> list[OutboxMessage]:
    """Lease up to ``limit`` pending messages due at ``now``, counting the attempt."""
    free = or_(outbox.c.lease_expires_at.is_(None), outbox.c.lease_expires_at <= now)
    ids = (
        connection.execute(
            select(outbox.c.id)
            .where(outbox.c.status == PENDING, outbox.c.next_attempt_at <= now, free)
            .order_by(outbox.c.next_attempt_at, outbox.c.created_at, outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    claimed = connection.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids))
        .values(
            attempts=outbox.c.attempts + 1,
            lease_owner=owner,
            lease_expires_at=now + lease,
            lease_token=uuid.uuid4().hex,
        )
        .returning(*outbox.c)
    ).mappings()
    messages = map(rows.outbox_from_row, claimed)
    return sorted(messages, key=lambda m: (m.next_attempt_at, m.created_at, m.id))


def finish_outbox(
    connection: Connection,
    message: OutboxMessage,
    *,
    status: OutboxStatus,
    error: str | None,
    next_attempt_at: datetime | None,
) -> bool:
    """Record an attempt's outcome; ``False`` when the lease on ``message`` was lost."""
    if message.lease_token is None:
        return False
    values: dict[str, object] = {
        "status": status,
        "last_error": error,
        "lease_owner": None,
        "lease_expires_at": None,
        "lease_token": None,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    finished = connection.execute(
        update(outbox)
        .where(
            outbox.c.id == message.id,
            outbox.c.status == PENDING,
            outbox.c.lease_token == message.lease_token,
        )
        .values(values)
    )
    return finished.rowcount == 1


def dead_letters(connection: Connection, *, limit: int) -> list[OutboxMessage]:
    """Messages finished as ``dead``, oldest first."""
    dead = connection.execute(
        select(outbox)
        .where(outbox.c.status == "dead")
        .order_by(outbox.c.created_at, outbox.c.id)
        .limit(limit)
    ).mappings()
    return [rows.outbox_from_row(row) for row in dead]


def requeue(connection: Connection, message_id: str, *, now: datetime) -> bool:
    """Make a dead letter pending at ``now`` with no attempts; ``False`` if there is none."""
    requeued = connection.execute(
        update(outbox)
        .where(outbox.c.id == message_id, outbox.c.status == "dead")
        .values(status=PENDING, attempts=0, next_attempt_at=now)
    )
    return requeued.rowcount == 1
