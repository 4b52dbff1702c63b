"""Keep the seals of an audit event's personal fields beside it.

An event written by a workflow with a retention policy commits to each personal field
by a salted digest; the digests and salts are kept in ``sealed`` (``NULL`` for events
without any, such as every event written before this revision).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade(schema: str | None = None) -> None:
    """Add ``closedloop_case_events.sealed``."""
    op.add_column(
        "closedloop_case_events", sa.Column("sealed", sa.JSON(), nullable=True), schema=schema
    )


def downgrade(schema: str | None = None) -> None:
    """Drop ``closedloop_case_events.sealed``."""
    with op.batch_alter_table("closedloop_case_events", schema=schema) as batch:
        batch.drop_column("sealed")
