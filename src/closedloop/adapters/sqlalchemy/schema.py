"""The tables of the SQL store: plain columns and JSON, readable with plain SQL.

Nothing is pickled. The columns a host filters on (state, unit, category, area,
warning level, deadlines) are real columns; the full case body is kept beside them as
JSON so a case reads back exactly. Every table name starts with ``closedloop_`` so the
store can share a database with the host application's own tables, and the Alembic
version table is ours too, apart from the host's ``alembic_version``.

Tables are defined without a schema; :class:`~closedloop.adapters.sqlalchemy.SQLStore`
maps them into ``schema=`` at execution time (``schema_translate_map``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

from closedloop.engine.clock import utc

HEAD_REVISION = "0003"
"""The Alembic revision that :data:`metadata` corresponds to.

A store that creates its schema itself records this revision, so a later
:func:`~closedloop.adapters.sqlalchemy.upgrade` starts from here. A test checks that
it is the head of the shipped migrations.
"""

VERSION_TABLE = "closedloop_alembic_version"
"""Where Alembic records the schema revision (the host's own ``alembic_version`` is left
alone)."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Instant(TypeDecorator[datetime]):
    """A timezone-aware instant: rejects naive values, always reads back in UTC.

    PostgreSQL keeps ``timestamptz``. SQLite has no time type, so the value is stored
    as UTC text that sorts in time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """UTC for the database; naive values raise ``NaiveDatetime``."""
        if value is None:
            return None
        value = utc(value, "a stored instant")
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """The stored instant, aware, in UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


# SQLite only autoincrements an INTEGER PRIMARY KEY; elsewhere a 64-bit key.
RowId = BigInteger().with_variant(Integer(), "sqlite")

cases = Table(
    "closedloop_cases",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("id", String, nullable=False, unique=True),
    Column("workflow", String, nullable=False),
    Column("state", String, nullable=False, index=True),
    Column("category", String, index=True),
    Column("area", String, index=True),
    Column("lead_unit", String, index=True),
    Column("urgency", String),
    Column("version", Integer, nullable=False),
    Column("reporter_id", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("reported_at", Instant, nullable=False),
    Column("updated_at", Instant, nullable=False),
    # The running clock (NULL once final), for the warning and overdue queries.
    Column("clock", String),
    Column("warning_level", String, index=True),
    Column("due_at", Instant, index=True),
    Column("paused_at", Instant),
    Column("body", JSON, nullable=False),
    comment="One row per case; body holds the whole case as JSON, without contact data.",
)

case_events = Table(
    "closedloop_case_events",
    metadata,
    Column("case_id", String, ForeignKey(cases.c.id), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", Instant, nullable=False),
    Column("actor", String, nullable=False),
    Column("role", String),
    Column("trigger", String, nullable=False),
    Column("from_state", String),
    Column("to_state", String, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("reason", Text),
    Column("changes", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    PrimaryKeyConstraint("case_id", "seq"),
    comment="Append-only audit trail; each hash covers the event and the previous hash.",
)

reporter_contacts = Table(
    "closedloop_reporter_contacts",
    metadata,
    Column("case_id", String, ForeignKey(cases.c.id), primary_key=True),
    Column("name", Text),
    Column("phone", Text),
    Column("email", Text),
    comment="Personal data of reporters, apart from cases so it can be masked and purged.",
)

idempotency_keys = Table(
    "closedloop_idempotency_keys",
    metadata,
    Column("key", String, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("case_id", String, nullable=False, index=True),
    Column("version", Integer, nullable=False),
    comment="The first result of each command sent with an idempotency key.",
)

due_points = Table(
    "closedloop_due_points",
    metadata,
    Column("id", String, primary_key=True),
    Column("case_id", String, ForeignKey(cases.c.id), nullable=False),
    Column("clock", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("level", Integer, nullable=False),
    Column("due_at", Instant, nullable=False),
    Column("status", String, nullable=False),
    Column("lease_owner", String),
    Column("lease_expires_at", Instant),
    Column("lease_token", String),
    # Sweeps read the earliest live points: the cost follows the number due.
    Index(None, "status", "due_at"),
    # A case's live points (read and replaced by every command on the case). Two equal
    # columns make this index win over (status, due_at) whatever order they were
    # created in: SQLite has no statistics on a fresh file, and with only case_id here
    # it could pick (status, due_at) and walk every live point in the store.
    Index(None, "case_id", "status", "due_at"),
    comment="Durable timers; status is 'live' until fired ('done'), and a done point never "
    "fires again.",
)

outbox = Table(
    "closedloop_outbox",
    metadata,
    Column("id", String, primary_key=True),
    Column("case_id", String, index=True),
    Column("event", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("recipient", String, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Instant, nullable=False),
    Column("last_error", Text),
    Column("created_at", Instant, nullable=False),
    Column("lease_owner", String),
    Column("lease_expires_at", Instant),
    Column("lease_token", String),
    Index(None, "status", "next_attempt_at"),
    comment="Notifications written in the transaction of the change that caused them.",
)

checkpoints = Table(
    "closedloop_checkpoints",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("made_at", Instant, nullable=False),
    Column("previous", String(64), nullable=False),
    Column("heads", JSON, nullable=False),
    Column("signature", String(64), nullable=False),
    comment="Signed audit heads (HMAC-SHA256 under a key the database does not hold).",
)

case_anchors = Table(
    "closedloop_case_anchors",
    metadata,
    Column("case_id", String, ForeignKey(cases.c.id), primary_key=True),
    Column("number", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    comment="Each checkpointed case's latest checkpoint and the sequence number it signed.",
)

version_table = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    # Alembic's own shape and constraint name, so Alembic takes over this table as is.
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)
"""Alembic's version table, kept out of :data:`metadata` (Alembic compares it apart)."""
