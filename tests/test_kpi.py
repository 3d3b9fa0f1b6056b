"""KPIs of a schedule (issue 14 item 5), against numbers derived by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import ApiHarness, assert_problem, harness

from actors.job_service import execute_job
from store import repository as repo
from vpp.kpi import site_kpis
from vpp.site import schedule

START = "2026-03-02T00:00:00+00:00"


def _request(**context: Any) -> dict[str, Any]:
    return {
        "start": START,
        "duration": "PT4H",
        "resolution": "PT1H",
        "flex-model": [
            {
                "name": "battery",
                "soc-at-start": "0 kWh",
                "soc-max": "4 kWh",
                "power-capacity": "2 kW",
                "soc-targets": [{"datetime": "2026-03-02T04:00:00+00:00", "value": "4 kWh"}],
            }
        ],
        "flex-context": {
            "consumption-price": {"values": [40, 30, 20, 10], "unit": "EUR/MWh"},
            **context,
        },
    }


def test_a_battery_that_waits_for_the_cheap_hours() -> None:
    """The battery must hold 4 kWh at 04:00 (2 kW). Scheduled, it charges in the two cheapest
    hours: 2 kWh at 20 + 2 kWh at 10 EUR/MWh = 0.06 EUR. Price-blind (flat 25 EUR/MWh, ties
    broken by charging sooner) it charges at once: 2 at 40 + 2 at 30 = 0.14 EUR, so the
    schedule saves 0.08 EUR. It imports 4 kWh at 2 kW peak; nothing is produced (no
    self-consumption) and nothing is consumed either: the 4 kWh stay in the battery."""
    request = _request()
    kpis = site_kpis(request, schedule(request))
    assert kpis["energy-cost"]["value"] == pytest.approx(0.06)
    assert kpis["baseline-cost"]["value"] == pytest.approx(0.14)
    assert kpis["savings"]["value"] == pytest.approx(0.08)
    assert (kpis["import"]["value"], kpis["export"]["value"]) == pytest.approx((4.0, 0.0))
    assert kpis["peak-import"]["value"] == pytest.approx(2.0)
    assert kpis["self-consumption"] is None and kpis["self-sufficiency"] is None
    assert kpis["consumption"]["value"] == pytest.approx(0.0)
    assert kpis["penalties"] == {}


def test_solar_house_and_battery() -> None:
    """A 1 kW house, PV 0, 3, 3, 0 kW, the same battery without a target, feed-in paid
    nothing. The PV surplus (2 kW in hours 1 and 2) fills the battery (4 kWh), which covers
    the house in hour 3 (1 kWh); hour 0 is imported: 1 kWh at 40 EUR/MWh = 0.04 EUR.
    Production 6 kWh, nothing exported: self-consumption 1. Consumption is the house's 4 kWh
    (the battery keeps 3 of its 4 kWh, lossless: it used up nothing): self-sufficiency
    (4 - 1) / 4 = 0.75. Price-blind (25 EUR/MWh for import and export alike) every
    lossless schedule ending empty costs the same, and keeping energy costs 25 EUR/MWh, so it
    ends empty; the tie-break then fills the battery at once and empties it last: 2 kW in
    hours 0 and 1, -2 kW in hours 2 and 3. Site power 3, 0, -4, -1 kW, settled at the real
    prices: 3 kWh at 40 EUR/MWh = 0.12 EUR (feed-in pays 0), a saving of 0.08 EUR."""
    request = _request(**{"production-price": "0 EUR/MWh", "inflexible-devices": {"house": "1 kW"}})
    request["flex-model"][0].pop("soc-targets")
    request["flex-model"].append(
        {"name": "pv", "type": "generation", "production": {"values": [0, 3, 3, 0], "unit": "kW"}}
    )
    result = schedule(request)
    kpis = site_kpis(request, result)
    assert kpis["energy-cost"]["value"] == pytest.approx(0.04)
    assert kpis["production"]["value"] == pytest.approx(6.0)
    assert kpis["consumption"]["value"] == pytest.approx(4.0)
    assert kpis["import"]["value"] == pytest.approx(1.0)
    assert kpis["self-consumption"] == pytest.approx(1.0)
    assert kpis["self-sufficiency"] == pytest.approx(0.75)
    assert kpis["baseline-cost"]["value"] == pytest.approx(0.12)
    assert kpis["savings"]["value"] == pytest.approx(0.08)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    with harness("sqlite", Path(tmp_path_factory.mktemp("reports"))) as h:
        yield h


def _run(api: ApiHarness, url: str, body: dict[str, Any]) -> str:
    response = api.http.post(url, json=body, headers=api.admin)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job"]
    return job_id


def test_the_report_of_a_job_recomputes_its_kpis(api: ApiHarness) -> None:
    job_id = _run(api, "/api/v1/scheduling-job/storage", _request())
    early = api.http.get(f"/api/v1/scheduling-job/{job_id}/report", headers=api.admin)
    assert_problem(early, 409)
    sessions = api.app.state.sessions
    with sessions.begin() as session:
        repo.set_job_status(session, job_id, "running")
    assert execute_job(sessions, job_id) == "finished"
    report = api.http.get(f"/api/v1/scheduling-job/{job_id}/report", headers=api.admin)
    assert report.status_code == 200, report.text
    site = report.json()["site"]
    assert site["energy-cost"]["value"] == pytest.approx(0.06)  # the first test's numbers
    assert site["savings"]["value"] == pytest.approx(0.08)
    other = api.account("report-outsider")
    assert_problem(api.http.get(f"/api/v1/scheduling-job/{job_id}/report", headers=other), 404)


def test_a_portfolio_report_sums_its_sites() -> None:
    """Two copies of the first test's battery site: every sum doubles, the shares stay."""
    from api.routes.reports import portfolio_kpis
    from vpp.portfolio import CentralisedPortfolio, parse_portfolio

    single = _request()
    body = {
        **{k: single[k] for k in ("start", "duration", "resolution", "flex-context")},
        "sites": [{"id": i, "flex-model": single["flex-model"]} for i in ("a", "b")],
    }
    result = CentralisedPortfolio(parse_portfolio(body)).solve().to_json()
    kpis = portfolio_kpis(body, result)
    assert kpis["portfolio"]["energy-cost"]["value"] == pytest.approx(0.12)
    assert kpis["portfolio"]["savings"]["value"] == pytest.approx(0.16)
    assert kpis["portfolio"]["import"]["value"] == pytest.approx(8.0)
    assert kpis["portfolio"]["peak-import"]["value"] == pytest.approx(4.0)
    assert kpis["sites"]["a"]["energy-cost"]["value"] == pytest.approx(0.06)


def test_the_python_client_reads_a_report(api: ApiHarness) -> None:
    from vpp.client import Client

    job_id = _run(api, "/api/v1/scheduling-job/storage", _request())
    sessions = api.app.state.sessions
    with sessions.begin() as session:
        repo.set_job_status(session, job_id, "running")
    assert execute_job(sessions, job_id) == "finished"
    token = api.admin["Authorization"].removeprefix("Bearer ")
    client = Client("http://testserver", token=token, transport=api.http._transport)
    assert client.report(job_id)["site"]["savings"]["value"] == pytest.approx(0.08)
