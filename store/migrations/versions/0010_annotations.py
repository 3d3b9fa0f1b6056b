"""Annotations: holidays, outages, maintenance windows and labels on accounts, sites (or one
of their devices) and sensors (issue 14 item 6).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 00:00:00+00:00

Hand-written like the others (no vpp imports; names wrapped in ``op.f()``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TYPES = "type IN ('holiday', 'outage', 'maintenance', 'label')"


def upgrade() -> None:
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("sensor_id", sa.Integer(), nullable=True),
        sa.Column("device", sa.String(255), nullable=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(TYPES, name=op.f("ck_annotations_type")),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_annotations_period")),
        sa.CheckConstraint(
            "site_id IS NULL OR sensor_id IS NULL", name=op.f("ck_annotations_one_target")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_annotations_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_annotations_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensors.id"],
            name=op.f("fk_annotations_sensor_id_sensors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    for column in ("account_id", "site_id", "sensor_id"):
        op.create_index(op.f(f"ix_annotations_{column}"), "annotations", [column])


def downgrade() -> None:
    for column in ("account_id", "site_id", "sensor_id"):
        op.drop_index(op.f(f"ix_annotations_{column}"), table_name="annotations")
    op.drop_table("annotations")
