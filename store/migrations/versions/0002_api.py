"""API: users, API tokens, portfolios; portfolio and attempt count of scheduling jobs.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00+00:00

Hand-written like 0001 (no vpp imports; names wrapped in ``op.f()``). On SQLite the new
foreign-key column of ``scheduling_jobs`` needs a table copy (batch mode): SQLite cannot add a
table-level constraint, and the column-level ``REFERENCES`` of ``ADD COLUMN`` would not be
reflected with its name and ``ON DELETE`` rule. Foreign keys are enforced on vpp's SQLite
connections and cannot be switched off inside the migration's transaction, so dropping the
old copy of ``scheduling_jobs`` would set ``schedules.job_id`` to NULL: the copy saves and
restores those links.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


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
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'operator', 'viewer')", name=op.f("ck_users_role")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_users_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_users_account_id_name")),
    )
    op.create_index(op.f("ix_users_account_id"), "users", ["account_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("last_used_at", _utc(), nullable=True),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_index(op.f("ix_api_tokens_token_hash"), "api_tokens", ["token_hash"], unique=True)
    op.create_table(
        "portfolios",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("congestion_point", sa.String(255), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_portfolios_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portfolios")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_portfolios_account_id_name")),
    )
    op.create_index(op.f("ix_portfolios_account_id"), "portfolios", ["account_id"])
    op.create_table(
        "portfolio_sites",
        sa.Column("portfolio_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portfolio_id"],
            ["portfolios.id"],
            name=op.f("fk_portfolio_sites_portfolio_id_portfolios"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_portfolio_sites_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("portfolio_id", "site_id", name=op.f("pk_portfolio_sites")),
    )
    op.create_index(op.f("ix_portfolio_sites_site_id"), "portfolio_sites", ["site_id"])

    portfolio_id = sa.Column("portfolio_id", sa.Integer(), nullable=True)
    attempts = sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
    fk_name = op.f("fk_scheduling_jobs_portfolio_id_portfolios")
    if _is_sqlite():
        with (
            _schedule_links_kept(),
            op.batch_alter_table("scheduling_jobs", recreate="always") as batch,
        ):
            batch.add_column(portfolio_id)
            batch.add_column(attempts)
            batch.create_foreign_key(
                fk_name, "portfolios", ["portfolio_id"], ["id"], ondelete="SET NULL"
            )
    else:
        op.add_column("scheduling_jobs", portfolio_id)
        op.add_column("scheduling_jobs", attempts)
        op.create_foreign_key(
            fk_name, "scheduling_jobs", "portfolios", ["portfolio_id"], ["id"], ondelete="SET NULL"
        )
    op.create_index(op.f("ix_scheduling_jobs_portfolio_id"), "scheduling_jobs", ["portfolio_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_scheduling_jobs_portfolio_id"), table_name="scheduling_jobs")
    if _is_sqlite():
        with (
            _schedule_links_kept(),
            op.batch_alter_table("scheduling_jobs", recreate="always") as batch,
        ):
            batch.drop_constraint(
                op.f("fk_scheduling_jobs_portfolio_id_portfolios"), type_="foreignkey"
            )
            batch.drop_column("attempts")
            batch.drop_column("portfolio_id")
    else:
        op.drop_constraint(
            op.f("fk_scheduling_jobs_portfolio_id_portfolios"),
            "scheduling_jobs",
            type_="foreignkey",
        )
        op.drop_column("scheduling_jobs", "attempts")
        op.drop_column("scheduling_jobs", "portfolio_id")
    op.drop_table("portfolio_sites")
    op.drop_table("portfolios")
    op.drop_table("api_tokens")
    op.drop_table("users")
