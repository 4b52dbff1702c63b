"""Index a case's live due points by (case_id, status, due_at).

The index on case_id alone tied with (status, due_at) for the per-case queries, and on
a SQLite file without statistics the tie could go to (status, due_at): each command and
each fired timer then walked every live due point in the store.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "closedloop_due_points"
OLD = "ix_closedloop_due_points_case_id"
NEW = "ix_closedloop_due_points_case_id_status_due_at"


def upgrade(schema: str | None = None) -> None:
    """Replace the index on case_id with one on (case_id, status, due_at)."""
    op.create_index(NEW, TABLE, ["case_id", "status", "due_at"], schema=schema)
    op.drop_index(OLD, table_name=TABLE, schema=schema)


def downgrade(schema: str | None = None) -> None:
    """Back to the index on case_id alone."""
    op.create_index(OLD, TABLE, ["case_id"], schema=schema)
    op.drop_index(NEW, table_name=TABLE, schema=schema)
