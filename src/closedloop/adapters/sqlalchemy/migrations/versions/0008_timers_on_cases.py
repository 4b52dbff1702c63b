"""Keep each case's timers on its row: the earliest due instant and a ticker's lease.

The engine derives a case's timers from the case itself, so the due points table
goes. Each case row gains ``next_timer_at`` (the earliest ``due_at`` of its live due
points, filled here from the table before it is dropped), indexed with the row id
for the tick's claim, and a ticker's lease (``tick_owner``, ``tick_expires_at``,
``tick_token``). Leases held on due points are not carried over: a tick claims the
case again.

Downgrading recreates the due points table empty: each case's timers are stored again
by the next change to the case.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

CASES = "closedloop_cases"
DUE = "closedloop_due_points"
INDEX = "ix_closedloop_cases_next_timer_at"
INSTANT = sa.DateTime(timezone=True)
COLUMNS = ("next_timer_at", "tick_owner", "tick_expires_at", "tick_token")


def upgrade(schema: str | None = None) -> None:
    """Add the timer columns and their index, fill ``next_timer_at``, drop the points."""
    for name in COLUMNS:
        kind = INSTANT if name.endswith("_at") else sa.String()
        op.add_column(CASES, sa.Column(name, kind, nullable=True), schema=schema)
    cases = sa.table(CASES, sa.column("id"), sa.column("next_timer_at"), schema=schema)
    due = sa.table(
        DUE, sa.column("case_id"), sa.column("due_at"), sa.column("status"), schema=schema
    )
    earliest = (
        sa.select(sa.func.min(due.c.due_at))
        .where(due.c.case_id == cases.c.id, due.c.status == "live")
        .scalar_subquery()
    )
    op.execute(sa.update(cases).values(next_timer_at=earliest))
    op.create_index(INDEX, CASES, ["next_timer_at", "row_id"], schema=schema)
    op.drop_table(DUE, schema=schema)


def downgrade(schema: str | None = None) -> None:
    """Recreate the due points table (empty) and drop the timer columns."""
    cases_id = f"{schema}.{CASES}.id" if schema else f"{CASES}.id"
    op.create_table(
        DUE,
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("clock", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("due_at", INSTANT, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", INSTANT, nullable=True),
        sa.Column("lease_token", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], [cases_id], name=f"fk_{DUE}_case_id_{CASES}"),
        sa.PrimaryKeyConstraint("id", name=f"pk_{DUE}"),
        comment="Durable timers; status is 'live' until fired ('done'), and a done point "
        "never fires again.",
        schema=schema,
    )
    op.create_index(f"ix_{DUE}_status_due_at", DUE, ["status", "due_at"], schema=schema)
    op.create_index(
        f"ix_{DUE}_case_id_status_due_at", DUE, ["case_id", "status", "due_at"], schema=schema
    )
    op.drop_index(INDEX, table_name=CASES, schema=schema)
    for name in COLUMNS:  # SQLite drops a column in place (3.35+): its triggers stay
        op.drop_column(CASES, name, schema=schema)
