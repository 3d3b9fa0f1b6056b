"""ADMM checkpoints in the database (table ``admm_checkpoints``): opaque bytes under a key.

The coordinator writes a job's state after every iteration under the job id and a finished
portfolio's state under its warm-start key; the bytes are ``vpp.admm.AdmmState.to_bytes()``
(this layer does not interpret them). Each function works inside the caller's session: the
caller's transaction makes a save atomic (a crash leaves the previous state, never half).
"""

from __future__ import annotations

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.tables import AdmmCheckpoint, utcnow

__all__ = ["MAX_KEY", "delete", "load", "save"]


MAX_KEY = 255  # the length of admm_checkpoints.key


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise ValueError(f"checkpoint key must be 1 to {MAX_KEY} characters, got {key!r}")


def save(session: Session, key: str, data: bytes) -> None:
    """Store ``data`` under ``key``, replacing what was there (one statement: an upsert, so
    two coordinators writing the same warm-start key at once do not collide)."""
    _check_key(key)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"checkpoint data must be bytes, got {type(data).__name__}")
    row = {"key": key, "data": bytes(data), "updated_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(AdmmCheckpoint).values(row)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[AdmmCheckpoint.key],
                set_={"data": statement.excluded.data, "updated_at": statement.excluded.updated_at},
            )
        )
    else:  # other databases: read-then-write inside the caller's transaction
        session.merge(AdmmCheckpoint(**row))
        session.flush()


def load(session: Session, key: str) -> bytes | None:
    """The bytes stored under ``key``, or ``None`` if there are none."""
    _check_key(key)
    data = session.scalar(select(AdmmCheckpoint.data).where(AdmmCheckpoint.key == key))
    return bytes(data) if data is not None else None


def delete(session: Session, key: str) -> bool:
    """Remove ``key``'s checkpoint; whether there was one."""
    _check_key(key)
    result = session.execute(sql_delete(AdmmCheckpoint).where(AdmmCheckpoint.key == key))
    return bool(getattr(result, "rowcount", 0))
