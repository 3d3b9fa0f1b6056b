"""UFTP (ShapeShifter) as the aggregator: participants, messages (inbox and outbox), the flex
offers we sent and the commitments (accepted flex orders).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 00:00:00+00:00

Hand-written like the others (no vpp imports; names wrapped in ``op.f()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["accounts.id"],
        name=op.f(f"fk_{table}_account_id_accounts"),
        ondelete="SET NULL",
    )


def upgrade() -> None:
    op.create_table(
        "uftp_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(2048), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint("role IN ('DSO', 'CRO')", name=op.f("ck_uftp_participants_role")),
        _account_fk("uftp_participants"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uftp_participants")),
        sa.UniqueConstraint("domain", name=op.f("uq_uftp_participants_domain")),
    )
    op.create_index(
        op.f("ix_uftp_participants_account_id"), "uftp_participants", ["account_id"]
    )
    op.create_table(
        "uftp_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("conversation_id", sa.String(36), nullable=True),
        sa.Column("reference_message_id", sa.String(36), nullable=True),
        sa.Column("sender_domain", sa.String(253), nullable=True),
        sa.Column("recipient_domain", sa.String(253), nullable=True),
        sa.Column("congestion_point", sa.String(255), nullable=True),
        sa.Column("duplicate", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("done_at", _utc(), nullable=True),
        sa.CheckConstraint(
            "direction IN ('in', 'out')", name=op.f("ck_uftp_messages_direction")
        ),
        sa.CheckConstraint(
            "status IN ('received', 'processing', 'processed', 'rejected', 'failed', "
            "'queued', 'sending', 'sent')",
            name=op.f("ck_uftp_messages_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uftp_messages")),
        sa.UniqueConstraint(
            "sender_domain",
            "message_id",
            "duplicate",
            name=op.f("uq_uftp_messages_sender_domain_message_id_duplicate"),
        ),
    )
    op.create_index(
        op.f("ix_uftp_messages_conversation_id"), "uftp_messages", ["conversation_id"]
    )
    op.create_index(op.f("ix_uftp_messages_status"), "uftp_messages", ["status"])
    op.create_table(
        "uftp_flex_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("flex_request_message_id", sa.String(36), nullable=True),
        sa.Column("dso_domain", sa.String(253), nullable=False),
        sa.Column("congestion_point", sa.String(255), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("start", _utc(), nullable=False),
        sa.Column("resolution_seconds", sa.Integer(), nullable=False),
        sa.Column("isps", _json(), nullable=False),
        sa.Column("baseline", _json(), nullable=False),
        sa.Column("option_reference", sa.String(64), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        _account_fk("uftp_flex_offers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uftp_flex_offers")),
        sa.UniqueConstraint("message_id", name=op.f("uq_uftp_flex_offers_message_id")),
    )
    op.create_index(
        op.f("ix_uftp_flex_offers_account_id"), "uftp_flex_offers", ["account_id"]
    )
    op.create_index(
        op.f("ix_uftp_flex_offers_congestion_point"), "uftp_flex_offers", ["congestion_point"]
    )
    op.create_table(
        "uftp_commitments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_message_id", sa.String(36), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("dso_domain", sa.String(253), nullable=False),
        sa.Column("congestion_point", sa.String(255), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("order_reference", sa.String(255), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("start", _utc(), nullable=False),
        sa.Column("end", _utc(), nullable=False),
        sa.Column("resolution_seconds", sa.Integer(), nullable=False),
        sa.Column("isps", _json(), nullable=False),
        sa.Column("lower", _json(), nullable=False),
        sa.Column("upper", _json(), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        _account_fk("uftp_commitments"),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["uftp_flex_offers.id"],
            name=op.f("fk_uftp_commitments_offer_id_uftp_flex_offers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uftp_commitments")),
        sa.UniqueConstraint(
            "order_message_id", name=op.f("uq_uftp_commitments_order_message_id")
        ),
        sa.UniqueConstraint("offer_id", name=op.f("uq_uftp_commitments_offer_id")),
    )
    op.create_index(
        op.f("ix_uftp_commitments_account_id"), "uftp_commitments", ["account_id"]
    )
    op.create_index(
        op.f("ix_uftp_commitments_congestion_point"), "uftp_commitments", ["congestion_point"]
    )


def downgrade() -> None:
    op.drop_table("uftp_commitments")
    op.drop_table("uftp_flex_offers")
    op.drop_table("uftp_messages")
    op.drop_table("uftp_participants")
