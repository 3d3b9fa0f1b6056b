"""Database fixtures shared by the store tests: SQLite and PostgreSQL, migrated to head.

Test modules load them with ``pytest_plugins = ["db_fixtures"]`` (importing the fixtures
instead would trip ruff's F811 on every test parameter of the same name).
Every database test runs on SQLite (a temporary file) and on PostgreSQL (a fresh schema in the
``test`` database at 127.0.0.1:5432, dropped afterwards). If PostgreSQL is unreachable its
tests error out, unless ``VPP_TEST_SKIP_POSTGRES=1``; ``VPP_TEST_POSTGRES_URL`` overrides the
server to use.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store import db as store_db
from store.tables import Base

POSTGRES_CANDIDATES = (
    "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg2://root@127.0.0.1:5432/test",
)


@functools.cache
def _probe_postgres() -> tuple[str | None, str]:
    """The first reachable PostgreSQL URL (or None) and the connection errors seen."""
    override = os.environ.get("VPP_TEST_POSTGRES_URL")
    errors = []
    for url in (override,) if override else POSTGRES_CANDIDATES:
        engine = create_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect():
                return url, ""
        except OperationalError as exc:
            errors.append(f"{url}: {str(exc.orig).strip()}")
        finally:
            engine.dispose()
    return None, "; ".join(errors)


def postgres_url() -> str:
    """The PostgreSQL server to test against (skips or fails the test if there is none)."""
    url, errors = _probe_postgres()
    if url is not None:
        return url
    message = f"PostgreSQL is unreachable ({errors})"
    if os.environ.get("VPP_TEST_SKIP_POSTGRES") == "1":
        pytest.skip(message)
    pytest.fail(f"{message}; set VPP_TEST_SKIP_POSTGRES=1 to skip the PostgreSQL tests")


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if backend == "sqlite":
        # A missing parent directory: make_engine must create it.
        yield f"sqlite:///{directory / 'nested' / 'vpp.db'}"
        return
    server = postgres_url()
    schema = f"vpp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per backend for the whole test session (emptied after every test)."""
    with fresh_database(request.param, tmp_path_factory.mktemp("store")) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own for one test (for the migration tests)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = store_db.make_engine(db_url)
    store_db.upgrade(engine)
    try:
        yield engine
    finally:
        with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return store_db.session_factory(engine)
