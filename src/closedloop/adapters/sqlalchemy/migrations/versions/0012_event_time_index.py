"""An index on the instant of each audit event, for the events recorded in a window.

``Engine.changes`` reads the events recorded between two instants, in time order; the
Open311 updates feed reads its window's events that way. With this index the database
reads the range of events in the window, not the trail of every case changed since.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLE = "closedloop_case_events"
INDEX = "ix_closedloop_case_events_at"


def upgrade(schema: str | None = None) -> None:
    """Index ``closedloop_case_events.at`` (with the case id and seq, in that order)."""
    op.create_index(INDEX, TABLE, ["at", "case_id", "seq"], schema=schema)


def downgrade(schema: str | None = None) -> None:
    """Drop the index."""
    op.drop_index(INDEX, table_name=TABLE, schema=schema)
