"""Tests of store (models, migrations, repository) and vpp.settings.

Every database test runs on SQLite (a temporary file) and on PostgreSQL (a fresh schema in the
``test`` database at 127.0.0.1:5432, dropped afterwards): the fixtures are in
``db_fixtures.py``. Expected values are written out literally or derived from the inputs with
plain datetime arithmetic, never read back from the code under test.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Engine,
    Integer,
    MetaData,
    String,
    delete,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from store import checkpoints
from store import db as store_db
from store import repository as repo
from store.tables import (
    Account,
    AdmmCheckpoint,
    Base,
    Device,
    Schedule,
    SchedulingJob,
    Sensor,
    Site,
    TimedValue,
)
from vpp.settings import get_settings

pytest_plugins = ["db_fixtures"]  # db_url, fresh_db_url, engine, sessions

EXPECTED_TABLES = {
    "accounts",
    "sites",
    "devices",
    "sensors",
    "timed_values",
    "scheduling_jobs",
    "schedules",
    "users",
    "api_tokens",
    "portfolios",
    "portfolio_sites",
    "annotations",
    "uftp_participants",
    "uftp_messages",
    "uftp_flex_offers",
    "uftp_commitments",
    "admm_checkpoints",
}
EXPECTED_CHECKS = {
    "accounts": {"ck_accounts_kind"},
    "devices": set(),  # device kinds are vpp.assets' (migration 0008)
    "scheduling_jobs": {"ck_scheduling_jobs_kind", "ck_scheduling_jobs_status"},
    "uftp_participants": {"ck_uftp_participants_role"},
    "uftp_messages": {"ck_uftp_messages_direction", "ck_uftp_messages_status"},
}
CET = timezone(timedelta(hours=1))
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


# --------------------------------------------------------------------------- databases


@pytest.fixture
def clean_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _seconds_ago(seconds: float = 1.0) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def _event_starts(series: pd.Series[float]) -> list[datetime]:
    return list(pd.DatetimeIndex(series.index).to_pydatetime())


def _assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# --------------------------------------------------------------------------- migrations


def _schema_diff(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def _newest_migration_file() -> str:
    """The revision of the highest-numbered file in versions/ (files are named NNNN_*.py)."""
    versions = Path(store_db.MIGRATIONS_DIR) / "versions"
    return max(p.name.split("_")[0] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))


def test_upgrade_creates_the_model_schema(fresh_db_url: str) -> None:
    store_db.upgrade(fresh_db_url)
    store_db.upgrade(fresh_db_url)  # idempotent
    engine = store_db.make_engine(fresh_db_url)
    try:
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) == EXPECTED_TABLES | {"alembic_version"}
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        assert current == _newest_migration_file()
        assert _schema_diff(engine, Base.metadata) == []
        for table, names in EXPECTED_CHECKS.items():
            assert {c["name"] for c in inspector.get_check_constraints(table)} == names
        assert {
            fk["options"].get("ondelete", "").upper()
            for fk in inspector.get_foreign_keys("devices")
        } == {"CASCADE"}
    finally:
        engine.dispose()


def test_schema_comparison_notices_differences(fresh_db_url: str) -> None:
    """Guards the test above: a model that differs from the migration must show up."""
    store_db.upgrade(fresh_db_url)
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["timed_values"].c.value.type = Integer()
    changed.tables["sites"].c.name.type = String(100)
    engine = store_db.make_engine(fresh_db_url)
    try:
        diff = _schema_diff(engine, changed)
    finally:
        engine.dispose()
    changed_columns = {(d[0][2], d[0][3]) for d in diff if isinstance(d, list)}
    assert changed_columns == {("timed_values", "value"), ("sites", "name")}


def test_downgrade_to_base_and_upgrade_again(fresh_db_url: str) -> None:
    store_db.upgrade(fresh_db_url)
    store_db.downgrade(fresh_db_url, "base")
    engine = store_db.make_engine(fresh_db_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        store_db.upgrade(engine)
        assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES | {"alembic_version"}
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- round trips


def test_account_round_trip(sessions: sessionmaker[Session]) -> None:
    before = _seconds_ago()
    with sessions.begin() as session:
        parent = repo.get_or_create_account(session, "Consult BV", kind="consultancy")
        child = repo.get_or_create_account(session, "Client één", parent=parent)
        parent_id, child_id = parent.id, child.id
    after = datetime.now(UTC)
    with sessions() as session:
        stored = session.get(Account, child_id)
        assert stored is not None
        assert (stored.name, stored.kind, stored.parent_account_id) == (
            "Client één",
            "aggregator",
            parent_id,
        )
        _assert_utc(stored.created_at)
        assert before <= stored.created_at <= after
        again = repo.get_or_create_account(session, "Consult BV", kind="consultancy")
        assert again.id == parent_id
        with pytest.raises(ValueError, match="kind"):
            repo.get_or_create_account(session, "Consult BV", kind="dso")
        with pytest.raises(ValueError, match="account kind"):
            repo.get_or_create_account(session, "Someone", kind="utility")


FLEX_CONTEXT = {
    "site-power-capacity": "25 kVA",
    "consumption-price": {"sensor": 7},
    "soc-targets": [{"datetime": "2025-01-01T07:00:00+01:00", "value": 12.5}],
    "nested": {"list": [1, 2.5, None, True, "ü"]},
}


def test_site_and_devices_round_trip(sessions: sessionmaker[Session]) -> None:
    devices: list[dict[str, Any]] = [
        {"name": "battery", "type": "storage", "flex_model": {"soc-max": "10 kWh", "eff": 0.95}},
        {"name": "boiler", "type": "heat", "capacity": "3 kW"},  # flex-model keys inline
    ]
    before = _seconds_ago()
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "Agg")
        site = repo.upsert_site(
            session,
            account,
            "home",
            FLEX_CONTEXT,
            devices,
            ean="871234567890123456",
            congestion_point="cp-7",
        )
        site_id = site.id
    after = datetime.now(UTC)
    with sessions() as session:
        stored = session.get(Site, site_id)
        assert stored is not None
        assert (stored.name, stored.ean, stored.congestion_point) == (
            "home",
            "871234567890123456",
            "cp-7",
        )
        assert stored.flex_context == {
            "site-power-capacity": "25 kVA",
            "consumption-price": {"sensor": 7},
            "soc-targets": [{"datetime": "2025-01-01T07:00:00+01:00", "value": 12.5}],
            "nested": {"list": [1, 2.5, None, True, "ü"]},
        }
        for stamp in (stored.created_at, stored.updated_at):
            _assert_utc(stamp)
            assert before <= stamp <= after
        assert [(d.name, d.type, d.flex_model) for d in stored.devices] == [
            ("battery", "storage", {"soc-max": "10 kWh", "eff": 0.95}),
            ("boiler", "heat", {"capacity": "3 kW"}),
        ]


def test_upsert_site_updates_keeps_and_removes_devices(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "Agg")
        site = repo.upsert_site(
            session,
            account,
            "home",
            {"a": 1},
            [
                {"name": "battery", "type": "storage", "flex_model": {"soc-max": 10}},
                {"name": "pv", "type": "generation", "flex_model": {}},
            ],
        )
        site_id = site.id
        battery_id = site.devices[0].id
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "Agg")
        site = repo.upsert_site(
            session,
            account,
            "home",
            {"b": 2},
            [
                {"name": "battery", "type": "storage", "flex_model": {"soc-max": 20}},
                {"name": "ev", "type": "shiftable", "flex_model": {"duration": "PT2H"}},
            ],
            ean="E1",
        )
        assert site.id == site_id
    with sessions() as session:
        stored = session.get(Site, site_id)
        assert stored is not None
        assert (stored.flex_context, stored.ean) == ({"b": 2}, "E1")
        rows = session.execute(
            select(Device.id, Device.name, Device.type, Device.flex_model)
            .where(Device.site_id == site_id)
            .order_by(Device.name)
        ).all()
        assert [tuple(row[1:]) for row in rows] == [
            ("battery", "storage", {"soc-max": 20}),
            ("ev", "shiftable", {"duration": "PT2H"}),
        ]
        assert rows[0][0] == battery_id
        assert session.scalar(select(func.count()).select_from(Site)) == 1
    with sessions() as session, pytest.raises(ValueError, match="device type"):
        repo.upsert_site(session, account, "x", {}, [{"name": "d", "type": "x" * 17}])
    with sessions() as session, pytest.raises(ValueError, match="duplicate"):
        repo.upsert_site(
            session,
            account,
            "x",
            {},
            [{"name": "d", "type": "heat"}, {"name": "d", "type": "heat"}],
        )


def _sensor(session: Session, name: str = "price") -> Sensor:
    account = repo.get_or_create_account(session, "Agg")
    return repo.get_or_create_sensor(session, account, name, "EUR/MWh", timedelta(minutes=15))


def test_sensor_round_trip(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "Agg")
        site = repo.upsert_site(session, account, "home", {}, [])
        sensor = repo.get_or_create_sensor(
            session, account, "power", "kW", timedelta(minutes=5), site=site
        )
        again = repo.get_or_create_sensor(
            session, account, "power", "kW", timedelta(minutes=5), site=site
        )
        assert again.id == sensor.id
        sensor_id, site_id = sensor.id, site.id
    with sessions() as session:
        stored = session.get(Sensor, sensor_id)
        assert stored is not None
        assert (stored.name, stored.unit, stored.resolution_seconds, stored.site_id) == (
            "power",
            "kW",
            300,
            site_id,
        )
        assert stored.resolution == timedelta(minutes=5)


def test_time_series_round_trip_with_offset_datetimes(sessions: sessionmaker[Session]) -> None:
    start = datetime(2025, 3, 30, 0, 0, tzinfo=CET)  # = 2025-03-29 23:00 UTC
    with sessions.begin() as session:
        sensor = _sensor(session)
        written = repo.save_time_series(
            session, sensor, start, timedelta(minutes=15), [1.5, -2.25, 3.0, 0.0], "user"
        )
        assert written == 4
    with sessions() as session:
        sensor = _sensor(session)
        series = repo.read_time_series(
            session, sensor, datetime(2025, 3, 29, 0, tzinfo=UTC), datetime(2025, 3, 31, tzinfo=UTC)
        )
    assert list(series) == [1.5, -2.25, 3.0, 0.0]
    assert str(pd.DatetimeIndex(series.index).tz) == "UTC"
    assert _event_starts(series) == [
        datetime(2025, 3, 29, 23, 0, tzinfo=UTC),
        datetime(2025, 3, 29, 23, 15, tzinfo=UTC),
        datetime(2025, 3, 29, 23, 30, tzinfo=UTC),
        datetime(2025, 3, 29, 23, 45, tzinfo=UTC),
    ]
    with sessions() as session:
        row = session.execute(select(TimedValue).order_by(TimedValue.event_start)).scalars().first()
        assert row is not None
        assert row.event_resolution_seconds == 900
        _assert_utc(row.event_start)
        _assert_utc(row.belief_time)


def test_read_returns_latest_belief_per_event(sessions: sessionmaker[Session]) -> None:
    t0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
    hour = timedelta(hours=1)
    early, late = datetime(2025, 5, 31, 9, tzinfo=UTC), datetime(2025, 5, 31, 18, tzinfo=UTC)
    with sessions.begin() as session:
        sensor = _sensor(session)
        # The later belief is written first: the result must not depend on insertion order.
        repo.save_time_series(session, sensor, t0, hour, [10.0, 11.0], "forecast", late)
        repo.save_time_series(session, sensor, t0, hour, [1.0, 2.0, 3.0], "user", early)
        repo.save_time_series(
            session, sensor, t0, hour, [100.0], "forecast", datetime(2025, 5, 31, 20, tzinfo=UTC)
        )
    window = (t0, t0 + 3 * hour)
    with sessions() as session:
        sensor = _sensor(session)
        latest = repo.read_time_series(session, sensor, *window)
        user_only = repo.read_time_series(session, sensor, *window, source="user")
        forecast_only = repo.read_time_series(session, sensor, *window, source="forecast")
    hours = [datetime(2025, 6, 1, h, tzinfo=UTC) for h in (12, 13, 14)]
    assert _event_starts(latest) == hours
    assert list(latest) == [100.0, 11.0, 3.0]
    assert list(user_only) == [1.0, 2.0, 3.0]
    assert list(forecast_only) == [100.0, 11.0]
    assert _event_starts(forecast_only) == hours[:2]


def test_read_window_is_half_open_and_per_sensor(sessions: sessionmaker[Session]) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=AMSTERDAM)  # = 2024-12-31 23:00 UTC
    with sessions.begin() as session:
        sensor = _sensor(session)
        other = _sensor(session, "other")
        repo.save_time_series(session, sensor, t0, timedelta(hours=1), [1.0, 2.0, 3.0], "user")
        repo.save_time_series(session, other, t0, timedelta(hours=1), [9.0, 9.0, 9.0], "user")
    with sessions() as session:
        sensor = _sensor(session)
        series = repo.read_time_series(
            session,
            sensor,
            datetime(2024, 12, 31, 23, 30, tzinfo=UTC),
            datetime(2025, 1, 1, 1, tzinfo=UTC),  # the event starting here is excluded
        )
        empty = repo.read_time_series(
            session, sensor, datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)
        )
    assert _event_starts(series) == [datetime(2025, 1, 1, 0, tzinfo=UTC)]
    assert list(series) == [2.0]
    assert len(empty) == 0
    assert str(pd.DatetimeIndex(empty.index).tz) == "UTC"


def test_nan_values_are_not_stored(sessions: sessionmaker[Session]) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    with sessions.begin() as session:
        sensor = _sensor(session)
        assert (
            repo.save_time_series(
                session, sensor, t0, timedelta(hours=1), [1.0, math.nan, 3.0], "user"
            )
            == 2
        )
        series = repo.read_time_series(session, sensor, t0, t0 + timedelta(days=1))
    assert list(series) == [1.0, 3.0]
    assert _event_starts(series) == [t0, datetime(2025, 1, 1, 2, tzinfo=UTC)]


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    naive = datetime(2025, 1, 1)
    with sessions() as session:
        sensor = _sensor(session)
        with pytest.raises(ValueError, match="timezone-aware"):
            repo.save_time_series(session, sensor, naive, timedelta(hours=1), [1.0], "user")
        with pytest.raises(ValueError, match="timezone-aware"):
            repo.read_time_series(session, sensor, naive, datetime(2025, 1, 2, tzinfo=UTC))
        session.add(Schedule(start=naive, resolution_seconds=60, values=[], unit="kW"))
        with pytest.raises(StatementError, match="naive datetime"):
            session.flush()


finite_or_infinite = st.floats(allow_nan=False, width=64)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    values=st.lists(finite_or_infinite, min_size=1, max_size=8),
    start=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=offsets
    ),
    step_minutes=st.integers(min_value=1, max_value=24 * 60),
)
def test_time_series_round_trip_property(
    sessions: sessionmaker[Session], values: list[float], start: datetime, step_minutes: int
) -> None:
    step = timedelta(minutes=step_minutes)
    name = f"s-{uuid.uuid4().hex}"
    with sessions.begin() as session:
        repo.save_time_series(session, _sensor(session, name), start, step, values, "user")
    with sessions() as session:
        series = repo.read_time_series(
            session, _sensor(session, name), start, start + len(values) * step
        )
    assert list(series) == values
    expected = [(start + i * step).astimezone(UTC) for i in range(len(values))]
    assert _event_starts(series) == expected


# --------------------------------------------------------------------------- jobs, schedules


def test_job_lifecycle_is_stored_with_timestamps(sessions: sessionmaker[Session]) -> None:
    request = {"site": "home", "start": "2025-01-01T00:00:00+01:00", "horizon": "PT24H"}
    t_created = _seconds_ago()
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "Agg")
        job_id = repo.create_job(session, "storage", request, account=account).id
        account_id = account.id
    t_queued = datetime.now(UTC)
    with sessions() as session:
        job = session.get(SchedulingJob, job_id)
        assert job is not None
        assert uuid.UUID(job.id).version == 4
        assert (job.kind, job.status, job.account_id, job.request) == (
            "storage",
            "queued",
            account_id,
            {"site": "home", "start": "2025-01-01T00:00:00+01:00", "horizon": "PT24H"},
        )
        assert (job.result, job.error, job.progress, job.started_at, job.finished_at) == (
            None,
            None,
            None,
            None,
            None,
        )
        _assert_utc(job.created_at)
        assert t_created <= job.created_at <= t_queued

    with sessions.begin() as session:
        repo.set_job_status(session, job_id, "running", progress={"step": 1, "of": 3})
    t_running = datetime.now(UTC)
    with sessions.begin() as session:
        repo.set_job_status(session, job_id, "running", progress={"step": 2, "of": 3})
    with sessions.begin() as session:
        repo.set_job_status(session, job_id, "finished", result={"schedules": [1, 2]})
    t_finished = datetime.now(UTC)

    with sessions() as session:
        job = session.get(SchedulingJob, job_id)
        assert job is not None
        assert (job.status, job.result, job.progress, job.error) == (
            "finished",
            {"schedules": [1, 2]},
            {"step": 2, "of": 3},
            None,
        )
        _assert_utc(job.started_at)
        _assert_utc(job.finished_at)
        assert job.started_at is not None and job.finished_at is not None
        assert t_queued <= job.started_at <= t_running <= job.finished_at <= t_finished
        # NULL in the database, not JSON 'null'
        assert (
            session.scalar(
                select(func.count()).where(
                    SchedulingJob.error.is_(None), SchedulingJob.id == job_id
                )
            )
            == 1
        )


def test_job_failure_and_forbidden_transitions(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        failed = repo.create_job(session, "portfolio", {}).id
        cancelled = repo.create_job(session, "shifting", {}).id
    with sessions.begin() as session:
        repo.set_job_status(session, failed, "running")
        repo.set_job_status(
            session, failed, "failed", error={"type": "InfeasibleError", "detail": "soc"}
        )
        repo.set_job_status(session, cancelled, "cancelled")
    with sessions() as session:
        job = session.get(SchedulingJob, failed)
        assert job is not None
        assert (job.status, job.error, job.account_id) == (
            "failed",
            {"type": "InfeasibleError", "detail": "soc"},
            None,
        )
        other = session.get(SchedulingJob, cancelled)
        assert other is not None
        assert (other.status, other.started_at) == ("cancelled", None)
        _assert_utc(other.finished_at)
        with pytest.raises(repo.InvalidJobTransitionError):
            repo.set_job_status(session, failed, "running")
        with pytest.raises(repo.InvalidJobTransitionError):
            repo.set_job_status(session, cancelled, "finished")
        with pytest.raises(ValueError, match="job status"):
            repo.set_job_status(session, failed, "paused")
        with pytest.raises(repo.JobNotFoundError):
            repo.set_job_status(session, str(uuid.uuid4()), "running")
        with pytest.raises(ValueError, match="job kind"):
            repo.create_job(session, "nap", {})


def test_schedule_round_trip(sessions: sessionmaker[Session]) -> None:
    start = datetime(2025, 10, 26, 2, 30, tzinfo=timezone(timedelta(hours=2)))  # 00:30 UTC
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "Agg")
        site = repo.upsert_site(session, account, "home", {}, [])
        job = repo.create_job(session, "storage", {"site": "home"})
        schedule = repo.save_schedule(
            session,
            site=site,
            job=job,
            device_name="battery",
            start=start,
            resolution=timedelta(minutes=15),
            values=[0.0, 1.25, -3.5, 1e-9],
            unit="kW",
        )
        schedule_id, site_id, job_id = schedule.id, site.id, job.id
    with sessions() as session:
        stored = session.get(Schedule, schedule_id)
        assert stored is not None
        assert (
            stored.site_id,
            stored.job_id,
            stored.device_name,
            stored.resolution_seconds,
            stored.values,
            stored.unit,
        ) == (site_id, job_id, "battery", 900, [0.0, 1.25, -3.5, 1e-9], "kW")
        assert stored.start == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
        _assert_utc(stored.start)
        assert stored.resolution == timedelta(minutes=15)
        with pytest.raises(ValueError, match="finite"):
            repo.save_schedule(
                session,
                site=None,
                job=None,
                device_name=None,
                start=start,
                resolution=timedelta(hours=1),
                values=[math.nan],
                unit="kW",
            )
        with pytest.raises(ValueError, match="whole number of seconds"):
            repo.save_schedule(
                session,
                site=None,
                job=None,
                device_name=None,
                start=start,
                resolution=timedelta(milliseconds=1500),
                values=[1.0],
                unit="kW",
            )


# --------------------------------------------------------------------------- constraints


def _duplicate_account(session: Session) -> None:
    session.add_all([Account(name="dup"), Account(name="dup", kind="dso")])


def _duplicate_site(session: Session) -> None:
    account = Account(name="a")
    session.add_all([Site(account=account, name="s"), Site(account=account, name="s")])


def _duplicate_device(session: Session) -> None:
    site = Site(account=Account(name="a"), name="s")
    session.add_all(
        [Device(site=site, name="d", type="heat"), Device(site=site, name="d", type="storage")]
    )


def _duplicate_belief(session: Session) -> None:
    sensor = _sensor(session)
    t = datetime(2025, 1, 1, tzinfo=UTC)
    repo.save_time_series(session, sensor, t, timedelta(hours=1), [1.0], "user", t)
    repo.save_time_series(session, sensor, t, timedelta(hours=1), [2.0], "user", t)


def _bad_account_kind(session: Session) -> None:
    session.add(Account(name="x", kind="utility"))


def _missing_device_type(session: Session) -> None:
    session.add(Device(site=Site(account=Account(name="a"), name="s"), name="d", type=None))


def _bad_job_status(session: Session) -> None:
    session.add(SchedulingJob(id="j", kind="storage", status="paused", request={}))


def _dangling_device(session: Session) -> None:
    session.execute(insert(Device).values(site_id=123456, name="d", type="heat", flex_model={}))


@pytest.mark.parametrize(
    "violation",
    [
        _duplicate_account,
        _duplicate_site,
        _duplicate_device,
        _duplicate_belief,
        _bad_account_kind,
        _missing_device_type,
        _bad_job_status,
        _dangling_device,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_constraints_raise_integrity_error(
    sessions: sessionmaker[Session], violation: Callable[[Session], None]
) -> None:
    with sessions() as session, pytest.raises(IntegrityError):
        violation(session)
        session.flush()


def test_same_names_are_fine_in_different_parents(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        first, second = Account(name="a"), Account(name="b")
        sites = [Site(account=first, name="s"), Site(account=second, name="s")]
        session.add_all(sites)
        session.add_all([Device(site=site, name="d", type="heat") for site in sites])
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Device)) == 2


# --------------------------------------------------------------------------- deletes


def _site_with_devices(session: Session, account: Account, name: str) -> Site:
    devices = [
        {"name": "battery", "type": "storage", "flex_model": {}},
        {"name": "heat pump", "type": "heat", "flex_model": {}},
    ]
    return repo.upsert_site(session, account, name, {}, devices)


@pytest.mark.parametrize("how", ["sql", "orm"])
def test_deleting_a_site_deletes_its_devices(sessions: sessionmaker[Session], how: str) -> None:
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "Agg")
        doomed = _site_with_devices(session, account, "doomed")
        kept = _site_with_devices(session, account, "kept")
        sensor = repo.get_or_create_sensor(
            session, account, "power", "kW", timedelta(minutes=15), site=doomed
        )
        schedule = repo.save_schedule(
            session,
            site=doomed,
            job=None,
            device_name="battery",
            start=datetime(2025, 1, 1, tzinfo=UTC),
            resolution=timedelta(hours=1),
            values=[1.0],
            unit="kW",
        )
        doomed_id, kept_id, sensor_id, schedule_id = doomed.id, kept.id, sensor.id, schedule.id
    with sessions.begin() as session:
        if how == "sql":  # exercises ON DELETE in the database itself
            session.execute(delete(Site).where(Site.id == doomed_id))
        else:
            site = session.get(Site, doomed_id)
            assert site is not None
            session.delete(site)
    with sessions() as session:
        names_by_site = session.execute(
            select(Device.site_id, Device.name).order_by(Device.site_id, Device.name)
        ).all()
        assert [tuple(row) for row in names_by_site] == [
            (kept_id, "battery"),
            (kept_id, "heat pump"),
        ]
        assert session.get(Site, doomed_id) is None
        orphan_sensor = session.get(Sensor, sensor_id)
        orphan_schedule = session.get(Schedule, schedule_id)
        assert orphan_sensor is not None and orphan_sensor.site_id is None
        assert orphan_schedule is not None and orphan_schedule.site_id is None


def test_deleting_an_account_cascades_in_the_database(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "Agg")
        _site_with_devices(session, account, "home")
        sensor = _sensor(session)
        t = datetime(2025, 1, 1, tzinfo=UTC)
        repo.save_time_series(session, sensor, t, timedelta(hours=1), [1.0, 2.0], "user")
        job_id = repo.create_job(session, "storage", {}, account=account).id
        account_id = account.id
    with sessions.begin() as session:
        session.execute(delete(Account).where(Account.id == account_id))
    with sessions() as session:
        for model in (Site, Device, Sensor, TimedValue):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model
        job = session.get(SchedulingJob, job_id)
        assert job is not None and job.account_id is None


# --------------------------------------------------------------------------- settings, engine


def test_default_database_is_a_sqlite_file_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_settings: None
) -> None:
    data_dir = tmp_path / "data" / "dir"
    monkeypatch.setenv("VPP_DATA_DIR", str(data_dir))
    monkeypatch.delenv("VPP_DATABASE_URL", raising=False)
    assert get_settings().database_url == f"sqlite:///{tmp_path}/data/dir/vpp.db"
    assert get_settings().data_dir == data_dir
    assert not data_dir.exists()  # reading settings creates nothing
    engine = store_db.make_engine()
    try:
        assert data_dir.is_dir()
        store_db.upgrade(engine)
        assert (data_dir / "vpp.db").is_file()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_data_dir_defaults_to_home_and_url_can_be_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_settings: None
) -> None:
    monkeypatch.delenv("VPP_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VPP_DATABASE_URL", "postgresql+psycopg2://u@h/db")
    settings_ = get_settings()
    assert settings_.data_dir == tmp_path / ".local" / "share" / "vpp"
    assert settings_.database_url == "postgresql+psycopg2://u@h/db"
    assert get_settings() is settings_  # cached


# --------------------------------------------------------------------------- ADMM checkpoints


def test_checkpoints_save_replace_load_and_delete(sessions: sessionmaker[Session]) -> None:
    first = bytes(range(256)) * 40  # every byte value, NUL included: binary, not text
    second = b"\x00second\xff"
    with sessions.begin() as session:
        assert checkpoints.load(session, "job-1") is None
        checkpoints.save(session, "job-1", first)
        checkpoints.save(session, "warm/abc", second)
    with sessions.begin() as session:
        assert checkpoints.load(session, "job-1") == first
        checkpoints.save(session, "job-1", second)  # an upsert, not a second row
    with sessions.begin() as session:
        assert checkpoints.load(session, "job-1") == second
        rows = session.scalars(select(AdmmCheckpoint).order_by(AdmmCheckpoint.key)).all()
        assert [row.key for row in rows] == ["job-1", "warm/abc"]
        _assert_utc(rows[0].updated_at)
        assert checkpoints.delete(session, "job-1") is True
        assert checkpoints.delete(session, "job-1") is False
    with sessions.begin() as session:
        assert checkpoints.load(session, "job-1") is None
        assert checkpoints.load(session, "warm/abc") == second


def test_a_failed_transaction_keeps_the_previous_checkpoint(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        checkpoints.save(session, "job-2", b"old")
    with pytest.raises(RuntimeError), sessions.begin() as session:
        checkpoints.save(session, "job-2", b"new")
        raise RuntimeError("the coordinator died mid-save")
    with sessions.begin() as session:
        assert checkpoints.load(session, "job-2") == b"old"


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_checkpoint_keys_are_checked(sessions: sessionmaker[Session], key: str) -> None:
    with sessions.begin() as session, pytest.raises(ValueError, match="checkpoint key"):
        checkpoints.save(session, key, b"x")
