"""Issue 11, item 3: bounded work, refused before it starts. The body size (413), the steps
of a job, the devices of a site, the sites of a portfolio and the points of a sensor read
(422 naming the limit), with the defaults and with limits set in the environment; sensor
reads page with ``limit`` and ``next``.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_harness import ApiHarness, assert_problem, harness

from vpp.settings import Settings, get_settings

pytest_plugins = ["db_fixtures"]

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    # the limits do not depend on the database; SQLite keeps this module quick
    with harness("sqlite", tmp_path_factory.mktemp("limits")) as h:
        yield h


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``limits(MAX_BODY_BYTES=...)`` sets ``VPP_*`` limits for one test."""

    def set_limits(**values: int) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"VPP_{name}", str(value))
        get_settings.cache_clear()

    yield set_limits
    monkeypatch.undo()
    get_settings.cache_clear()


def _limit(response: Any, limit: str, field: str) -> dict[str, Any]:
    body = assert_problem(response, 422, field)
    assert body["type"] == "urn:vpp:error:LimitExceededError"
    assert body["limit"] == limit and isinstance(body["maximum"], int)
    return body


def test_defaults_are_sane() -> None:
    defaults = Settings()
    assert defaults.max_body_bytes == 16 * 2**20
    assert defaults.max_job_steps >= 366 * 96  # a year at PT15M
    assert 100 <= defaults.max_site_devices < 10_000
    assert defaults.max_portfolio_sites >= 10_000  # ADMM is benchmarked at N = 10,000
    assert 86_400 <= defaults.max_sensor_points < 10_000_000


# --------------------------------------------------------------------------- body size


def test_a_body_over_the_limit_is_413(api: ApiHarness, limits: Any) -> None:
    limits(MAX_BODY_BYTES=1000)
    body = {"name": "big", "flex-context": {"note": "x" * 2000}}
    response = api.http.post("/api/v1/sites", json=body, headers=api.admin)
    problem = assert_problem(response, 413)
    assert problem["maximum"] == 1000 and "VPP_MAX_BODY_BYTES" in problem["detail"]
    # just under the limit is read (and answered on its merits)
    small = api.http.post("/api/v1/sites", json={"name": "small"}, headers=api.admin)
    assert small.status_code == 201, small.text


def test_a_streamed_body_over_the_limit_is_413(api: ApiHarness, limits: Any) -> None:
    limits(MAX_BODY_BYTES=1000)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "streamed", "flex-context": {"note": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}}'

    response = api.http.post("/api/v1/sites", content=chunks(), headers={
        **api.admin, "Content-Type": "application/json"})
    assert_problem(response, 413)


def test_a_50_mb_body_is_refused_at_once(api: ApiHarness) -> None:
    raw = b'{"name": "huge", "flex-context": {"note": "' + b"x" * (50 * 2**20) + b'"}}'
    started = time.monotonic()
    response = api.http.post("/api/v1/sites", content=raw, headers={
        **api.admin, "Content-Type": "application/json"})
    assert_problem(response, 413)
    assert time.monotonic() - started < 2.0


def test_the_uftp_endpoint_is_bounded_too(api: ApiHarness, limits: Any) -> None:
    limits(MAX_BODY_BYTES=1000)
    response = api.http.post("/shapeshifter/api/v3/message", content=b"<x/>" * 1000,
                             headers={"Content-Type": "text/xml"})
    assert_problem(response, 413)


# --------------------------------------------------------------------------- job size


def _battery() -> dict[str, Any]:
    return dict(json.loads((EXAMPLE / "battery.json").read_text()))


def test_a_year_at_one_minute_is_refused(api: ApiHarness) -> None:
    body = _battery()
    body["flex-context"] = {"consumption-price": "50 EUR/MWh"}
    body.pop("resolution", None)
    body["flex-model"].pop("soc-targets", None)
    body |= {"duration": "PT8760H", "resolution": "PT1M"}
    started = time.monotonic()
    response = api.http.post("/api/v1/scheduling-job/storage", json=body, headers=api.admin)
    body_ = _limit(response, "max-job-steps", "duration")
    assert "525600 steps" in body_["detail"]
    assert time.monotonic() - started < 2.0
    jobs = api.http.get("/api/v1/scheduling-jobs", headers=api.admin).json()
    assert jobs == []  # nothing was queued


def test_steps_are_counted_from_end_too(api: ApiHarness, limits: Any) -> None:
    limits(MAX_JOB_STEPS=96)
    body = _battery()
    body["flex-context"] = {"consumption-price": "50 EUR/MWh"}
    body["flex-model"].pop("soc-targets", None)
    del body["duration"]
    body["end"] = "2026-03-03T00:15:00+01:00"  # 97 steps of the default PT15M
    body.pop("resolution", None)
    _limit(api.http.post("/api/v1/scheduling-job/storage", json=body, headers=api.admin),
           "max-job-steps", "end")


def test_a_site_with_too_many_devices(api: ApiHarness) -> None:
    devices = [{"name": f"b{i}", "soc-max": "1 kWh", "power-capacity": "1 kW"}
               for i in range(10_000)]
    body = _battery() | {"flex-model": devices}
    _limit(api.http.post("/api/v1/scheduling-job/storage", json=body, headers=api.admin),
           "max-site-devices", "flex-model")
    _limit(api.http.post("/api/v1/sites", json={"name": "many", "flex-model": devices},
                         headers=api.admin), "max-site-devices", "flex-model")


def test_limits_come_from_the_settings(api: ApiHarness, limits: Any) -> None:
    limits(MAX_SITE_DEVICES=1)
    two = [{"name": f"b{i}", "soc-at-start": "0 kWh", "soc-max": "1 kWh",
            "power-capacity": "1 kW"} for i in range(2)]
    body = _limit(api.http.post("/api/v1/sites", json={"name": "two", "flex-model": two},
                                headers=api.admin), "max-site-devices", "flex-model")
    assert body["maximum"] == 1
    site = api.http.post("/api/v1/sites", json={"name": "two ok", "flex-model": two[:1]},
                         headers=api.admin)
    assert site.status_code == 201, site.text
    # a stored site whose job adds a device is counted after the merge
    job = {"site": site.json()["id"], "start": "2026-03-02T00:00:00+01:00", "duration": "PT1H",
           "flex-model": [two[1]], "flex-context": {"consumption-price": "50 EUR/MWh"}}
    _limit(api.http.post("/api/v1/scheduling-job/storage", json=job, headers=api.admin),
           "max-site-devices", "flex-model")


def test_a_portfolio_with_too_many_sites(api: ApiHarness, limits: Any) -> None:
    limits(MAX_PORTFOLIO_SITES=2)
    request = json.loads((EXAMPLE / "portfolio.json").read_text())
    assert len(request["sites"]) > 2
    _limit(api.http.post("/api/v1/scheduling-job/portfolio", json=request, headers=api.admin),
           "max-portfolio-sites", "sites")
    ids = []
    for i in range(3):
        site = api.http.post("/api/v1/sites", json={"name": f"pf-{i}"}, headers=api.admin)
        assert site.status_code == 201, site.text
        ids.append(site.json()["id"])
    _limit(api.http.post("/api/v1/portfolios", json={"name": "pf", "sites": ids},
                         headers=api.admin), "max-portfolio-sites", "sites")


def test_a_portfolio_site_with_too_many_devices(api: ApiHarness, limits: Any) -> None:
    limits(MAX_SITE_DEVICES=1)
    request = json.loads((EXAMPLE / "portfolio.json").read_text())
    many = copy.deepcopy(request)
    first = many["sites"][0]
    model = first["flex-model"]
    devices = model if isinstance(model, list) else [model]
    first["flex-model"] = [dict(d, name=f"d{i}") for i, d in enumerate(devices * 2)]
    _limit(api.http.post("/api/v1/scheduling-job/portfolio", json=many, headers=api.admin),
           "max-site-devices", "sites[0].flex-model")


def test_portfolio_job_steps(api: ApiHarness, limits: Any) -> None:
    limits(MAX_JOB_STEPS=10)
    request = json.loads((EXAMPLE / "portfolio.json").read_text())
    _limit(api.http.post("/api/v1/scheduling-job/portfolio", json=request, headers=api.admin),
           "max-job-steps", "duration" if "duration" in request else "end")


# --------------------------------------------------------------------------- sensor reads


@pytest.fixture
def seconds_sensor(api: ApiHarness) -> tuple[int, datetime]:
    sensor = api.http.post("/api/v1/sensors", json={
        "name": f"pt1s {time.monotonic_ns()}", "unit": "kW", "resolution": "PT1S"},
        headers=api.admin)
    assert sensor.status_code == 201, sensor.text
    start = datetime(2026, 1, 1, tzinfo=UTC)
    stored = api.http.post(f"/api/v1/sensors/{sensor.json()['id']}/data", json={
        "start": start.isoformat(), "values": [float(i) for i in range(3600)]},
        headers=api.admin)
    assert stored.status_code == 200, stored.text
    return int(sensor.json()["id"]), start


def test_a_read_of_too_many_points_is_refused(api: ApiHarness, seconds_sensor: Any) -> None:
    sensor, start = seconds_sensor
    params = {"start": start.isoformat(), "end": (start + timedelta(days=2)).isoformat()}
    _limit(api.http.get(f"/api/v1/sensors/{sensor}/data", params=params, headers=api.admin),
           "max-sensor-points", "end")
    # resampled to an hour, it still reads every stored second: refused the same way
    hourly = params | {"resolution": "PT1H"}
    _limit(api.http.get(f"/api/v1/sensors/{sensor}/data", params=hourly, headers=api.admin),
           "max-sensor-points", "end")


def test_sensor_reads_page(api: ApiHarness, seconds_sensor: Any, limits: Any) -> None:
    limits(MAX_SENSOR_POINTS=1000)
    sensor, start = seconds_sensor
    end = start + timedelta(hours=1)
    params: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat()}
    _limit(api.http.get(f"/api/v1/sensors/{sensor}/data", params=params, headers=api.admin),
           "max-sensor-points", "end")
    _limit(api.http.get(f"/api/v1/sensors/{sensor}/data", params=params | {"limit": 5000},
                        headers=api.admin), "max-sensor-points", "limit")
    values: list[float] = []
    cursor: str | None = start.isoformat()
    pages = 0
    while cursor is not None:
        page = api.http.get(f"/api/v1/sensors/{sensor}/data",
                            params=params | {"start": cursor, "limit": 1000}, headers=api.admin)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["values"]) <= 1000 and body["start"] == cursor
        values += body["values"]
        cursor = body["next"]
        pages += 1
    assert pages == 4
    assert values == [float(i) for i in range(3600)]


def test_a_read_starting_inside_a_stored_value_gets_that_value(api: ApiHarness) -> None:
    """An hourly sensor read at PT15M from 00:15 (a page boundary, or a job starting then):
    the 00:00 value covers 00:15-00:45, it is not missing (it was null, and a job starting
    at 00:15 was refused for "no data")."""
    sensor = api.http.post("/api/v1/sensors", json={
        "name": f"hourly {time.monotonic_ns()}", "unit": "EUR/MWh", "resolution": "PT1H"},
        headers=api.admin).json()["id"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    api.http.post(f"/api/v1/sensors/{sensor}/data", json={
        "start": start.isoformat(), "values": [10.0, 20.0]}, headers=api.admin)
    params = {"start": (start + timedelta(minutes=15)).isoformat(),
              "end": (start + timedelta(hours=2)).isoformat(), "resolution": "PT15M"}
    body = api.http.get(f"/api/v1/sensors/{sensor}/data", params=params, headers=api.admin)
    assert body.status_code == 200, body.text
    assert body.json()["values"] == [10.0] * 3 + [20.0] * 4
    job = api.http.post("/api/v1/scheduling-job/storage", headers=api.admin, json={
        "start": params["start"], "duration": "PT1H", "resolution": "PT15M",
        "flex-model": {"soc-at-start": "1 kWh", "soc-max": "2 kWh", "power-capacity": "1 kW"},
        "flex-context": {"consumption-price": {"sensor": sensor}}})
    assert job.status_code == 202, job.text
