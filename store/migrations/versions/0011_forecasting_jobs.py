"""Forecasts are jobs too: the job kind ``forecasting``.

* ``ck_scheduling_jobs_kind`` admits ``forecasting``: ``POST /api/v1/forecasting-job`` stores
  each forecast as a finished job (its request, and its point forecast and interval as the
  result) beside the beliefs it writes to the sensor.
* Downgrading restores the old constraint; it fails while forecasting jobs are stored
  (delete them first).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 00:00:00+00:00

Hand-written like 0009, whose SQLite copy of ``scheduling_jobs`` (keeping the links of
``schedules.job_id``) it repeats.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_scheduling_jobs_kind"
KINDS_0010 = "kind IN ('storage', 'shifting', 'portfolio', 'redispatch-bid')"
KINDS_0011 = "kind IN ('storage', 'shifting', 'portfolio', 'redispatch-bid', 'forecasting')"


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


def _kinds(condition: str) -> None:
    if _is_sqlite():
        with (
            _schedule_links_kept(),
            op.batch_alter_table("scheduling_jobs", recreate="always") as batch,
        ):
            batch.drop_constraint(op.f(CHECK), type_="check")
            batch.create_check_constraint(op.f(CHECK), condition)
    else:
        op.drop_constraint(op.f(CHECK), "scheduling_jobs", type_="check")
        op.create_check_constraint(op.f(CHECK), "scheduling_jobs", condition)


def upgrade() -> None:
    _kinds(KINDS_0011)


def downgrade() -> None:
    _kinds(KINDS_0010)
