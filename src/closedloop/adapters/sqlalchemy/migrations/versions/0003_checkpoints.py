"""Add signed checkpoints of audit heads, and each case's anchor among them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# A frozen copy of the instant type as it is at this revision.
INSTANT = sa.DateTime(timezone=True)


def upgrade(schema: str | None = None) -> None:
    """Create ``closedloop_checkpoints`` and ``closedloop_case_anchors``."""
    op.create_table(
        "closedloop_checkpoints",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("made_at", INSTANT, nullable=False),
        sa.Column("previous", sa.String(64), nullable=False),
        sa.Column("heads", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_closedloop_checkpoints"),
        comment="Signed audit heads (HMAC-SHA256 under a key the database does not hold).",
        schema=schema,
    )
    op.create_table(
        "closedloop_case_anchors",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name="pk_closedloop_case_anchors"),
        sa.ForeignKeyConstraint(
            ["case_id"],
            [f"{schema}.closedloop_cases.id" if schema else "closedloop_cases.id"],
            name="fk_closedloop_case_anchors_case_id_closedloop_cases",
        ),
        comment="Each checkpointed case's latest checkpoint and the sequence number it signed.",
        schema=schema,
    )


def downgrade(schema: str | None = None) -> None:
    """Drop the checkpoint tables."""
    op.drop_table("closedloop_case_anchors", schema=schema)
    op.drop_table("closedloop_checkpoints", schema=schema)
