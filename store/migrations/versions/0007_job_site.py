"""A job remembers the stored site it scheduled, so the job list can filter by site.

* ``scheduling_jobs.site_id`` (SET NULL when the site goes), indexed; jobs queued before
  this revision keep NULL (their requests were expanded, the site is not recoverable).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 00:00:00+00:00

Hand-written like the others (no vpp imports; names wrapped in ``op.f()``). On SQLite the
foreign key needs a copy of ``scheduling_jobs`` (batch mode), as in 0002: the column-level
``REFERENCES`` of ``ADD COLUMN`` is not reflected with its name and ``ON DELETE`` rule, and
dropping the old copy with foreign keys on (they cannot be switched off inside the
migration's transaction) would set ``schedules.job_id`` to NULL, so those links are saved
and restored around the copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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


@contextmanager
def _schedule_links_kept() -> Iterator[None]:
    """Save ``schedules.job_id`` before ``scheduling_jobs`` is copied (SQLite) and restore it."""
    op.execute(
        "CREATE TEMPORARY TABLE _vpp_schedule_job_links AS "
        "SELECT id, job_id FROM schedules WHERE job_id IS NOT NULL"
    )
    yield
    op.execute(
        "UPDATE schedules SET job_id = (SELECT saved.job_id FROM _vpp_schedule_job_links "
        "AS saved WHERE saved.id = schedules.id) "
        "WHERE id IN (SELECT id FROM _vpp_schedule_job_links)"
    )
    op.execute("DROP TABLE _vpp_schedule_job_links")


def upgrade() -> None:
    site_id = sa.Column("site_id", sa.Integer(), nullable=True)
    if _is_sqlite():
        with (
            _schedule_links_kept(),
            op.batch_alter_table("scheduling_jobs", recreate="always") as batch,
        ):
            batch.add_column(site_id)
            batch.create_foreign_key(op.f(FK), "sites", ["site_id"], ["id"], ondelete="SET NULL")
    else:
        op.add_column("scheduling_jobs", site_id)
        op.create_foreign_key(op.f(FK), "scheduling_jobs", "sites", ["site_id"], ["id"],
                              ondelete="SET NULL")
    op.create_index(op.f(INDEX), "scheduling_jobs", ["site_id"])


def downgrade() -> None:
    op.drop_index(op.f(INDEX), table_name="scheduling_jobs")
    if _is_sqlite():
        with (
            _schedule_links_kept(),
            op.batch_alter_table("scheduling_jobs", recreate="always") as batch,
        ):
            batch.drop_constraint(op.f(FK), type_="foreignkey")
            batch.drop_column("site_id")
    else:
        op.drop_constraint(op.f(FK), "scheduling_jobs", type_="foreignkey")
        op.drop_column("scheduling_jobs", "site_id")
