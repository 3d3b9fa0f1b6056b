"""A job remembers the stored site it scheduled, so the job list can filter by site.

* ``scheduling_jobs.site_id`` (SET NULL when the site goes), indexed; jobs queued before
  this revision keep NULL (their requests were expanded, the site is not recoverable).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 00:00:00+00:00

Hand-written like the others (no vpp imports; names wrapped in ``op.f()``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_scheduling_jobs_site_id_sites"
INDEX = "ix_scheduling_jobs_site_id"


def _is_sqlite() -> bool:
    return bool(op.get_context().dialect.name == "sqlite")


def upgrade() -> None:
    if _is_sqlite():
        # Not batch mode: recreating scheduling_jobs would drop the old table, and with
        # foreign keys on (they cannot be switched off inside the migration's transaction)
        # that sets every schedules.job_id to NULL. SQLite adds a column with an inline
        # REFERENCES clause in place (Alembic's add_column would ask for batch mode).
        op.execute(
            "ALTER TABLE scheduling_jobs ADD COLUMN site_id INTEGER "
            "REFERENCES sites (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("scheduling_jobs", sa.Column("site_id", sa.Integer(), nullable=True))
        op.create_foreign_key(op.f(FK), "scheduling_jobs", "sites", ["site_id"], ["id"],
                              ondelete="SET NULL")
    op.create_index(op.f(INDEX), "scheduling_jobs", ["site_id"])


def downgrade() -> None:
    op.drop_index(op.f(INDEX), table_name="scheduling_jobs")
    if not _is_sqlite():
        op.drop_constraint(op.f(FK), "scheduling_jobs", type_="foreignkey")
    op.drop_column("scheduling_jobs", "site_id")  # SQLite >= 3.35 drops a plain column
