"""Trace context of scheduling jobs: the W3C ``traceparent`` of the API request that queued a job.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 00:00:00+00:00

A job runs later, in another process (the job runner actor), so the request's trace context is
stored with it: the job's coordinator and site spans then join the request's trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.add_column("scheduling_jobs", sa.Column("trace_context", _json(), nullable=True))


def downgrade() -> None:
    # Not batch mode: SQLite (3.35+) drops a plain column in place, whereas a batch table copy
    # would fire schedules.job_id's ON DELETE SET NULL and unlink every stored schedule.
    op.drop_column("scheduling_jobs", "trace_context")
