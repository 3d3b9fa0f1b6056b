"""Forecasting jobs over REST (issue 14 item 1): a stored sensor forecast, the forecast stored
on it as beliefs, read by schedules as the newest belief or as known at a time, its job
readable, every bad field named. The model's accuracy is tests/test_forecast.py's subject."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_harness import ApiHarness, assert_problem, harness

from api.forecasting import _holidays
from api.references import AccountScope, expand_sensors
from store import Annotation
from store import repository as repo

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # the first forecast step
DAYS = 15


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    with harness("sqlite", Path(tmp_path_factory.mktemp("forecasting"))) as h:
        yield h


def _pattern(hours: np.ndarray) -> np.ndarray:
    return 1.0 + np.sin(2 * np.pi * hours / 24.0)


def _sensor(api: ApiHarness, name: str, headers: dict[str, str] | None = None) -> int:
    headers = headers or api.admin
    made = api.http.post(
        "/api/v1/sensors", json={"name": name, "unit": "kW", "resolution": "PT1H"}, headers=headers
    )
    assert made.status_code == 201, made.text
    sensor = int(made.json()["id"])
    start = T0 - timedelta(days=DAYS)
    values = _pattern(np.arange(DAYS * 24)).round(6).tolist()
    body = {"start": start.isoformat(), "values": values, "source": "meter"}
    stored = api.http.post(f"/api/v1/sensors/{sensor}/data", json=body, headers=headers)
    assert stored.status_code == 200, stored.text
    return sensor


def _forecast(api: ApiHarness, **body: Any) -> Any:
    return api.http.post("/api/v1/forecasting-job", json=body, headers=api.admin)


def _read(api: ApiHarness, sensor: int, as_of: datetime | None = None) -> list[float]:
    ref: dict[str, Any] = {"sensor": sensor}
    if as_of is not None:
        ref["as-of"] = as_of.isoformat()
    body = {"start": T0.isoformat(), "duration": "PT24H", "resolution": "PT1H", "x": ref}
    with api.app.state.sessions.begin() as session:
        account = repo.get_sensor(session, sensor).account_id
        expanded = expand_sensors(session, AccountScope((account,)), body)
    return [float(v) for v in expanded["x"]["values"]]


def test_a_forecast_is_stored_as_beliefs_and_read_by_schedules(api: ApiHarness) -> None:
    sensor = _sensor(api, "house")
    made = _forecast(api, sensor=sensor)  # start: after the last measurement, i.e. T0
    assert made.status_code == 200, made.text
    body = made.json()
    result = body["result"]
    assert body["status"] == "finished"
    assert result["start"] == T0.isoformat()
    assert result["resolution"] == "PT1H" and result["unit"] == "kW"
    assert len(result["values"]) == 24 and result["coverage"] == 0.8
    assert result["history-values"] == DAYS * 24  # P28D asked, 15 days stored
    values = np.array(result["values"])
    assert np.all(np.array(result["lower"]) <= values + 1e-9)
    assert np.all(values <= np.array(result["upper"]) + 1e-9)
    # the pattern repeats every day: a forecast within 0.1 kW of it is a forecast, not noise
    assert np.abs(values - _pattern(np.arange(24))).max() < 0.1
    # stored on the sensor: a schedule's {"sensor": id} reads exactly these values
    assert _read(api, sensor) == pytest.approx(result["values"], abs=1e-9)
    again = api.http.get(f"/api/v1/forecasting-job/{body['forecasting-job']}", headers=api.admin)
    assert again.status_code == 200 and again.json() == body


def test_schedules_read_the_newest_forecast_or_the_one_known_then(api: ApiHarness) -> None:
    sensor = _sensor(api, "pv")
    first = _forecast(api, sensor=sensor).json()["result"]
    between = datetime.now(UTC)
    # a day of measurements 2 kW higher, and a new forecast of the same day from them
    start = T0 - timedelta(days=1)
    body = {"start": start.isoformat(), "values": [3.0] * 24, "source": "meter"}
    api.http.post(f"/api/v1/sensors/{sensor}/data", json=body, headers=api.admin)
    second = _forecast(api, sensor=sensor, start=T0.isoformat()).json()["result"]
    assert second["values"] != first["values"]
    assert _read(api, sensor) == pytest.approx(second["values"], abs=1e-9)
    assert _read(api, sensor, as_of=between) == pytest.approx(first["values"], abs=1e-9)


def test_history_is_measurements_only(api: ApiHarness) -> None:
    # A forecast of the day after T0 learns from the measured days, not from the forecast of
    # T0's day stored before: it learns from the same number of values as the first one.
    sensor = _sensor(api, "heat")
    first = _forecast(api, sensor=sensor, history="P16D").json()["result"]
    later = T0 + timedelta(days=1)
    second = _forecast(api, sensor=sensor, start=later.isoformat(), history="P16D")
    assert second.status_code == 200, second.text
    assert first["history-values"] == second.json()["result"]["history-values"] == DAYS * 24


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"duration": "PT90M"}, "duration"),
        ({"duration": "P15D"}, "duration"),
        ({"history": "P400D"}, "history"),
        ({"history": "PT0S"}, "history"),
        ({"coverage": 1.5}, "coverage"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"start": "2026-03-02T00:00:00"}, "start"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_fields_are_named(api: ApiHarness, change: dict[str, Any], field: str) -> None:
    sensor = _sensor(api, f"bad-{field}-{len(str(change))}")
    response = _forecast(api, sensor=sensor, **change)
    body = assert_problem(response, 422)
    fields = [e["field"] for e in body["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), fields


def test_too_little_history_and_no_measurements_are_named(api: ApiHarness) -> None:
    sensor = _sensor(api, "short")
    assert_problem(_forecast(api, sensor=sensor, history="P2D"), 422)
    empty = api.http.post(
        "/api/v1/sensors", json={"name": "empty", "unit": "kW", "resolution": "PT1H"},
        headers=api.admin,
    ).json()["id"]  # fmt: skip
    assert_problem(_forecast(api, sensor=empty), 422, "start")
    assert_problem(_forecast(api, sensor=10**6), 404)


def test_other_accounts_see_nothing(api: ApiHarness) -> None:
    sensor = _sensor(api, "private")
    job = _forecast(api, sensor=sensor).json()["forecasting-job"]
    other = api.account("forecast-stranger")
    response = api.http.post("/api/v1/forecasting-job", json={"sensor": sensor}, headers=other)
    assert_problem(response, 404)
    assert_problem(api.http.get(f"/api/v1/forecasting-job/{job}", headers=other), 404)
    assert_problem(api.http.get("/api/v1/forecasting-job/not-a-job", headers=api.admin), 404)


def test_holiday_annotations_are_local_dates(api: ApiHarness) -> None:
    from zoneinfo import ZoneInfo

    sensor = _sensor(api, "holidays")
    amsterdam = ZoneInfo("Europe/Amsterdam")
    with api.app.state.sessions.begin() as session:
        stored = repo.get_sensor(session, sensor)
        christmas = datetime(2025, 12, 25, tzinfo=amsterdam)
        for target in ({"sensor_id": sensor}, {}):  # the sensor's own, and its account's
            session.add(
                Annotation(
                    account_id=stored.account_id, type="holiday", content="",
                    start_time=christmas, end_time=christmas + timedelta(days=2), **target,
                )
            )  # fmt: skip
        session.flush()
        found = _holidays(session, stored, christmas - timedelta(days=5), T0, amsterdam)
    # 2025-12-24T23:00Z is Christmas Day in Amsterdam, not Christmas Eve
    assert found == {christmas.date(), christmas.date() + timedelta(days=1)}


def test_the_python_client_forecasts(api: ApiHarness) -> None:
    from vpp.client import Client

    sensor = _sensor(api, "client-made")
    token = api.admin["Authorization"].removeprefix("Bearer ")
    client = Client("http://testserver", token=token, transport=api.http._transport)
    made = client.forecast(sensor, duration="PT6H", timezone="Europe/Amsterdam", coverage=0.9)
    assert len(made["result"]["values"]) == 6 and made["result"]["coverage"] == 0.9
    assert client.forecasting_job(made["forecasting-job"]) == made


def test_vpp_forecast_sensor_runs_on_the_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from api.cli import main
    from store import make_engine, session_factory, upgrade
    from vpp.settings import get_settings

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine).begin() as session:
        account = repo.get_or_create_account(session, "cli")
        sensor = repo.get_or_create_sensor(session, account, "load", "kW", timedelta(hours=1))
        values = _pattern(np.arange(DAYS * 24)).tolist()
        repo.save_time_series(session, sensor, T0 - timedelta(days=DAYS), timedelta(hours=1),
                              values, "meter")  # fmt: skip
        sensor_id = sensor.id
    engine.dispose()
    monkeypatch.setenv("VPP_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert main(["forecast", "sensor", str(sensor_id), "--duration", "PT3H"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["result"]["start"] == T0.isoformat() and len(out["result"]["values"]) == 3
        assert main(["forecast", "sensor", str(sensor_id), "--duration", "PT90M"]) == 2
        assert "duration" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
