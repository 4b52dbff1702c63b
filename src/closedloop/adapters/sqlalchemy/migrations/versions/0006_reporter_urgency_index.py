"""The reporter's cases by urgency: one index serves "waiting on me" for a reporter.

A reporter's turn in an inbox (the cases awaiting their confirmation) filters on the
reporter and orders by urgency. With the reporter alone indexed, the database read the
whole urgency index to find a reporter's few cases; the index on the reporter, then
urgency, due time and row, answers it in one range.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLE = "closedloop_cases"
URGENCY = (
    "(CASE warning_level WHEN 'red' THEN 0 WHEN 'yellow' THEN 1 WHEN 'none' THEN 2 ELSE 3 END)"
)
OLD = ("ix_closedloop_cases_reporter_id", "(reporter_id)")
NEW = ("ix_closedloop_cases_reporter_urgency", f"(reporter_id, {URGENCY}, due_at, row_id)")


def _swap(drop: tuple[str, str], create: tuple[str, str], schema: str | None) -> None:
    table = f'"{schema}".{TABLE}' if schema else TABLE
    name, columns = create
    op.execute(f"CREATE INDEX {name} ON {table} {columns}")
    op.execute(f'DROP INDEX "{schema}".{drop[0]}' if schema else f"DROP INDEX {drop[0]}")


def upgrade(schema: str | None = None) -> None:
    """Replace the reporter index by the reporter-and-urgency index."""
    _swap(OLD, NEW, schema)


def downgrade(schema: str | None = None) -> None:
    """Put the reporter index back."""
    _swap(NEW, OLD, schema)
