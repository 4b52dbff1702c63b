"""Claims with leases on cases with due timers and on outbox rows; each function is one
transaction's work.

A claim takes the earliest rows that are due and not held by a live lease, and
stamps them with an owner, an expiry and a fresh token. On PostgreSQL the rows are
selected ``FOR UPDATE SKIP LOCKED``, so concurrent sweepers divide the work instead
of queueing behind each other; on SQLite the write lock taken at ``BEGIN IMMEDIATE``
already makes claims one at a time. A holder whose lease expired may be overtaken;
its later write then matches no row (the token changed) and is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Integer,
    Select,
    String,
    bindparam,
    func,
    or_,
    select,
    update,
)

from closedloop.adapters.sqlalchemy import rows
from closedloop.adapters.sqlalchemy.engines import prepared
from closedloop.adapters.sqlalchemy.schema import cases, outbox
from closedloop.engine.model import assembled
from closedloop.engine.ports import UNDELIVERED, OutboxMessage, OutboxStatus, TimerClaim

PENDING = "pending"


def of_workflow(workflow: str | ColumnElement[str]) -> ColumnElement[bool]:
    """The cases of ``workflow``, as a condition no index serves: the database filters
    the walk along the timer index with it, and never reads every case of the workflow
    through the index on the name (which a claim's order cannot use)."""
    return (cases.c.workflow + "") == workflow


def due_cases(workflow: bool) -> Select[tuple[int]]:
    """The row ids of up to ``:limit`` cases with ``next_timer_at <= :now`` and no live
    lease (of ``:workflow`` when ``workflow``), earliest first, read through the index
    on (next_timer_at, row_id). Due cases of other workflows are passed over on the
    way. Built once for each: a tick claims a batch after each batch."""
    now = bindparam("now", type_=cases.c.next_timer_at.type)
    free = or_(cases.c.tick_expires_at.is_(None), cases.c.tick_expires_at <= now)
    ours = [of_workflow(bindparam("workflow", type_=String))] if workflow else []
    return (
        select(cases.c.row_id)
        .where(cases.c.next_timer_at <= now, free, *ours)
        .order_by(cases.c.next_timer_at, cases.c.row_id)
        .limit(bindparam("limit", type_=Integer))
    )


_DUE = {ours: due_cases(ours).with_for_update(skip_locked=True) for ours in (False, True)}
"""What a claim reads first where it locks the rows it claims (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), by whether it claims one workflow's cases."""

_LEASED = (
    update(cases)
    .where(cases.c.row_id.in_(bindparam("row_ids", expanding=True)))
    .values(
        tick_owner=bindparam("owner", type_=String),
        tick_expires_at=bindparam("expires_at", type_=cases.c.tick_expires_at.type),
        tick_token=bindparam("token", type_=String),
    )
    .returning(cases.c.row_id, cases.c.id, cases.c.next_timer_at)
)
"""The lease on the rows a claim read, as they stand now."""

_CLAIM_AT_ONCE = {
    ours: update(cases)
    .where(cases.c.row_id.in_(due_cases(ours)))
    .values(
        tick_owner=bindparam("owner", type_=String),
        tick_expires_at=bindparam("expires_at", type_=cases.c.tick_expires_at.type),
        tick_token=bindparam("token", type_=String),
    )
    .returning(cases.c.row_id, cases.c.id, cases.c.next_timer_at)
    for ours in (False, True)
}
"""A claim as one statement, where the transaction holds the database's only write lock
(SQLite): nobody else claims between its read and its lease."""


NEXT_DUE = select(func.min(cases.c.next_timer_at))
"""The earliest ``next_timer_at`` of any case (the index's first entry)."""


def next_due(workflow: str | None) -> Select[Any]:
    """The earliest ``next_timer_at`` of any case of ``workflow`` (``None``: of any),
    read along the index on (next_timer_at, row_id)."""
    if workflow is None:
        return NEXT_DUE
    return NEXT_DUE.where(of_workflow(workflow))


def claim_due(
    connection: Connection,
    now: datetime,
    *,
    owner: str,
    lease: timedelta,
    limit: int,
    workflow: str | None = None,
) -> list[TimerClaim]:
    """Lease up to ``limit`` cases with ``next_timer_at <= now`` (of ``workflow``, when
    given), earliest first.

    On SQLite the claim is one prepared statement (see :mod:`.prepared`); elsewhere the
    rows are read and locked first, then leased. Every claim of one call has the same
    owner, expiry and token: they are the values written, not read back.
    """
    expires_at = now + lease
    token = uuid.uuid4().hex
    due: dict[str, Any] = {"now": now, "limit": limit}
    if workflow is not None:
        due["workflow"] = workflow
    lease_values = {"owner": owner, "expires_at": expires_at, "token": token}
    engine = connection.engine
    if engine.dialect.name == "sqlite":
        statement = _CLAIM_AT_ONCE[workflow is not None]
        claimed: Sequence[Any] = (
            prepared(engine, statement, ()).run(connection, {**due, **lease_values}).all()
        )
        instant = _read_instant(connection.dialect)
        rows = [(_sqlite_instant(at, instant), row_id, case_id) for row_id, case_id, at in claimed]
    else:
        ids = connection.execute(_DUE[workflow is not None], due).scalars().all()
        if not ids:
            return []
        claimed = connection.execute(_LEASED, {"row_ids": ids, **lease_values}).all()
        rows = [(at, row_id, case_id) for row_id, case_id, at in claimed]
    rows.sort()
    # The columns' own values (instants read back aware, in UTC): not validated again.
    return [
        assembled(
            TimerClaim,
            {
                "case_id": case_id,
                "next_timer_at": at,
                "owner": owner,
                "expires_at": expires_at,
                "token": token,
            },
        )
        for at, _, case_id in rows
    ]


def _read_instant(dialect: Dialect) -> Callable[[Any], Any]:
    """How an instant the driver gives back as it is becomes an aware one in UTC (as a
    query's ``Instant`` column reads it)."""
    found = _INSTANT_READERS.get(dialect.name)
    if found is None:
        process = cases.c.next_timer_at.type.dialect_impl(dialect).result_processor(dialect, None)
        found = _INSTANT_READERS[dialect.name] = process or _as_it_is
    return found


_INSTANT_READERS: dict[str, Callable[[Any], Any]] = {}


def _sqlite_instant(value: Any, read: Callable[[Any], Any]) -> Any:
    """An instant as SQLite holds it, aware and in UTC: the text ``Instant`` writes
    (``YYYY-MM-DD HH:MM:SS.ffffff``, in UTC) read directly, as ``read`` would give it
    at a fraction of the cost (a claim reads one for every case); anything else by
    ``read``."""
    if type(value) is str and len(value) == _SQLITE_INSTANT_LENGTH and value[10] == " ":
        try:
            return datetime.fromisoformat(value + "+00:00")  # tzinfo: datetime.UTC itself
        except ValueError:
            pass  # not such a text after all: as ``read`` takes it
    return read(value)


_SQLITE_INSTANT_LENGTH = len("2026-01-01 00:00:00.000000")


def _as_it_is(value: Any) -> Any:
    return value


def next_due_at(connection: Connection, workflow: str | None = None) -> datetime | None:
    """The earliest ``next_timer_at`` of any case (of ``workflow``, when given)."""
    return connection.execute(next_due(workflow)).scalar()


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
    """Messages finished as ``dead`` or ``disabled``, oldest first."""
    dead = connection.execute(
        select(outbox)
        .where(outbox.c.status.in_(UNDELIVERED))
        .order_by(outbox.c.created_at, outbox.c.id)
        .limit(limit)
    ).mappings()
    return [rows.outbox_from_row(row) for row in dead]


def requeue(connection: Connection, message_id: str, *, now: datetime) -> bool:
    """Make a dead or disabled message pending at ``now`` with no attempts; ``False`` if
    there is none."""
    requeued = connection.execute(
        update(outbox)
        .where(outbox.c.id == message_id, outbox.c.status.in_(UNDELIVERED))
        .values(status=PENDING, attempts=0, next_attempt_at=now)
    )
    return requeued.rowcount == 1
