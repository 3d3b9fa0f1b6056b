"""Accounts stay apart in UFTP too: every UFTP message belongs to the account of the peer it
came from or went to, and cross-account operations need the explicit platform-admin role.

* ``uftp_messages.account_id`` (SET NULL when the account goes), filled from the account
  that registered the sender (inbound) or the recipient (outbound).
* ``users.platform_admin``: given to the admins of the platform account (the top-level
  consultancy ``vpp serve`` creates on first start), who so far saw every peer implicitly.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 00:00:00+00:00

Hand-written like the others (no vpp imports; names wrapped in ``op.f()``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_uftp_messages_account_id_accounts"
INDEX = "ix_uftp_messages_account_id"


def _is_sqlite() -> bool:
    return bool(op.get_context().dialect.name == "sqlite")


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("platform_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.execute(
        "UPDATE users SET platform_admin = TRUE WHERE role = 'admin' AND account_id IN "
        "(SELECT id FROM accounts WHERE kind = 'consultancy' AND parent_account_id IS NULL)"
    )

    account_id = sa.Column("account_id", sa.Integer(), nullable=True)
    if _is_sqlite():
        # SQLite adds a foreign key only by copying the table (nothing refers to this one)
        with op.batch_alter_table("uftp_messages", recreate="always") as batch:
            batch.add_column(account_id)
            batch.create_foreign_key(op.f(FK), "accounts", ["account_id"], ["id"],
                                     ondelete="SET NULL")
    else:
        op.add_column("uftp_messages", account_id)
        op.create_foreign_key(op.f(FK), "uftp_messages", "accounts", ["account_id"], ["id"],
                              ondelete="SET NULL")
    op.create_index(op.f(INDEX), "uftp_messages", ["account_id"])
    op.execute(
        "UPDATE uftp_messages SET account_id = (SELECT p.account_id FROM uftp_participants p "
        "WHERE p.domain = CASE WHEN uftp_messages.direction = 'in' "
        "THEN uftp_messages.sender_domain ELSE uftp_messages.recipient_domain END)"
    )


def downgrade() -> None:
    op.drop_index(op.f(INDEX), table_name="uftp_messages")
    if _is_sqlite():
        with op.batch_alter_table("uftp_messages", recreate="always") as batch:
            batch.drop_constraint(op.f(FK), type_="foreignkey")
            batch.drop_column("account_id")
    else:
        op.drop_constraint(op.f(FK), "uftp_messages", type_="foreignkey")
        op.drop_column("uftp_messages", "account_id")
    op.drop_column("users", "platform_admin")  # SQLite >= 3.35 drops a plain column in place
