"""KPIs over a period (issue 14 item 5): ``GET /api/v1/reports``, CO2 in the KPIs, the
client's DataFrames and the dashboard (its spec, and the page in headless Chromium).

The references are hand-derived on a small example, and the energy cost is recomputed here
from the schedule rows the store holds (newest job per hour, by hand), not from the code's
own per-step KPIs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_harness import ApiHarness, assert_problem, harness
from conftest import served
from sqlalchemy import select
from test_charts import CHROMIUM, admin_token, bearer, chromium, console_lines, needs_chromium

from actors.job_service import execute_job
from api.app import create_app
from api.dashboard import dashboard_spec
from store import repository as repo
from store.tables import Schedule, SchedulingJob
from vpp.errors import RequestValidationError
from vpp.kpi import site_kpis
from vpp.reports import MAX_PERIOD, ScheduleSource, check_period, period_report, source_kpis
from vpp.site import schedule

DAY = "2026-03-02"
T0 = datetime(2026, 3, 2, tzinfo=UTC)
BATTERY = {
    "name": "battery",
    "type": "storage",
    "soc-at-start": "0 kWh",
    "soc-max": "4 kWh",
    "power-capacity": "2 kW",
}
PRICES_A: list[float] = [40, 30, 20, 10]  # EUR/MWh, 00:00-04:00
PRICES_B: list[float] = [40, 30, 10, 20]  # EUR/MWh, 02:00-06:00


def at(hour: int) -> str:
    return (T0 + timedelta(hours=hour)).isoformat()


def job_body(first_hour: int, prices: list[float], **context: Any) -> dict[str, Any]:
    """Four hours from ``first_hour``; the battery must hold 4 kWh at the end (2 kW: it
    charges in two of the four hours)."""
    target = {"datetime": at(first_hour + 4), "value": "4 kWh"}
    return {
        "start": at(first_hour),
        "duration": "PT4H",
        "resolution": "PT1H",
        "flex-model": [{**BATTERY, "soc-targets": [target]}],
        "flex-context": {"consumption-price": {"values": prices, "unit": "EUR/MWh"}, **context},
    }


# -- CO2 in a job's KPIs ----------------------------------------------------------------------
def test_co2_kpis_of_a_schedule_and_its_baseline() -> None:
    """Intensity 400, 300, 200, 100 g/kWh with job A's prices. The schedule charges 2 kWh at
    02:00 and at 03:00: 2 x 0.2 + 2 x 0.1 = 0.6 kg. The price-blind baseline charges at
    once: 2 x 0.4 + 2 x 0.3 = 1.4 kg; saved 0.8 kg. With a co2-price of 100 EUR/t the
    baseline stays blind (1.4 kg): it ignores the CO2 price as it ignores the energy price."""
    intensity = {"values": [400, 300, 200, 100], "unit": "g/kWh"}
    for extra in ({}, {"co2-price": "100 EUR/t"}):
        request = job_body(0, PRICES_A, **{"co2-intensity": intensity, **extra})
        kpis = site_kpis(request, schedule(request))
        assert kpis["emissions"] == {"value": pytest.approx(0.6), "unit": "kg"}
        assert kpis["baseline-emissions"] == {"value": pytest.approx(1.4), "unit": "kg"}
        assert kpis["emissions-savings"]["value"] == pytest.approx(0.8)
    assert kpis["penalties"] == {"co2": pytest.approx(0.06)}  # 0.6 kg at 0.1 EUR/kg


def test_no_co2_kpis_without_an_intensity() -> None:
    request = job_body(0, PRICES_A)
    kpis = site_kpis(request, schedule(request))
    assert not {"emissions", "baseline-emissions", "emissions-savings"} & set(kpis)


# -- the pure aggregation ---------------------------------------------------------------------
def source(site: str, job: str, created_minute: int, request: dict[str, Any]) -> ScheduleSource:
    created = T0 - timedelta(days=1) + timedelta(minutes=created_minute)
    return ScheduleSource(site, site, None, job, created, request, schedule(request))


def test_the_newest_job_wins_each_step() -> None:
    """Job A (00:00-04:00) and the newer job B (02:00-06:00) of one site. B claims 02:00-06:00:
    of A, 00:00 and 01:00 count. A charges at 02:00-04:00 (not counted): cost 0 in its counted
    hours; its baseline charges at 00:00 and 01:00: 2 x 40 + 2 x 30 = 0.14 EUR. B charges at
    04:00 (10) and 05:00 (20): 0.06 EUR; its baseline at 02:00 and 03:00 (40, 30): 0.14 EUR.
    So 0.06 against 0.28: saved 0.22 EUR; 4 kWh imported at 2 kW; 6 hours."""
    a = source("home", "a", 0, job_body(0, PRICES_A))
    b = source("home", "b", 5, job_body(2, PRICES_B))
    report = period_report([a, b], T0, T0 + timedelta(hours=6))
    (site,) = report["sites"]
    assert site["jobs"] == ["b", "a"] and site["hours"] == 6
    kpis = site["kpis"]
    assert kpis["energy-cost"] == {"value": pytest.approx(0.06), "unit": "EUR"}
    assert kpis["baseline-cost"]["value"] == pytest.approx(0.28)
    assert kpis["savings"]["value"] == pytest.approx(0.22)
    assert kpis["import"] == {"value": pytest.approx(4.0), "unit": "kWh"}
    assert kpis["peak-import"]["value"] == pytest.approx(2.0)
    assert kpis["self-consumption"] is None and kpis["self-sufficiency"] is None
    assert kpis["penalties"] == {}
    assert not {"emissions", "co2-steps"} & set(kpis)
    assert report["total"]["savings"]["value"] == pytest.approx(0.22)

    # made the other way round, A (now newer) wins 02:00-04:00 and B keeps 04:00-06:00:
    # A's 0.06 (charging 02:00-04:00) + B's 0.06; baselines A 0.14, B's last two hours 0
    swapped = period_report(
        [source("home", "a", 9, job_body(0, PRICES_A)), b], T0, T0 + timedelta(hours=6)
    )
    assert swapped["sites"][0]["jobs"] == ["a", "b"]
    assert swapped["sites"][0]["kpis"]["energy-cost"]["value"] == pytest.approx(0.12)
    assert swapped["sites"][0]["kpis"]["baseline-cost"]["value"] == pytest.approx(0.14)


def test_only_steps_in_the_period_count_and_sites_add_up() -> None:
    """[01:00, 03:00): A's 01:00 (baseline 30 x 2 kWh) and B's 02:00 (baseline 40 x 2 kWh),
    nothing scheduled in either: 0 against 0.14 EUR. Another site, job A alone, adds its
    01:00 and 02:00: schedule 20 x 2 = 0.04, baseline 30 x 2 = 0.06."""
    a, b = (
        source("home", "a", 0, job_body(0, PRICES_A)),
        source("home", "b", 5, job_body(2, PRICES_B)),
    )
    other = source("shed", "c", 1, job_body(0, PRICES_A))
    report = period_report([a, b, other], T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    home, shed = report["sites"]
    assert (home["key"], shed["key"]) == ("home", "shed")
    assert home["kpis"]["energy-cost"]["value"] == pytest.approx(0.0)
    assert home["kpis"]["baseline-cost"]["value"] == pytest.approx(0.14)
    assert shed["kpis"]["energy-cost"]["value"] == pytest.approx(0.04)
    assert shed["kpis"]["baseline-cost"]["value"] == pytest.approx(0.06)
    total = report["total"]
    assert total["energy-cost"]["value"] == pytest.approx(0.04)
    assert total["savings"]["value"] == pytest.approx(0.16)
    assert total["import"]["value"] == pytest.approx(2.0)


def test_co2_counts_only_the_steps_that_had_an_intensity() -> None:
    """A (older, with intensity 400, 300, 200, 100 g/kWh) keeps 00:00 and 01:00: nothing
    imported (0 kg); its baseline imports 2 kWh in each: 0.8 + 0.6 = 1.4 kg. B has no
    intensity: its steps count for money, not for CO2."""
    intensity = {"values": [400, 300, 200, 100], "unit": "g/kWh"}
    a = source("home", "a", 0, job_body(0, PRICES_A, **{"co2-intensity": intensity}))
    b = source("home", "b", 5, job_body(2, PRICES_B))
    kpis = period_report([a, b], T0, T0 + timedelta(hours=6))["sites"][0]["kpis"]
    assert kpis["emissions"] == {"value": pytest.approx(0.0), "unit": "kg"}
    assert kpis["baseline-emissions"]["value"] == pytest.approx(1.4)
    assert kpis["emissions-savings"]["value"] == pytest.approx(1.4)
    assert kpis["co2-steps"] == 2


def test_a_period_must_be_ordered_and_bounded() -> None:
    with pytest.raises(RequestValidationError, match="end"):
        check_period(T0, T0)
    with pytest.raises(RequestValidationError, match="at most 366 days"):
        check_period(T0, T0 + MAX_PERIOD + timedelta(seconds=1))
    check_period(T0, T0 + MAX_PERIOD)


def test_dashboard_spec_draws_each_sites_kpis() -> None:
    a, b = (
        source("home", "a", 0, job_body(0, PRICES_A)),
        source("home", "b", 5, job_body(2, PRICES_B)),
    )
    spec = dashboard_spec(period_report([a, b], T0, T0 + timedelta(hours=6)))
    rows = {(r["panel"], r["series"]): r["value"] for r in spec["data"]["values"]}
    assert rows[("cost", "schedule")] == pytest.approx(0.06)
    assert rows[("cost", "baseline")] == pytest.approx(0.28)
    assert rows[("savings", "savings")] == pytest.approx(0.22)
    assert ("shares", "self-consumption") not in rows  # null: no production, no bar
    titles = [p["title"]["text"] for p in spec["vconcat"]]
    assert len(titles) == 2 and not any("CO2" in t or "Self" in t for t in titles)
    assert spec["vconcat"][0]["encoding"]["y"]["title"] == "cost (EUR)"


# -- the route --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    with harness("sqlite", Path(tmp_path_factory.mktemp("period"))) as h:
        yield h


def run(api: ApiHarness, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    response = api.http.post(
        "/api/v1/scheduling-job/storage", json=body, headers=headers or api.admin
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job"]
    with api.app.state.sessions.begin() as session:
        repo.set_job_status(session, job_id, "running")
    assert execute_job(api.app.state.sessions, job_id) == "finished"
    return job_id


@pytest.fixture(scope="module")
def stored(api: ApiHarness) -> dict[str, Any]:
    """A stored site with job A, then job B; an inline site's job C; a portfolio of the site."""
    site = api.http.post(
        "/api/v1/sites", json={"name": "home", "flex-model": [BATTERY]}, headers=api.admin
    )
    assert site.status_code == 201, site.text
    site_id = site.json()["id"]
    a = run(api, {"site": site_id, **{k: v for k, v in job_body(0, PRICES_A).items()}})
    b = run(api, {"site": site_id, **job_body(2, PRICES_B)})
    c = run(api, job_body(0, PRICES_A))
    portfolio = api.http.post(
        "/api/v1/portfolios", json={"name": "west", "sites": [site_id]}, headers=api.admin
    )
    assert portfolio.status_code == 201, portfolio.text
    return {"site": site_id, "a": a, "b": b, "c": c, "portfolio": portfolio.json()["id"]}


def hand_energy_cost(
    api: ApiHarness,
    site_id: int,
    first: int,
    last: int,
    prices: dict[int, dict[int, float]] | None = None,
) -> float:
    """The stored site's energy cost over hours [first, last), from its stored site-power
    rows: per hour the newest job's value, times that job's price (EUR/MWh, by hand;
    ``prices``: by the job's first hour, then its hour)."""
    prices = prices or {0: dict(enumerate(PRICES_A)), 2: dict(enumerate(PRICES_B))}
    newest: dict[int, tuple[datetime, float, int, int]] = {}  # created, kW, job's hour 0, k
    with api.app.state.sessions.begin() as session:
        rows = session.execute(
            select(Schedule, SchedulingJob.created_at)
            .join(SchedulingJob, Schedule.job_id == SchedulingJob.id)
            .where(Schedule.site_id == site_id, Schedule.device_name.is_(None))
        ).all()
        for row, created in rows:
            first_hour = int((row.start - T0).total_seconds() // 3600)
            for k, kw in enumerate(row.values):
                hour = first_hour + k
                if hour not in newest or created > newest[hour][0]:
                    newest[hour] = (created, kw, first_hour, k)
    return sum(
        max(kw, 0.0) * prices[job_hour][k] / 1000
        for h, (_, kw, job_hour, k) in newest.items()
        if first <= h < last
    )


def report(api: ApiHarness, headers: dict[str, str] | None = None, **params: Any) -> Any:
    response = api.http.get("/api/v1/reports", params=params, headers=headers or api.admin)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_report_of_a_stored_site_and_an_inline_one(api: ApiHarness, stored: Any) -> None:
    body = report(api, start=at(0), end=at(6))
    by_key = {s["key"]: s for s in body["sites"]}
    home = by_key[f"site:{stored['site']}"]
    assert home["site"] == stored["site"] and home["name"] == "home" and home["label"] == "home"
    assert home["jobs"] == [stored["b"], stored["a"]]
    assert home["kpis"]["energy-cost"]["value"] == pytest.approx(
        hand_energy_cost(api, stored["site"], 0, 6)
    )
    assert home["kpis"]["energy-cost"]["value"] == pytest.approx(0.06)
    assert home["kpis"]["baseline-cost"]["value"] == pytest.approx(0.28)
    inline = by_key[f"job:{stored['c']}"]
    assert inline["site"] is None and inline["jobs"] == [stored["c"]]
    assert inline["kpis"]["savings"]["value"] == pytest.approx(0.08)
    assert body["total"]["energy-cost"]["value"] == pytest.approx(0.12)
    assert body["total"]["savings"]["value"] == pytest.approx(0.30)
    for absent in ("emissions", "baseline-emissions", "emissions-savings", "co2-steps"):
        assert absent not in body["total"] and absent not in home["kpis"]


def test_filters_by_site_and_portfolio(api: ApiHarness, stored: Any) -> None:
    for params in ({"site": stored["site"]}, {"portfolio": stored["portfolio"]}):
        body = report(api, start=at(1), end=at(3), **params)
        assert [s["key"] for s in body["sites"]] == [f"site:{stored['site']}"]
        kpis = body["sites"][0]["kpis"]
        assert kpis["energy-cost"]["value"] == pytest.approx(
            hand_energy_cost(api, stored["site"], 1, 3)
        )
        assert kpis["baseline-cost"]["value"] == pytest.approx(0.14)
    assert report(api, start=at(0), end=at(6), site=999_999)["sites"] == []
    assert report(api, start=at(6), end=at(12))["sites"] == []  # nothing scheduled then


def test_another_account_sees_none_of_it(api: ApiHarness, stored: Any) -> None:
    other = api.account("period-outsider")
    for params in ({}, {"site": stored["site"]}, {"portfolio": stored["portfolio"]}):
        body = report(api, other, start=at(0), end=at(6), **params)
        assert body["sites"] == []
        assert body["total"]["energy-cost"]["value"] == 0.0
        assert body["total"]["self-sufficiency"] is None
    own = run(api, job_body(0, PRICES_A), headers=other)
    body = report(api, other, start=at(0), end=at(6))
    assert [s["key"] for s in body["sites"]] == [f"job:{own}"]
    third = api.account("period-neighbour")  # a client account sees no other client's jobs
    assert report(api, third, start=at(0), end=at(6))["sites"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"end": at(6)}, "start"),
        ({"start": at(0)}, "end"),
        ({"start": "yesterday", "end": at(6)}, "start"),
        ({"start": "2026-03-02T00:00:00", "end": at(6)}, "start"),  # no offset
        ({"start": at(6), "end": at(0)}, "end"),
        ({"start": at(0), "end": (T0 + timedelta(days=400)).isoformat()}, "end"),
        ({"start": at(0), "end": at(6), "site": 0}, "site"),
        ({"start": at(0), "end": at(6), "sites": 1}, "sites"),
    ],
)
def test_bad_periods_are_refused_by_name(api: ApiHarness, params: Any, field: str) -> None:
    for path in ("/api/v1/reports", "/api/v1/reports/chart"):
        response = api.http.get(path, params=params, headers=api.admin)
        assert_problem(response, 422)
        assert field in [e["field"] for e in response.json()["errors"]], response.text


def test_the_chart_route_is_the_dashboard_of_the_report(api: ApiHarness, stored: Any) -> None:
    params = {"start": at(0), "end": at(6), "site": stored["site"]}
    chart = api.http.get("/api/v1/reports/chart", params=params, headers=api.admin)
    assert chart.status_code == 200, chart.text
    assert chart.json() == dashboard_spec(report(api, **params))


def test_the_clients_read_reports_as_dataframes(api: ApiHarness, stored: Any) -> None:
    import asyncio

    import httpx

    from vpp.client import AsyncClient, Client

    token = api.admin["Authorization"].removeprefix("Bearer ")
    client = Client("http://testserver", token=token, transport=api.http._transport)
    frame = client.reports(at(0), at(6))
    assert {"home", f"job {stored['c']}"} <= set(frame.index) and frame.index[-1] == "total"
    assert frame.loc["home", "energy-cost"] == pytest.approx(0.06)
    assert frame.loc[f"job {stored['c']}", "savings"] == pytest.approx(0.08)
    assert frame.loc["total", "savings"] == pytest.approx(frame["savings"].iloc[:-1].sum())
    assert frame.loc["home", "jobs"] == 2 and frame.loc["home", "hours"] == 6
    assert frame.attrs["units"]["energy-cost"] == "EUR" and frame.attrs["units"]["import"] == "kWh"
    assert "emissions" not in frame.columns
    only = client.reports(at(0), at(6), site=stored["site"])
    assert list(only.index) == ["home", "total"]
    job = client.report_frame(stored["c"])
    assert list(job.index) == ["site"] and job.loc["site", "baseline-cost"] == pytest.approx(0.14)
    with pytest.raises(ValueError, match="timezone-aware"):
        client.reports("2026-03-02T00:00:00", at(6))

    async def read() -> Any:
        transport = httpx.ASGITransport(app=api.app)
        async with AsyncClient("http://testserver", token=token, transport=transport) as aclient:
            return await aclient.reports(at(0), at(6), portfolio=stored["portfolio"])

    assert list(asyncio.run(read()).index) == ["home", "total"]


# -- the page in Chromium ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The app on uvicorn at 127.0.0.1 with two finished jobs of one stored site."""
    import httpx
    from test_charts import wait_finished

    app = create_app(f"sqlite:///{tmp_path_factory.mktemp('live-reports') / 'vpp.db'}")
    token = admin_token(app)
    with (
        served(app) as base,
        httpx.Client(base_url=base, headers=bearer(token), timeout=30) as http,
    ):
        site = http.post("/api/v1/sites", json={"name": "home", "flex-model": [BATTERY]})
        assert site.status_code == 201, site.text
        for first, prices in ((0, PRICES_A), (2, PRICES_B)):
            posted = http.post(
                "/api/v1/scheduling-job/storage",
                json={"site": site.json()["id"], **job_body(first, prices)},
            )
            assert posted.status_code == 202, posted.text
            wait_finished(http, posted.json()["job"], token)
        yield base, token


@needs_chromium
def test_dashboard_page_renders_in_chromium(live: tuple[str, str], tmp_path: Path) -> None:
    base, token = live
    query = f"start={at(0).replace('+', '%2B')}&end={at(6).replace('+', '%2B')}"
    dom = chromium(f"{base}/ui/reports?{query}#token={token}", tmp_path / "profile", "--dump-dom")
    assert console_lines(dom.stderr) == [], "the page logged to its console"
    html = dom.stdout
    assert 'data-state="rendered"' in html, html[-2000:]
    assert re.search(r'<div id="error" role="alert" hidden=""', html), "no error shown"
    chart = html[html.index('<div id="chart"') :]
    assert "<svg" in chart and 'class="marks"' in chart
    # two panels (no production: no shares); bars: cost (schedule, baseline), savings
    assert chart.count('aria-roledescription="bar"') == 3, chart[:3000]
    assert "1 site(s) · savings 0.22 EUR" in html
    assert CHROMIUM.exists()


@needs_chromium
def test_dashboard_page_names_a_refused_period(live: tuple[str, str], tmp_path: Path) -> None:
    base, token = live
    done = chromium(
        f"{base}/ui/reports?start=2026-03-02T06:00:00Z&end=2026-03-02T00:00:00Z#token={token}",
        tmp_path / "profile",
        "--dump-dom",
    )
    assert 'data-state="error"' in done.stdout
    assert "The period was refused (422): end: must be later than start" in done.stdout
    assert not [line for line in console_lines(done.stderr) if "Uncaught" in line]


def test_dashboard_spec_with_production_co2_and_nothing() -> None:
    """A solar house (tests/test_kpi.py's: self-consumption 1, self-sufficiency 0.75) with a
    CO2 intensity draws the shares and emissions panels; an empty report is one line."""
    request = job_body(
        0,
        PRICES_A,
        **{
            "production-price": "0 EUR/MWh",
            "inflexible-devices": {"house": "1 kW"},
            "co2-intensity": "100 g/kWh",
        },
    )
    request["flex-model"] = [
        BATTERY,
        {"name": "pv", "type": "generation", "production": {"values": [0, 3, 3, 0], "unit": "kW"}},
    ]
    report = period_report([source("sun", "s", 0, request)], T0, T0 + timedelta(hours=4))
    spec = dashboard_spec(report)
    rows = {(r["panel"], r["series"]): r["value"] for r in spec["data"]["values"]}
    assert rows[("shares", "self-consumption")] == pytest.approx(1.0)
    assert rows[("shares", "self-sufficiency")] == pytest.approx(0.75)
    assert rows[("emissions", "schedule")] == pytest.approx(0.1)  # 1 kWh imported at 0.1 kg
    assert [p["title"]["text"].split(":")[0] for p in spec["vconcat"]] == [
        "Energy cost",
        "Savings against the baseline",
        "Self-consumption and self-sufficiency",
        "CO2 emissions",
    ]
    empty = dashboard_spec(period_report([], T0, T0 + timedelta(hours=4)))
    assert empty["data"]["values"] == [] and empty["vconcat"][0]["mark"]["type"] == "text"


def test_a_portfolio_jobs_stored_and_inline_sites(api: ApiHarness, stored: Any) -> None:
    """A portfolio job (recorded as a UFTP reschedule is) on the next day with two copies of
    job A's battery: ``home`` is the stored site, ``shed`` inline. Each charges at 02:00 and
    03:00 (0.06 EUR) against a baseline of 0.14; home's row is the stored site's."""
    from actors.job_service import record_portfolio_job
    from store.tables import Site
    from vpp.portfolio import CentralisedPortfolio, parse_portfolio

    single = job_body(24, PRICES_A)
    body = {
        **{k: single[k] for k in ("start", "duration", "resolution", "flex-context")},
        "sites": [{"id": name, "flex-model": single["flex-model"]} for name in ("home", "shed")],
    }
    result = CentralisedPortfolio(parse_portfolio(body)).solve().to_json()
    with api.app.state.sessions.begin() as session:
        home = session.get(Site, stored["site"])
        assert home is not None
        job_id = record_portfolio_job(
            session, body, result, account_id=home.account_id, sites={"home": home}
        )
    sites = {s["key"]: s for s in report(api, start=at(24), end=at(28))["sites"]}
    assert set(sites) == {f"site:{stored['site']}", f"job:{job_id}/shed"}
    for site in sites.values():
        assert site["jobs"] == [job_id]
        assert site["kpis"]["energy-cost"]["value"] == pytest.approx(0.06)
        assert site["kpis"]["baseline-cost"]["value"] == pytest.approx(0.14)
    assert sites[f"job:{job_id}/shed"]["site"] is None
    assert sites[f"site:{stored['site']}"]["kpis"]["energy-cost"]["value"] == pytest.approx(
        hand_energy_cost(api, stored["site"], 24, 28, {24: dict(enumerate(PRICES_A))})
    )


def test_too_many_jobs_in_a_period_is_refused_by_name(
    api: ApiHarness, stored: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each job's baseline is re-solved: a period with more jobs than the bound is a 422
    naming ``start`` (here the bound is 1; the period holds jobs A and B)."""
    from api.routes import reports as routes

    monkeypatch.setattr(routes, "MAX_REPORT_JOBS", 1)
    response = api.http.get(
        "/api/v1/reports",
        params={"start": at(0), "end": at(6), "site": stored["site"]},
        headers=api.admin,
    )
    assert_problem(response, 422)
    assert [e["field"] for e in response.json()["errors"]] == ["start"]


def test_a_schedules_kpis_are_computed_once_per_process(
    api: ApiHarness, stored: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report and its dashboard of the same period re-solve each baseline once."""
    from api.routes import reports as routes

    calls: list[str] = []

    def counted(source: ScheduleSource) -> Any:
        calls.append(source.job)
        return source_kpis(source)

    monkeypatch.setattr(routes, "KPI_CACHE", routes.KpiCache(10))
    monkeypatch.setattr(routes, "source_kpis", counted)
    params = {"start": at(0), "end": at(6), "site": stored["site"]}
    first = report(api, **params)
    chart = api.http.get("/api/v1/reports/chart", params=params, headers=api.admin)
    assert chart.status_code == 200 and report(api, **params) == first
    assert sorted(calls) == sorted([stored["a"], stored["b"]])
