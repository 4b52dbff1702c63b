"""The initial schema: cases, audit events, contacts, idempotency keys, due points, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-01-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types as they were at this revision: a migration must
# not change when the models do.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def _cases_id(schema: str | None) -> str:
    return f"{schema}.closedloop_cases.id" if schema else "closedloop_cases.id"


def _case_fk(table: str, schema: str | None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["case_id"], [_cases_id(schema)], name=f"fk_{table}_case_id_closedloop_cases"
    )


def _index(table: str, columns: list[str], schema: str | None) -> None:
    op.create_index(f"ix_{table}_{'_'.join(columns)}", table, columns, schema=schema)


def _lease() -> list[sa.Column[object]]:
    return [
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", INSTANT, nullable=True),
        sa.Column("lease_token", sa.String(), nullable=True),
    ]


def upgrade(schema: str | None = None) -> None:
    """Create every table; in ``schema`` (PostgreSQL) when given."""
    _create_cases(schema)
    _create_case_events(schema)
    _create_contacts_and_keys(schema)
    _create_due_points(schema)
    _create_outbox(schema)


def _create_cases(schema: str | None) -> None:
    table = "closedloop_cases"
    op.create_table(
        table,
        sa.Column("row_id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=True),
        sa.Column("area", sa.String(), nullable=True),
        sa.Column("lead_unit", sa.String(), nullable=True),
        sa.Column("urgency", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reporter_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("reported_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.Column("clock", sa.String(), nullable=True),
        sa.Column("warning_level", sa.String(), nullable=True),
        sa.Column("due_at", INSTANT, nullable=True),
        sa.Column("paused_at", INSTANT, nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("row_id", name="pk_closedloop_cases"),
        sa.UniqueConstraint("id", name="uq_closedloop_cases_id"),
        comment="One row per case; body holds the whole case as JSON, without contact data.",
        schema=schema,
    )
    for column in ("area", "category", "due_at", "lead_unit", "state", "warning_level"):
        _index(table, [column], schema)


def _create_case_events(schema: str | None) -> None:
    op.create_table(
        "closedloop_case_events",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=True),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        _case_fk("closedloop_case_events", schema),
        sa.PrimaryKeyConstraint("case_id", "seq", name="pk_closedloop_case_events"),
        comment="Append-only audit trail; each hash covers the event and the previous hash.",
        schema=schema,
    )


def _create_contacts_and_keys(schema: str | None) -> None:
    op.create_table(
        "closedloop_reporter_contacts",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        _case_fk("closedloop_reporter_contacts", schema),
        sa.PrimaryKeyConstraint("case_id", name="pk_closedloop_reporter_contacts"),
        comment="Personal data of reporters, apart from cases so it can be masked and purged.",
        schema=schema,
    )
    op.create_table(
        "closedloop_idempotency_keys",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_closedloop_idempotency_keys"),
        comment="The first result of each command sent with an idempotency key.",
        schema=schema,
    )
    _index("closedloop_idempotency_keys", ["case_id"], schema)


def _create_due_points(schema: str | None) -> None:
    table = "closedloop_due_points"
    op.create_table(
        table,
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("clock", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("due_at", INSTANT, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        *_lease(),
        _case_fk(table, schema),
        sa.PrimaryKeyConstraint("id", name="pk_closedloop_due_points"),
        comment="Durable timers; status is 'live' until fired ('done'), and a done point "
        "never fires again.",
        schema=schema,
    )
    _index(table, ["case_id"], schema)
    _index(table, ["status", "due_at"], schema)


def _create_outbox(schema: str | None) -> None:
    table = "closedloop_outbox"
    op.create_table(
        table,
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=True),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", INSTANT, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        *_lease(),
        sa.PrimaryKeyConstraint("id", name="pk_closedloop_outbox"),
        comment="Notifications written in the transaction of the change that caused them.",
        schema=schema,
    )
    _index(table, ["case_id"], schema)
    _index(table, ["status", "next_attempt_at"], schema)


def downgrade(schema: str | None = None) -> None:
    """Drop every table (and its data)."""
    for table in (
        "closedloop_outbox",
        "closedloop_due_points",
        "closedloop_idempotency_keys",
        "closedloop_reporter_contacts",
        "closedloop_case_events",
        "closedloop_cases",
    ):
        op.drop_table(table, schema=schema)
