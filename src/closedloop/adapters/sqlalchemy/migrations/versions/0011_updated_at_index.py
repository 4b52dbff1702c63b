"""An index on the instant of each case's latest change, for the ``updated_*`` criteria.

``Engine.find(updated_from=..., updated_before=...)`` selects the cases changed in a
window; the Open311 updates feed asks for the cases changed since its start date. With
this index the database reads the range of changed cases, not every case.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLE = "closedloop_cases"
INDEX = "ix_closedloop_cases_updated_at_row_id"


def upgrade(schema: str | None = None) -> None:
    """Index ``closedloop_cases.updated_at``."""
    op.create_index(INDEX, TABLE, ["updated_at", "row_id"], schema=schema)


def downgrade(schema: str | None = None) -> None:
    """Drop the index."""
    op.drop_index(INDEX, table_name=TABLE, schema=schema)
