"""GOPACS redispatch bids are jobs too: the job kind ``redispatch-bid``.

* ``ck_scheduling_jobs_kind`` admits ``redispatch-bid`` beside ``storage``, ``shifting`` and
  ``portfolio``: a bid is stored as a finished job (its response as the result, the schedule
  that delivers it as schedule rows) by the job service, as every other kind's outcome.
* Downgrading restores the old constraint; it fails while bid jobs are stored (delete them
  first).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 00:00:00+00:00

Hand-written like the others (no vpp imports; names wrapped in ``op.f()``). On SQLite a check
constraint changes only with a copy of ``scheduling_jobs``; as in 0002 and 0007 the links of
``schedules.job_id`` are saved and restored around the copy (dropping the old copy with
foreign keys on would set them to NULL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_scheduling_jobs_kind"
KINDS_0008 = "kind IN ('storage', 'shifting', 'portfolio')"
KINDS_0009 = "kind IN ('storage', 'shifting', 'portfolio', 'redispatch-bid')"


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
    _kinds(KINDS_0009)


def downgrade() -> None:
    _kinds(KINDS_0008)
