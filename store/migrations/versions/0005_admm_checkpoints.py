"""ADMM checkpoints in the database: a portfolio job's iteration state and the warm-start
states, so a coordinator restarted on another node resumes the job.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 00:00:00+00:00

Hand-written like the others (no vpp imports; names wrapped in ``op.f()``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admm_checkpoints",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_admm_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("admm_checkpoints")
