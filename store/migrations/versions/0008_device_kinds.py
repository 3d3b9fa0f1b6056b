"""Device kinds are vpp's, not the schema's: drop the CHECK constraint on ``devices.type``.

* ``ck_devices_type`` (``type IN ('storage', 'heat', 'shiftable', 'generation',
  'inflexible')``) goes. The kinds are the asset registry's (``vpp.assets``); requests are
  validated against it before a device is stored, so adding a kind needs no migration.
  ``devices.type`` stays ``VARCHAR(16)`` and ``NOT NULL``.
* Downgrading puts the constraint back; it fails if a device of another kind is stored
  (delete or change those devices first).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 00:00:00+00:00

Hand-written like the others (no vpp imports; names wrapped in ``op.f()``).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_devices_type"
KINDS_0001 = "type IN ('storage', 'heat', 'shiftable', 'generation', 'inflexible')"


def _is_sqlite() -> bool:
    return bool(op.get_context().dialect.name == "sqlite")


def upgrade() -> None:
    if _is_sqlite():
        # SQLite drops a constraint only by copying the table (batch mode reflects the rest:
        # the unique constraint, the foreign key to sites, the index). Nothing refers to
        # devices, so dropping the old table cascades nowhere.
        with op.batch_alter_table("devices", recreate="always") as batch:
            batch.drop_constraint(op.f(CHECK), type_="check")
    else:
        op.drop_constraint(op.f(CHECK), "devices", type_="check")


def downgrade() -> None:
    if _is_sqlite():
        with op.batch_alter_table("devices", recreate="always") as batch:
            batch.create_check_constraint(op.f(CHECK), KINDS_0001)
    else:
        op.create_check_constraint(op.f(CHECK), "devices", KINDS_0001)
