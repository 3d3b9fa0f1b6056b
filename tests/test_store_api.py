"""Tests of the store's API support: migration 0002, users and tokens, the admin bootstrap,
account visibility, portfolios, listing, and the job queue (claiming and crash recovery).

Like ``test_store.py`` every database test runs on SQLite and on PostgreSQL (fixtures in
``db_fixtures.py``). Expected values are written out literally or computed independently of
the code under test (e.g. the SHA-256 of a token with ``hashlib``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Engine,
    MetaData,
    bindparam,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store import db as store_db
from store import repository as repo
from store.tables import (
    Account,
    ApiToken,
    Base,
    Portfolio,
    SchedulingJob,
    Sensor,
    Site,
    User,
    UTCDateTime,
    portfolio_sites,
)

pytest_plugins = ["db_fixtures"]  # db_url, fresh_db_url, engine, sessions

NEW_TABLES = {"users", "api_tokens", "portfolios", "portfolio_sites"}
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _schema_diff(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _seconds_ago(seconds: float = 1.0) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


# --------------------------------------------------------------------------- migration 0002


def test_upgrade_to_head_matches_the_models(fresh_db_url: str) -> None:
    store_db.upgrade(fresh_db_url)
    engine = store_db.make_engine(fresh_db_url)
    try:
        assert _revision(engine) == max(
            p.name[:4] for p in (Path(store_db.MIGRATIONS_DIR) / "versions").glob("[0-9]*_*.py")
        )
        assert _schema_diff(engine, Base.metadata) == []
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= NEW_TABLES
        assert {c["name"] for c in inspector.get_check_constraints("users")} == {"ck_users_role"}
        assert {c["name"] for c in inspector.get_check_constraints("scheduling_jobs")} == {
            "ck_scheduling_jobs_kind",
            "ck_scheduling_jobs_status",
        }
        token_indexes = {
            index["name"]: (index["column_names"], bool(index["unique"]))
            for index in inspector.get_indexes("api_tokens")
        }
        assert token_indexes["ix_api_tokens_token_hash"] == (["token_hash"], True)
        ondelete = {
            (table, fk["constrained_columns"][0]): fk["options"].get("ondelete", "").upper()
            for table in ("users", "api_tokens", "portfolios", "portfolio_sites", "scheduling_jobs")
            for fk in inspector.get_foreign_keys(table)
        }
        assert ondelete == {
            ("users", "account_id"): "CASCADE",
            ("api_tokens", "user_id"): "CASCADE",
            ("portfolios", "account_id"): "CASCADE",
            ("portfolio_sites", "portfolio_id"): "CASCADE",
            ("portfolio_sites", "site_id"): "CASCADE",
            ("scheduling_jobs", "account_id"): "SET NULL",
            ("scheduling_jobs", "portfolio_id"): "SET NULL",
            ("scheduling_jobs", "site_id"): "SET NULL",
        }
        assert {
            "portfolio_id",
            "site_id",
        } == set(inspector.get_pk_constraint("portfolio_sites")["constrained_columns"])
    finally:
        engine.dispose()


def _insert_0001_rows(engine: Engine) -> None:
    """An account, a site, a job and a schedule of that job, written at revision 0001."""
    t = bindparam("t", T0, type_=UTCDateTime())
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO accounts (id, name, kind, created_at) "
                "VALUES (1, 'a', 'aggregator', :t)"
            ).bindparams(t)
        )
        connection.execute(
            text(
                "INSERT INTO sites (id, account_id, name, flex_context, created_at, updated_at) "
                "VALUES (1, 1, 'home', '{}', :t, :t)"
            ).bindparams(t)
        )
        connection.execute(
            text(
                "INSERT INTO scheduling_jobs (id, account_id, kind, status, request, created_at) "
                "VALUES ('job-1', 1, 'storage', 'finished', '{\"site\": \"home\"}', :t)"
            ).bindparams(t)
        )
        connection.execute(
            text(
                'INSERT INTO schedules (id, job_id, site_id, start, resolution_seconds, "values", '
                "unit, created_at) VALUES (1, 'job-1', 1, :t, 900, '[1.5]', 'kW', :t)"
            ).bindparams(t)
        )


def _schedule_job_links(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text("SELECT id, job_id FROM schedules"))]


def test_upgrade_keeps_existing_jobs_and_downgrade_restores_0001(fresh_db_url: str) -> None:
    store_db.upgrade(fresh_db_url, "0001")
    engine = store_db.make_engine(fresh_db_url)
    try:
        _insert_0001_rows(engine)
        store_db.upgrade(engine)
        assert _schema_diff(engine, Base.metadata) == []
        with store_db.session_factory(engine)() as session:
            job = session.get(SchedulingJob, "job-1")
            assert job is not None
            assert (job.status, job.request, job.attempts, job.portfolio_id, job.created_at) == (
                "finished",
                {"site": "home"},
                0,
                None,
                T0,
            )
        # On SQLite the copy of scheduling_jobs must not orphan the schedules.
        assert _schedule_job_links(engine) == [(1, "job-1")]

        store_db.downgrade(engine, "0001")
        assert _revision(engine) == "0001"
        inspector = inspect(engine)
        assert not NEW_TABLES & set(inspector.get_table_names())
        assert "attempts" not in {c["name"] for c in inspector.get_columns("scheduling_jobs")}
        assert "portfolio_id" not in {c["name"] for c in inspector.get_columns("scheduling_jobs")}
        assert {c["name"] for c in inspector.get_check_constraints("scheduling_jobs")} == {
            "ck_scheduling_jobs_kind",
            "ck_scheduling_jobs_status",
        }
        assert {i["name"] for i in inspector.get_indexes("scheduling_jobs")} == {
            "ix_scheduling_jobs_account_id",
            "ix_scheduling_jobs_status",
        }
        assert _schedule_job_links(engine) == [(1, "job-1")]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT id, status FROM scheduling_jobs")).all() == [
                ("job-1", "finished")
            ]

        store_db.upgrade(engine)
        assert _schema_diff(engine, Base.metadata) == []
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- users, tokens


def _user(session: Session, account_name: str = "Agg", role: str = "operator") -> User:
    account = repo.get_or_create_account(session, account_name)
    return repo.create_user(session, account, f"user of {account_name}", role)


def test_create_user_checks_role_and_name(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        user = _user(session, role="viewer")
        user_id, account_id = user.id, user.account_id
    with sessions() as session:
        stored = session.get(User, user_id)
        assert stored is not None
        assert (stored.name, stored.role, stored.account_id) == (
            "user of Agg",
            "viewer",
            account_id,
        )
        account = session.get(Account, account_id)
        assert account is not None
        with pytest.raises(repo.RecordExistsError):
            repo.create_user(session, account, "user of Agg", "admin")
        with pytest.raises(ValueError, match="user role"):
            repo.create_user(session, account, "root", "superuser")
    with sessions() as session, pytest.raises(IntegrityError):
        session.add(User(account_id=account_id, name="x", role="superuser"))
        session.flush()


def test_tokens_are_stored_only_as_their_sha256(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        user = _user(session)
        row, token = repo.issue_token(session, user, "laptop")
        _, other = repo.issue_token(session, user, "ci")
        row_id = row.id
    assert token.startswith("vpp_")
    assert len(token) == len("vpp_") + 43  # 32 random bytes, URL-safe base64 without padding
    assert token != other
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert repo.hash_token(token) == digest
    with sessions() as session:
        stored = session.get(ApiToken, row_id)
        assert stored is not None
        assert (stored.name, stored.token_hash, stored.last_used_at, stored.revoked_at) == (
            "laptop",
            digest,
            None,
            None,
        )
        rows = session.execute(select(ApiToken.__table__)).all()
    assert len(rows) == 2
    for value in (value for row_ in rows for value in row_):
        assert token not in str(value) and token[4:] not in str(value)
        assert other not in str(value) and other[4:] not in str(value)


def test_user_for_token_loads_the_account_and_throttles_last_used(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        user = _user(session, "Consult BV")
        row, token = repo.issue_token(session, user, "laptop")
        user_id, row_id = user.id, row.id
    before = _seconds_ago()
    with sessions.begin() as session:
        found = repo.user_for_token(session, token)
    after = datetime.now(UTC)
    assert found is not None
    # The session is closed: the account must have been loaded with the user.
    assert (found.id, found.account.name) == (user_id, "Consult BV")
    with sessions() as session:
        stored = session.get(ApiToken, row_id)
        assert stored is not None and stored.last_used_at is not None
        first_use = stored.last_used_at
    assert before <= first_use <= after

    with sessions.begin() as session:  # again within the minute: no write
        assert repo.user_for_token(session, token) is not None
        assert not session.dirty
    with sessions() as session:
        stored = session.get(ApiToken, row_id)
        assert stored is not None and stored.last_used_at == first_use

    with sessions.begin() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == row_id)
            .values(last_used_at=first_use - timedelta(minutes=2))
        )
    before = _seconds_ago()
    with sessions.begin() as session:
        assert repo.user_for_token(session, token) is not None
    with sessions() as session:
        stored = session.get(ApiToken, row_id)
        assert stored is not None and stored.last_used_at is not None
        assert stored.last_used_at >= before

    with sessions() as session:
        assert repo.user_for_token(session, "vpp_not-a-token") is None
        assert repo.user_for_token(session, "") is None
        assert repo.user_for_token(session, repo.hash_token(token)) is None


def test_revoked_tokens_no_longer_authenticate(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        user = _user(session)
        revoked, revoked_token = repo.issue_token(session, user, "lost phone")
        _, kept_token = repo.issue_token(session, user, "laptop")
        revoked_id = revoked.id
    before = _seconds_ago()
    with sessions.begin() as session:
        repo.revoke_token(session, revoked_id)
    with sessions.begin() as session:
        first = repo.revoke_token(session, revoked_id).revoked_at  # twice: no change
    with sessions() as session:
        stored = session.get(ApiToken, revoked_id)
        assert stored is not None and stored.revoked_at is not None
        assert stored.revoked_at == first and stored.revoked_at >= before
        assert repo.user_for_token(session, revoked_token) is None
        assert repo.user_for_token(session, kept_token) is not None
        with pytest.raises(repo.RecordNotFoundError):
            repo.revoke_token(session, 123456)


def test_deleting_users_and_accounts_cascades_to_tokens(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        first, second = _user(session, "A"), _user(session, "B")
        repo.issue_token(session, first, "t1")
        repo.issue_token(session, second, "t2")
        first_id, second_account_id = first.id, second.account_id
    with sessions.begin() as session:
        session.execute(delete(User).where(User.id == first_id))
    with sessions() as session:
        assert session.scalars(select(ApiToken.name)).all() == ["t2"]
    with sessions.begin() as session:
        session.execute(delete(Account).where(Account.id == second_account_id))
    with sessions() as session:
        assert (_count(session, User), _count(session, ApiToken)) == (0, 0)


# --------------------------------------------------------------------------- admin bootstrap


def test_ensure_admin_bootstraps_once(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        user, token = repo.ensure_admin(session)
        user_id = user.id
    assert token is not None and token.startswith("vpp_")
    with sessions.begin() as session:
        again, no_token = repo.ensure_admin(session)
        assert (again.id, no_token) == (user_id, None)
    with sessions() as session:
        found = repo.user_for_token(session, token)
        assert found is not None
        assert (found.id, found.name, found.role) == (user_id, "admin", "admin")
        assert (found.account.name, found.account.kind) == ("admin", "consultancy")
        counts = [_count(session, model) for model in (Account, User, ApiToken)]
        assert counts == [1, 1, 1]


def test_ensure_admin_with_a_configured_token(sessions: sessionmaker[Session]) -> None:
    configured = "s3cret-admin-token-from-the-environment"
    with sessions.begin() as session:
        user, token = repo.ensure_admin(
            session, account_name="Ops", user_name="root", token=configured
        )
        user_id = user.id
    assert token == configured
    for _ in range(2):  # idempotent: no second token row
        with sessions.begin() as session:
            again, token = repo.ensure_admin(
                session, account_name="Ops", user_name="root", token=configured
            )
            assert (again.id, token) == (user_id, configured)
    with sessions() as session:
        assert session.scalars(select(ApiToken.token_hash)).all() == [
            hashlib.sha256(configured.encode()).hexdigest()
        ]
        found = repo.user_for_token(session, configured)
        assert found is not None and (found.id, found.role) == (user_id, "admin")
        assert (_count(session, Account), _count(session, User)) == (1, 1)


def test_ensure_admin_adds_a_configured_token_to_an_existing_admin(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        user, first_token = repo.ensure_admin(session)
        user_id = user.id
    assert first_token is not None
    with sessions.begin() as session:
        again, token = repo.ensure_admin(session, token="configured-later-0123456789")
        assert (again.id, token) == (user_id, "configured-later-0123456789")
    with sessions() as session:
        assert _count(session, ApiToken) == 2
        for plain in (first_token, "configured-later-0123456789"):
            found = repo.user_for_token(session, plain)
            assert found is not None and found.id == user_id


def test_ensure_admin_refuses_unusable_tokens(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        user, _ = repo.ensure_admin(session, token="revoked-admin-token-0123456789")
        row = session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
        assert row is not None
        repo.revoke_token(session, row.id)
        _, someone_elses = repo.issue_token(session, _user(session), "theirs")
    with sessions() as session:
        with pytest.raises(ValueError, match="revoked"):
            repo.ensure_admin(session, token="revoked-admin-token-0123456789")
        with pytest.raises(ValueError, match="another user"):
            repo.ensure_admin(session, token=someone_elses)
        with pytest.raises(ValueError, match="empty"):
            repo.ensure_admin(session, token=" ")


# --------------------------------------------------------------------------- visibility


def test_visible_account_ids(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        consultancy = repo.get_or_create_account(session, "Consult", kind="consultancy")
        client_b = repo.get_or_create_account(session, "Client B", parent=consultancy)
        client_a = repo.get_or_create_account(session, "Client A", parent=consultancy)
        sub_client = repo.get_or_create_account(session, "Sub", parent=client_a)
        aggregator = repo.get_or_create_account(session, "Agg")
        repo.get_or_create_account(session, "Agg child", parent=aggregator)
        stranger = repo.get_or_create_account(session, "Other", kind="consultancy")
        loop_1 = repo.get_or_create_account(session, "Loop 1", kind="consultancy")
        loop_2 = repo.get_or_create_account(session, "Loop 2", kind="consultancy", parent=loop_1)
        loop_1.parent_account_id = loop_2.id
        session.flush()

        assert repo.visible_account_ids(session, consultancy) == [
            consultancy.id,
            client_b.id,
            client_a.id,
            sub_client.id,
        ]
        assert repo.visible_account_ids(session, client_a) == [client_a.id]  # not a consultancy
        assert repo.visible_account_ids(session, aggregator) == [aggregator.id]
        assert repo.visible_account_ids(session, stranger) == [stranger.id]
        assert repo.visible_account_ids(session, loop_1) == [loop_1.id, loop_2.id]


# --------------------------------------------------------------------------- portfolios


def test_portfolio_membership(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        consultancy = repo.get_or_create_account(session, "Consult", kind="consultancy")
        client = repo.get_or_create_account(session, "Client", parent=consultancy)
        stranger = repo.get_or_create_account(session, "Stranger")
        own = [repo.upsert_site(session, consultancy, f"s{i}", {}, []) for i in range(3)]
        client_site = repo.upsert_site(session, client, "client home", {}, [])
        foreign = repo.upsert_site(session, stranger, "foreign", {}, [])
        portfolio = repo.create_portfolio(
            session,
            consultancy,
            "north",
            [client_site.id, own[1].id, own[0].id, own[1].id],
            congestion_point="871687120000000001",
        )
        repo.create_portfolio(session, stranger, "north", [foreign.id])  # same name elsewhere
        empty = repo.create_portfolio(session, client, "empty", [])
        ids = {"portfolio": portfolio.id, "empty": empty.id, "foreign": foreign.id}
        ids |= {"s0": own[0].id, "s1": own[1].id, "client": client_site.id}
        account_ids = {"consultancy": consultancy.id, "client": client.id}
    with sessions() as session:
        stored = repo.get_portfolio(session, ids["portfolio"])
        assert (stored.name, stored.congestion_point, stored.account_id) == (
            "north",
            "871687120000000001",
            account_ids["consultancy"],
        )
        assert [site.id for site in stored.sites] == sorted([ids["s0"], ids["s1"], ids["client"]])
        listed = repo.list_portfolios(session, [account_ids["consultancy"], account_ids["client"]])
        assert [(p.id, len(p.sites)) for p in listed] == [
            (ids["portfolio"], 3),
            (ids["empty"], 0),
        ]
        assert repo.list_portfolios(session, []) == []
        with pytest.raises(repo.RecordNotFoundError):
            repo.get_portfolio(session, 123456)
        consultancy_ = session.get(Account, account_ids["consultancy"])
        client_ = session.get(Account, account_ids["client"])
        assert consultancy_ is not None and client_ is not None
        with pytest.raises(ValueError, match=str(ids["foreign"])):
            repo.create_portfolio(session, consultancy_, "south", [ids["s0"], ids["foreign"]])
        with pytest.raises(ValueError, match="123456"):
            repo.create_portfolio(session, consultancy_, "south", [123456])
        with pytest.raises(ValueError, match=str(ids["s0"])):  # a client cannot see its parent
            repo.create_portfolio(session, client_, "south", [ids["s0"]])
        with pytest.raises(repo.RecordExistsError):
            repo.create_portfolio(session, consultancy_, "north", [])


def test_portfolio_deletes_cascade(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "Agg")
        sites = [repo.upsert_site(session, account, f"s{i}", {}, []) for i in range(3)]
        portfolio = repo.create_portfolio(session, account, "p", [site.id for site in sites])
        job = repo.create_job(session, "portfolio", {}, account=account, portfolio=portfolio)
        site_ids = [site.id for site in sites]
        portfolio_id, job_id, account_id = portfolio.id, job.id, account.id
    with sessions.begin() as session:
        loaded = repo.get_portfolio(session, portfolio_id)
        assert len(loaded.sites) == 3
        repo.delete_site(session, site_ids[0])
        assert [site.id for site in loaded.sites] == site_ids[1:]  # not stale
    with sessions.begin() as session:  # in the database itself
        session.execute(delete(Site).where(Site.id == site_ids[1]))
    with sessions() as session:
        assert [site.id for site in repo.get_portfolio(session, portfolio_id).sites] == [
            site_ids[2]
        ]
        job_ = session.get(SchedulingJob, job_id)
        assert job_ is not None and job_.portfolio_id == portfolio_id
    with sessions.begin() as session:
        session.execute(delete(Portfolio).where(Portfolio.id == portfolio_id))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(portfolio_sites)) == 0
        assert session.scalars(select(Site.id)).all() == [site_ids[2]]  # sites stay
        job_ = session.get(SchedulingJob, job_id)
        assert job_ is not None and job_.portfolio_id is None
        portfolio = repo.create_portfolio(
            session, repo.get_or_create_account(session, "Agg"), "again", [site_ids[2]]
        )
        session.commit()
    with sessions.begin() as session:
        session.execute(delete(Account).where(Account.id == account_id))
    with sessions() as session:
        assert (_count(session, Portfolio), _count(session, Site)) == (0, 0)
        assert session.scalar(select(func.count()).select_from(portfolio_sites)) == 0


# --------------------------------------------------------------------------- listing


def test_list_and_get_sites_sensors_and_jobs(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        mine = repo.get_or_create_account(session, "Mine")
        theirs = repo.get_or_create_account(session, "Theirs")
        home = repo.upsert_site(
            session, mine, "home", {}, [{"name": "battery", "type": "storage", "flex_model": {}}]
        )
        office = repo.upsert_site(session, mine, "office", {}, [])
        repo.upsert_site(session, theirs, "elsewhere", {}, [])
        price = repo.get_or_create_sensor(session, mine, "price", "EUR/MWh", timedelta(hours=1))
        repo.get_or_create_sensor(session, theirs, "price", "EUR/MWh", timedelta(hours=1))
        jobs = [repo.create_job(session, "storage", {"n": n}, account=mine) for n in range(4)]
        repo.create_job(session, "storage", {}, account=theirs)
        repo.create_job(session, "storage", {})  # no account: listed nowhere
        for n, job in enumerate(jobs):
            job.created_at = T0 + timedelta(minutes=n)
        repo.set_job_status(session, jobs[1].id, "cancelled")
        ids = {"mine": mine.id, "home": home.id, "office": office.id, "price": price.id}
        job_ids = [job.id for job in jobs]
    with sessions() as session:
        sites = repo.list_sites(session, [ids["mine"]])
        assert [(site.id, [d.name for d in site.devices]) for site in sites] == [
            (ids["home"], ["battery"]),
            (ids["office"], []),
        ]
        site = repo.get_site(session, ids["home"])
        assert (site.name, site.account_id) == ("home", ids["mine"])
        assert [sensor.id for sensor in repo.list_sensors(session, [ids["mine"]])] == [ids["price"]]
        sensor = repo.get_sensor(session, ids["price"])
        assert (sensor.name, sensor.unit) == ("price", "EUR/MWh")

        assert [job.id for job in repo.list_jobs(session, [ids["mine"]])] == job_ids[::-1]
        assert [job.id for job in repo.list_jobs(session, [ids["mine"]], limit=2)] == [
            job_ids[3],
            job_ids[2],
        ]
        assert [job.id for job in repo.list_jobs(session, [ids["mine"]], status="cancelled")] == [
            job_ids[1]
        ]
        assert repo.list_jobs(session, [ids["mine"]], status="failed") == []
        with pytest.raises(ValueError, match="job status"):
            repo.list_jobs(session, [ids["mine"]], status="paused")
        with pytest.raises(ValueError, match="limit"):
            repo.list_jobs(session, [ids["mine"]], limit=0)
        for getter in (repo.get_site, repo.get_sensor):
            with pytest.raises(repo.RecordNotFoundError):
                getter(session, 123456)
        with pytest.raises(repo.RecordNotFoundError):
            repo.delete_site(session, 123456)
    with sessions.begin() as session:
        repo.delete_site(session, ids["office"])
    with sessions() as session:
        assert [site.id for site in repo.list_sites(session, [ids["mine"]])] == [ids["home"]]
        assert _count(session, Sensor) == 2


# --------------------------------------------------------------------------- job queue


def _queued_jobs(session: Session, count: int) -> list[str]:
    """``count`` queued jobs, created one minute apart (the first is the oldest)."""
    jobs = [repo.create_job(session, "storage", {"n": n}) for n in range(count)]
    for n, job in enumerate(jobs):
        job.created_at = T0 + timedelta(minutes=n)
    session.flush()
    return [job.id for job in jobs]


def test_claim_next_job_takes_the_oldest_queued_job(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        first, cancelled, second = _queued_jobs(session, 3)
        repo.set_job_status(session, cancelled, "cancelled")
    before = _seconds_ago()
    claimed: list[tuple[str, str, int] | None] = []
    for _ in range(3):
        with sessions.begin() as session:
            job = repo.claim_next_job(session)
            claimed.append(None if job is None else (job.id, job.status, job.attempts))
    after = datetime.now(UTC)
    assert claimed == [(first, "running", 1), (second, "running", 1), None]
    with sessions() as session:
        for job_id in (first, second):
            job = session.get(SchedulingJob, job_id)
            assert job is not None and job.started_at is not None
            assert (job.status, job.attempts) == ("running", 1)
            assert before <= job.started_at <= after


def test_set_job_status_running_counts_an_attempt(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        (job_id,) = _queued_jobs(session, 1)
        repo.set_job_status(session, job_id, "running")
        repo.set_job_status(session, job_id, "running", progress={"step": 2})
        assert repo.get_job(session, job_id).attempts == 1


def _claim_all(sessions: sessionmaker[Session], barrier: threading.Barrier) -> list[str]:
    barrier.wait()
    claimed: list[str] = []
    while True:
        with sessions.begin() as session:
            job = repo.claim_next_job(session)
            if job is None:
                return claimed
            claimed.append(job.id)


def test_concurrent_claims_take_every_job_exactly_once(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        job_ids = _queued_jobs(session, 20)
    runners = 4
    barrier = threading.Barrier(runners)
    results: list[list[str]] = [[] for _ in range(runners)]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = _claim_all(sessions, barrier)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    counts = Counter(job_id for claimed in results for job_id in claimed)
    assert set(counts) == set(job_ids)
    assert set(counts.values()) == {1}
    with sessions() as session:
        rows = session.execute(select(SchedulingJob.status, SchedulingJob.attempts)).all()
        assert Counter(tuple(row) for row in rows) == {("running", 1): 20}


def test_postgres_claim_skips_a_job_locked_by_another_runner(
    sessions: sessionmaker[Session], engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is the PostgreSQL path")
    with sessions.begin() as session:
        oldest, newer = _queued_jobs(session, 2)
    with sessions() as slow, sessions() as fast:
        taken = repo.claim_next_job(slow)  # locked until ``slow`` ends
        assert taken is not None and taken.id == oldest
        fast.execute(text("SET LOCAL lock_timeout = '5s'"))  # fail rather than hang
        skipped_to = repo.claim_next_job(fast)
        assert skipped_to is not None and skipped_to.id == newer
        fast.commit()
        slow.rollback()  # the runner died before committing: the job is still queued
    with sessions.begin() as session:
        again = repo.claim_next_job(session)
        assert again is not None and (again.id, again.attempts) == (oldest, 1)


def test_sqlite_claim_moves_on_when_another_runner_wins(
    sessions: sessionmaker[Session], engine: Engine
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the conditional UPDATE is the SQLite path")
    with sessions.begin() as session:
        oldest, newer = _queued_jobs(session, 2)
    other_runner = store_db.make_engine(engine.url)
    raced: list[str] = []

    def win_the_race(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Between this runner's SELECT and its UPDATE, another runner takes the oldest job.
        if statement.startswith("UPDATE scheduling_jobs") and not raced:
            raced.append(statement)
            with other_runner.begin() as connection:
                connection.execute(
                    update(SchedulingJob)
                    .where(SchedulingJob.id == oldest)
                    .values(status="running", attempts=1)
                )

    event.listen(engine, "before_cursor_execute", win_the_race)
    try:
        with sessions.begin() as session:
            job = repo.claim_next_job(session)
            assert job is not None and (job.id, job.status, job.attempts) == (newer, "running", 1)
    finally:
        event.remove(engine, "before_cursor_execute", win_the_race)
        other_runner.dispose()
    assert raced
    with sessions() as session:
        assert repo.get_job(session, oldest).attempts == 1
        assert repo.claim_next_job(session) is None


def test_requeue_unfinished_requeues_or_fails_lost_jobs(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        retry, give_up, queued, finished = _queued_jobs(session, 4)
        for job_id in (retry, give_up, finished):
            repo.set_job_status(session, job_id, "running", progress={"step": 1})
        repo.set_job_status(session, finished, "finished", result={"ok": True})
        session.execute(update(SchedulingJob).where(SchedulingJob.id == give_up).values(attempts=3))
    before = _seconds_ago()
    with sessions.begin() as session:
        assert repo.requeue_unfinished(session, max_attempts=3) == ([retry], [give_up])
    after = datetime.now(UTC)
    with sessions() as session:
        requeued = repo.get_job(session, retry)
        assert (
            requeued.status,
            requeued.attempts,
            requeued.started_at,
            requeued.progress,
            requeued.error,
        ) == ("queued", 1, None, None, None)
        failed = repo.get_job(session, give_up)
        assert (failed.status, failed.attempts, failed.progress) == ("failed", 3, {"step": 1})
        assert failed.finished_at is not None and before <= failed.finished_at <= after
        assert failed.error is not None
        assert {key: failed.error[key] for key in ("type", "title", "status")} == {
            "type": "urn:vpp:error:JobLost",
            "title": "Job lost",
            "status": 500,
        }
        assert failed.error["detail"].startswith("the job was interrupted 3 times")
        assert set(failed.error) == {"type", "title", "status", "detail"}
        assert repo.get_job(session, queued).status == "queued"
        assert repo.get_job(session, finished).status == "finished"
        # The normal transition rules still forbid running → queued.
        repo.set_job_status(session, retry, "running")
        with pytest.raises(repo.InvalidJobTransitionError):
            repo.set_job_status(session, retry, "queued")
        session.rollback()
    with sessions.begin() as session:
        again = repo.claim_next_job(session)
        assert again is not None and (again.id, again.attempts) == (retry, 2)
    with sessions.begin() as session:
        assert repo.requeue_unfinished(session, max_attempts=2) == ([], [retry])
        assert repo.requeue_unfinished(session) == ([], [])
        with pytest.raises(ValueError, match="max_attempts"):
            repo.requeue_unfinished(session, max_attempts=0)


def test_requeue_unfinished_leaves_jobs_of_live_runners(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        lost, live = _queued_jobs(session, 2)
        repo.claim_next_job(session)
        repo.claim_next_job(session)
        session.execute(
            update(SchedulingJob)
            .where(SchedulingJob.id == lost)
            .values(started_at=datetime.now(UTC) - timedelta(hours=2))
        )
    with sessions.begin() as session:
        cutoff = datetime.now(UTC) - timedelta(hours=1)
        assert repo.requeue_unfinished(session, started_before=cutoff) == ([lost], [])
        assert repo.get_job(session, live).status == "running"
