"""Initial schema: accounts, sites, devices, sensors, timed values, jobs and schedules.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00

Hand-written; it must match ``store.tables`` (``tests/test_store.py`` checks that an
autogenerate comparison after upgrading is empty on SQLite and PostgreSQL). It deliberately
does not import vpp code, so it keeps working when the models change later. Names are wrapped
in ``op.f()`` so the metadata's naming convention is not applied to them a second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json(*, none_as_null: bool = False) -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=none_as_null).with_variant(
        postgresql.JSONB(none_as_null=none_as_null), "postgresql"
    )


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent_account_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('aggregator', 'consultancy', 'dso')", name=op.f("ck_accounts_kind")
        ),
        sa.ForeignKeyConstraint(
            ["parent_account_id"],
            ["accounts.id"],
            name=op.f("fk_accounts_parent_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("ean", sa.String(64), nullable=True),
        sa.Column("congestion_point", sa.String(255), nullable=True),
        sa.Column("flex_context", _json(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sites_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_sites_account_id_name")),
    )
    op.create_index(op.f("ix_sites_account_id"), "sites", ["account_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("flex_model", _json(), nullable=False),
        sa.CheckConstraint(
            "type IN ('storage', 'heat', 'shiftable', 'generation', 'inflexible')",
            name=op.f("ck_devices_type"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_devices_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("site_id", "name", name=op.f("uq_devices_site_id_name")),
    )
    op.create_index(op.f("ix_devices_site_id"), "devices", ["site_id"])
    op.create_table(
        "sensors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("resolution_seconds", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sensors_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_sensors_site_id_sites"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensors")),
    )
    op.create_index(op.f("ix_sensors_account_id"), "sensors", ["account_id"])
    op.create_index(op.f("ix_sensors_site_id"), "sensors", ["site_id"])
    op.create_table(
        "timed_values",
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("event_start", _utc(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("belief_time", _utc(), nullable=False),
        sa.Column("event_resolution_seconds", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensors.id"],
            name=op.f("fk_timed_values_sensor_id_sensors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "sensor_id", "event_start", "source", "belief_time", name=op.f("pk_timed_values")
        ),
    )
    op.create_table(
        "scheduling_jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", _json(), nullable=False),
        sa.Column("result", _json(none_as_null=True), nullable=True),
        sa.Column("error", _json(none_as_null=True), nullable=True),
        sa.Column("progress", _json(none_as_null=True), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('storage', 'shifting', 'portfolio')", name=op.f("ck_scheduling_jobs_kind")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'finished', 'failed', 'cancelled')",
            name=op.f("ck_scheduling_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_scheduling_jobs_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduling_jobs")),
    )
    op.create_index(op.f("ix_scheduling_jobs_account_id"), "scheduling_jobs", ["account_id"])
    op.create_index(op.f("ix_scheduling_jobs_status"), "scheduling_jobs", ["status"])
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("device_name", sa.String(255), nullable=True),
        sa.Column("start", _utc(), nullable=False),
        sa.Column("resolution_seconds", sa.Integer(), nullable=False),
        sa.Column("values", _json(), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["scheduling_jobs.id"],
            name=op.f("fk_schedules_job_id_scheduling_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_schedules_site_id_sites"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_index(op.f("ix_schedules_job_id"), "schedules", ["job_id"])
    op.create_index(op.f("ix_schedules_site_id"), "schedules", ["site_id"])


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_table("scheduling_jobs")
    op.drop_table("timed_values")
    op.drop_table("sensors")
    op.drop_table("devices")
    op.drop_table("sites")
    op.drop_table("accounts")
