"""Recurring re-planning of a stored site (api.replanning): each ISP planned once, from the
measured SoC and the newest forecast, ordered power held, every plan stored as a job.
Costs are hand-derived below, not read back from vpp."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.cli import main
from api.replanning import Replanner, Replanning
from store import make_engine, session_factory, upgrade
from store import repository as repo
from store.tables import Schedule
from vpp.errors import RequestValidationError
from vpp.portfolio import CentralisedPortfolio, validate_portfolio
from vpp.site import SiteProblem

T0 = datetime(2026, 3, 2, tzinfo=UTC)
Q = timedelta(minutes=15)


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'vpp.db'}")
    upgrade(engine)
    return session_factory(engine)


@pytest.fixture
def home(sessions: sessionmaker[Session]) -> dict[str, int]:
    """A house of 1 kW, a lossless 4 kWh / 2 kW battery and PV whose forecast is a sensor;
    100 EUR/MWh until 01:00, 300 after, feed-in paid nothing. The first PV forecast (made
    the evening before) says no sun."""
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "acme")
        price = repo.get_or_create_sensor(session, account, "price", "EUR/MWh", Q)
        pv = repo.get_or_create_sensor(session, account, "pv forecast", "kW", Q)
        soc = repo.get_or_create_sensor(session, account, "battery soc", "kWh", Q)
        repo.save_time_series(session, price, T0, Q, [100.0] * 4 + [300.0] * 8, "tariff")
        repo.save_time_series(session, pv, T0, Q, [0.0] * 12, "forecast",
                              belief_time=T0 - timedelta(hours=1))  # fmt: skip
        battery = {"soc-min": "0 kWh", "soc-max": "4 kWh", "power-capacity": "2 kW",
                   "roundtrip-efficiency": "100%", "soc-at-start": "3 kWh"}  # fmt: skip
        site = repo.upsert_site(
            session, account, "home",
            {"consumption-price": {"sensor": price.id}, "production-price": "0 EUR/MWh",
             "inflexible-devices": {"house": "1 kW"}},
            [{"name": "battery", "type": "storage", "flex_model": battery},
             {"name": "pv", "type": "generation", "flex_model": {"production": {"sensor": pv.id}}}],
        )  # fmt: skip
        return {"site": site.id, "pv": pv.id, "soc": soc.id}


def _measure(sessions: sessionmaker[Session], sensor_id: int, at: datetime, kwh: float) -> None:
    with sessions.begin() as session:
        sensor = repo.get_sensor(session, sensor_id)
        repo.save_time_series(session, sensor, at, Q, [kwh], "meter")


def _job(sessions: sessionmaker[Session], job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with sessions.begin() as session:
        job = repo.get_job(session, job_id)
        assert job.status == "finished"
        return dict(job.request), dict(job.result or {})


def _battery(result: dict[str, Any]) -> list[float]:
    entry = next(d for d in result["devices"] if d["name"] == "battery")
    return [float(v) for v in entry["power"]["values"]]


def test_plans_from_the_measured_soc(sessions: sessionmaker[Session], home: dict[str, int]) -> None:
    # Measured 0.5 kWh (the stored site says 3): hour 2 needs 1 kWh at 300, so hour 1 buys
    # the house's 1 kWh and 0.5 kWh for the battery at 100 EUR/MWh: 0.15 EUR. From the stored
    # 3 kWh the cost would be 0.
    _measure(sessions, home["soc"], T0, 0.5)
    plan = Replanning(home["site"], {"battery": home["soc"]}, horizon=timedelta(hours=2))
    replanner = Replanner(sessions, plan)
    job_id = replanner.tick(T0 + timedelta(minutes=7))
    assert job_id is not None
    request, result = _job(sessions, job_id)
    battery = next(d for d in request["flex-model"] if d["name"] == "battery")
    assert battery["soc-at-start"] == "0.5 kWh"
    assert request["start"] == T0.isoformat()
    assert result["cost"]["value"] == pytest.approx(0.15, abs=1e-9)
    with sessions.begin() as session:
        rows = session.scalars(select(Schedule).where(Schedule.job_id == job_id)).all()
        assert {r.device_name for r in rows} >= {"battery", "pv"}
    assert replanner.tick(T0 + timedelta(minutes=14)) is None  # the same ISP: planned


def test_the_next_isp_uses_the_newest_forecast(
    sessions: sessionmaker[Session], home: dict[str, int]
) -> None:
    # At 00:10 a new PV forecast: 4 kW from 01:00, covering the house. At 00:15 the battery
    # holds 0.55 kWh; the cheap steps left (00:15-01:00) need 0.75 kWh: 0.2 kWh bought at
    # 100 EUR/MWh = 0.02 EUR; everything after 01:00 comes from the sun.
    _measure(sessions, home["soc"], T0, 0.5)
    replanner = Replanner(
        sessions, Replanning(home["site"], {"battery": home["soc"]}, horizon=timedelta(hours=2))
    )
    first = replanner.tick(T0)
    with sessions.begin() as session:
        pv = repo.get_sensor(session, home["pv"])
        repo.save_time_series(session, pv, T0, Q, [0.0] * 4 + [4.0] * 8, "forecast",
                              belief_time=T0 + timedelta(minutes=10))  # fmt: skip
    _measure(sessions, home["soc"], T0 + Q, 0.55)
    second = replanner.tick(T0 + Q + timedelta(seconds=30))
    assert first is not None and second is not None and first != second
    request, result = _job(sessions, second)
    pv_entry = next(d for d in request["flex-model"] if d["name"] == "pv")
    assert pv_entry["production"]["values"] == [0.0] * 3 + [4.0] * 5
    assert result["cost"]["value"] == pytest.approx(0.02, abs=1e-9)
    # warm-started, and still the optimum a cold solve of the same request finds
    assert SiteProblem(request).solve().cost == pytest.approx(result["cost"]["value"], abs=1e-9)


def test_ordered_power_is_held(sessions: sessionmaker[Session], home: dict[str, int]) -> None:
    _measure(sessions, home["soc"], T0, 0.5)
    plan = Replanning(home["site"], {"battery": home["soc"]}, horizon=timedelta(hours=2), commit=3)
    replanner = Replanner(sessions, plan)
    first = replanner.tick(T0)
    _measure(sessions, home["soc"], T0 + Q, 1.0)
    second = replanner.tick(T0 + Q)
    assert first is not None and second is not None
    _, planned = _job(sessions, first)
    request, result = _job(sessions, second)
    battery = next(d for d in request["flex-model"] if d["name"] == "battery")
    assert [f["start"] for f in battery["power-fixed"]] == [
        (T0 + Q).isoformat(),
        (T0 + 2 * Q).isoformat(),
    ]
    assert _battery(result)[:2] == pytest.approx(_battery(planned)[1:3], abs=1e-9)


def test_a_missing_measurement_names_the_sensor(
    sessions: sessionmaker[Session], home: dict[str, int]
) -> None:
    two_hours = timedelta(hours=2)
    replanner = Replanner(
        sessions, Replanning(home["site"], {"battery": home["soc"]}, horizon=two_hours)
    )
    with pytest.raises(RequestValidationError) as caught:
        replanner.tick(T0)
    assert caught.value.issues[0].field == "soc-sensors.battery"
    other = Replanner(
        sessions, Replanning(home["site"], {"heater": home["soc"]}, horizon=two_hours)
    )
    _measure(sessions, home["soc"], T0, 1.0)
    with pytest.raises(RequestValidationError) as caught:
        other.tick(T0)
    assert caught.value.issues[0].field == "soc-sensors.heater"
    with pytest.raises(RequestValidationError) as caught:
        replanner.tick(datetime(2026, 3, 2))  # naive
    assert caught.value.issues[0].field == "now"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"horizon": timedelta(minutes=20)}, "horizon"),
        ({"horizon": timedelta(minutes=15)}, "horizon"),
        ({"commit": 0}, "commit"),
        ({"commit": 200}, "commit"),
        ({"resolution": timedelta(0)}, "resolution"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        Replanning(1, {}, **kwargs)
    assert caught.value.issues[0].field == field


def _clock(stop: threading.Event, moments: list[datetime]) -> Callable[[], datetime]:
    """The given moments, then (stopping the loop) the last one again."""
    left = iter(moments)

    def clock() -> datetime:
        moment = next(left, None)
        if moment is None:
            stop.set()
            return moments[-1]
        return moment

    return clock


def test_run_ticks_until_stopped(sessions: sessionmaker[Session], home: dict[str, int]) -> None:
    _measure(sessions, home["soc"], T0, 0.5)
    _measure(sessions, home["soc"], T0 + Q, 0.55)
    replanner = Replanner(
        sessions, Replanning(home["site"], {"battery": home["soc"]}, horizon=timedelta(hours=2))
    )
    stop = threading.Event()
    waits: list[float] = []
    replanner.run(stop, _clock(stop, [T0, T0 + timedelta(minutes=5), T0 + Q, T0 + Q]), waits.append)
    assert len(replanner.jobs) == 2
    assert waits[0] == 600.0  # from 00:05 to the next ISP


def test_a_stored_portfolio_is_re_planned(
    sessions: sessionmaker[Session], home: dict[str, int]
) -> None:
    # Two copies of the home in one portfolio: "a" measured at 0.5 kWh costs 0.15 EUR (see
    # test_plans_from_the_measured_soc); "b" at 2 kWh covers both hours' house from its
    # battery (1 kWh each): 0 EUR. The congestion limit (10 kW) does not bind.
    with sessions.begin() as session:
        site = repo.get_site(session, home["site"])
        account = site.account
        twin = repo.upsert_site(
            session, account, "home-b", dict(site.flex_context),
            [{"name": d.name, "type": d.type, "flex_model": dict(d.flex_model)}
             for d in site.devices],
        )  # fmt: skip
        soc_b = repo.get_or_create_sensor(session, account, "b soc", "kWh", Q)
        repo.save_time_series(session, soc_b, T0, Q, [2.0], "meter")
        portfolio = repo.create_portfolio(session, account, "both", [site.id, twin.id])
        portfolio_id, soc_b_id, twin_id = portfolio.id, soc_b.id, twin.id
    _measure(sessions, home["soc"], T0, 0.5)
    plan = Replanning(
        None, {"home/battery": home["soc"], "home-b/battery": soc_b_id},
        timedelta(hours=2), portfolio_id=portfolio_id,
        target={"type": "congestion", "max-consumption": "10 kW"},
    )  # fmt: skip
    replanner = Replanner(sessions, plan)
    job_id = replanner.tick(T0)
    assert job_id is not None
    request, result = _job(sessions, job_id)
    socs = {e["id"]: e["flex-model"][0]["soc-at-start"] for e in request["sites"]}
    assert socs == {"home": "0.5 kWh", "home-b": "2.0 kWh"}
    costs = {e["id"]: e["cost"]["value"] for e in result["sites"]}
    assert costs == pytest.approx({"home": 0.15, "home-b": 0.0}, abs=1e-9)
    with sessions.begin() as session:
        rows = session.scalars(select(Schedule).where(Schedule.job_id == job_id)).all()
        assert {r.site_id for r in rows} == {home["site"], twin_id}  # under the stored sites
    # the next ISP, warm-started from this plan: the optimum of a cold solve of its request
    _measure(sessions, home["soc"], T0 + Q, 0.4)
    _measure(sessions, soc_b_id, T0 + Q, 1.75)
    following = replanner.tick(T0 + Q)
    assert following is not None
    request, result = _job(sessions, following)
    cold = CentralisedPortfolio(validate_portfolio(request)).solve().to_json()
    assert result["portfolio"]["cost"]["value"] == pytest.approx(
        cold["portfolio"]["cost"]["value"], abs=1e-9
    )
    with pytest.raises(RequestValidationError) as caught:
        Replanning(home["site"], {}, portfolio_id=portfolio_id)
    assert caught.value.issues[0].field == "site"
    with pytest.raises(RequestValidationError) as caught:
        Replanning(home["site"], {}, target={"type": "market"})
    assert caught.value.issues[0].field == "target"


def test_an_isp_without_a_plan_is_a_failed_job_and_the_loop_goes_on(
    sessions: sessionmaker[Session], home: dict[str, int]
) -> None:
    # No SoC measured before 00:15: the first ISP fails, stored as a failed job naming the
    # sensor; the second ISP, measured, is planned.
    replanner = Replanner(
        sessions, Replanning(home["site"], {"battery": home["soc"]}, horizon=timedelta(hours=2))
    )
    _measure(sessions, home["soc"], T0 + Q, 0.55)
    stop = threading.Event()
    replanner.run(stop, _clock(stop, [T0, T0, T0 + Q, T0 + Q]), lambda seconds: None)
    failed, planned = replanner.jobs
    with sessions.begin() as session:
        first = repo.get_job(session, failed)
        assert first.status == "failed"
        assert first.error is not None
        assert first.error["errors"][0]["field"] == "soc-sensors.battery"
    # 00:15 at 0.55 kWh, no sun: the 5 steps at 300 need 1.25 kWh, so the 3 steps at 100 buy
    # the house's 0.75 kWh and 0.7 kWh for the battery: 1.45 kWh * 100 EUR/MWh = 0.145 EUR
    assert _job(sessions, planned)[1]["cost"]["value"] == pytest.approx(0.145, abs=1e-9)


def test_cli_refuses_a_bad_sensor_pair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replan", "--site", "1", "--soc-sensor", "battery", "--once"]) == 2
    assert "soc-sensor" in capsys.readouterr().err
    assert main(["replan", "--site", "1", "--horizon", "a day", "--once"]) == 2


def test_vpp_replan_once_plans_the_current_isp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vpp.settings import get_settings

    url = f"sqlite:///{tmp_path / 'once.db'}"
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "operator")
        soc = repo.get_or_create_sensor(session, account, "soc", "kWh", Q)
        repo.save_time_series(session, soc, now - Q, Q, [1.0], "meter")
        battery = {"soc-min": "0 kWh", "soc-max": "4 kWh", "power-capacity": "2 kW"}
        site = repo.upsert_site(
            session, account, "home", {"consumption-price": "100 EUR/MWh"},
            [{"name": "battery", "type": "storage", "flex_model": battery}],
        )  # fmt: skip
        site_id, soc_id = site.id, soc.id
    engine.dispose()
    monkeypatch.setenv("VPP_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        argv = ["replan", "--site", str(site_id), "--soc-sensor", f"battery={soc_id}",
                "--horizon", "PT1H", "--once"]  # fmt: skip
        assert main(argv) == 0
        job_id = capsys.readouterr().out.strip()
        engine = make_engine(url)
        request, _ = _job(session_factory(engine), job_id)
        engine.dispose()
        assert request["flex-model"][0]["soc-at-start"] == "1.0 kWh"
    finally:
        get_settings.cache_clear()
