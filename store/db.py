"""Engines, sessions and migrations.

Typical use::

    engine = make_engine()            # VPP_DATABASE_URL, or the SQLite file in VPP_DATA_DIR
    upgrade(engine)                   # run the Alembic migrations to head
    Session = session_factory(engine)
    with Session.begin() as session:  # commits on success, rolls back on error
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from vpp.settings import get_settings

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "downgrade",
    "make_engine",
    "session_factory",
    "upgrade",
]


logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or ``None`` for in-memory / URI databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        # the API and the job runner are separate processes: WAL lets readers and one
        # writer work at once, and the busy timeout makes a writer wait instead of failing
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
    finally:
        cursor.close()


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: ``get_settings().database_url``).

    SQLite: the database file's directory is created if missing and foreign keys are enforced
    on every connection (SQLite ignores them otherwise). ``kwargs`` go to ``create_engine``.
    """
    parsed = make_url(url if url is not None else get_settings().database_url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    logger.debug("created engine for %s", parsed.render_as_string(hide_password=True))
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session maker bound to ``engine``; objects stay usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(connection: Connection | None = None) -> Config:
    """An in-code Alembic config for vpp's migrations (no ``alembic.ini`` needed).

    With ``connection`` the migrations run on it (``config.attributes["connection"]``);
    without, ``env.py`` connects to ``sqlalchemy.url`` if set, else to the configured database.
    """
    config = Config()
    # ConfigParser interpolation: a literal '%' in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine_or_url: Engine | str | URL | None = None, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the latest) in one transaction."""
    _migrate(engine_or_url, command.upgrade, revision)


def downgrade(engine_or_url: Engine | str | URL | None, revision: str) -> None:
    """Migrate the database down to ``revision`` (``"base"`` drops every vpp table)."""
    _migrate(engine_or_url, command.downgrade, revision)


def _migrate(
    engine_or_url: Engine | str | URL | None,
    action: Callable[[Config, str], None],
    revision: str,
) -> None:
    owned = not isinstance(engine_or_url, Engine)
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
    try:
        with engine.begin() as connection:
            logger.info("migrating the %s database to %s", engine.dialect.name, revision)
            action(alembic_config(connection), revision)
    finally:
        if owned:
            engine.dispose()
