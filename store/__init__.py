"""vpp's storage layer: SQLAlchemy models, Alembic migrations and repository functions.

This package imports nothing from vpp except :mod:`vpp.settings`::

    from store import make_engine, session_factory, upgrade
    from store import repository as repo

    engine = make_engine()        # VPP_DATABASE_URL or sqlite:///<VPP_DATA_DIR>/vpp.db
    upgrade(engine)               # Alembic migrations to head
    with session_factory(engine).begin() as session:
        job = repo.create_job(session, "storage", {"site": "demo"})
"""

from store.db import alembic_config, downgrade, make_engine, session_factory, upgrade
from store.tables import (
    Account,
    Annotation,
    ApiToken,
    Base,
    Device,
    Portfolio,
    Schedule,
    SchedulingJob,
    Sensor,
    Site,
    TimedValue,
    User,
    portfolio_sites,
)

__all__ = [
    "Account",
    "Annotation",
    "ApiToken",
    "Base",
    "Device",
    "Portfolio",
    "Schedule",
    "SchedulingJob",
    "Sensor",
    "Site",
    "TimedValue",
    "User",
    "alembic_config",
    "downgrade",
    "make_engine",
    "portfolio_sites",
    "session_factory",
    "upgrade",
]
