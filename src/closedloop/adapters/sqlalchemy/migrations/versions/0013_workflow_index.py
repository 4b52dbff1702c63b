"""An index on the workflow each case records, for stores that hold several workflows.

``Engine.facets`` reads the case tally, which counts every workflow's cases together;
it may answer for one engine only while the store holds no case of another workflow.
With this index the database tells (the least and the greatest name) without reading
the cases.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLE = "closedloop_cases"
INDEX = "ix_closedloop_cases_workflow"


def upgrade(schema: str | None = None) -> None:
    """Index ``closedloop_cases.workflow``."""
    op.create_index(INDEX, TABLE, ["workflow"], schema=schema)


def downgrade(schema: str | None = None) -> None:
    """Drop the index."""
    op.drop_index(INDEX, table_name=TABLE, schema=schema)
