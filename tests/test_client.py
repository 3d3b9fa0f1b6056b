"""vpp.client: request building, error mapping, pandas conversions, waiting and progress,
what-if arithmetic (all against ``httpx.MockTransport``), and one end-to-end run against the
real API app (no Ray) served by uvicorn in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from api.app import InlineDispatcher
from vpp import client as vc
from vpp import errors
from vpp.client import (
    AsyncClient,
    Client,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    VppApiError,
)

START = "2026-03-02T00:00:00+01:00"
Handler = Callable[[httpx.Request], httpx.Response]


# -- helpers ------------------------------------------------------------------------------
class Recorder:
    """A MockTransport handler that records every request and answers from ``routes``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def clock(self) -> float:
        return self.now


def make_client(handler: Handler, clock: FakeClock | None = None, **kw: Any) -> Client:
    client = Client("http://vpp.test", token="secret", transport=httpx.MockTransport(handler), **kw)
    if clock is not None:
        client._sleep = clock.sleep
        client._clock = clock.clock
    return client


def instants(start: str, minutes: int, n: int) -> list[datetime]:
    """Independently of the client: ``n`` instants from ``start`` every ``minutes``."""
    t0 = datetime.fromisoformat(start)
    return [t0 + k * timedelta(minutes=minutes) for k in range(n)]


def site_result(start: str = START, minutes: int = 15) -> dict[str, Any]:
    battery = [2.0, -1.5, 0.0, 3.25]
    ev = [0.0, 1.0, 1.0, 0.5]
    return {
        "status": "finished",
        "start": start,
        "duration": f"PT{len(battery) * minutes}M",
        "resolution": f"PT{minutes}M",
        "devices": [
            {
                "name": "battery",
                "type": "storage",
                "power": {"values": battery, "unit": "kW"},
                "soc": {"values": [5.0, 5.5, 5.1, 5.1, 5.9], "unit": "kWh"},
            },
            {
                "name": "ev",
                "type": "storage",
                "power": {"values": ev, "unit": "kW"},
                "soc": {"values": [20.0, 20.0, 20.25, 20.5, 20.625], "unit": "kWh"},
            },
            {"name": "pv", "type": "generation", "power": {"values": [0, 0, -1, -2], "unit": "kW"}},
        ],
        "site": {"power": {"values": [2.0, -0.5, 0.0, 1.75], "unit": "kW"}},
        "cost": {"value": 0.12, "unit": "EUR"},
    }


def portfolio_result(
    powers: dict[str, list[float]],
    *,
    cost: float = 10.0,
    iterations: int = 30,
    converged: bool = True,
    violation: float = 0.0,
    gap: float | None = None,
    resolution: str = "PT15M",
) -> dict[str, Any]:
    total = np.sum(list(powers.values()), axis=0)
    summary: dict[str, Any] = {
        "power": {"values": total.tolist(), "unit": "kW"},
        "cost": {"value": cost, "unit": "EUR"},
        "target-violation-kw": violation,
        "iterations": iterations,
        "converged": converged,
        "primal-residual": 0.01,
        "dual-residual": 0.002,
        "degraded-sites": [],
    }
    if gap is not None:
        summary["gap"] = gap
    steps = len(total)
    return {
        "status": "finished",
        "start": START,
        "duration": iso_minutes(steps * pd.Timedelta(resolution)),
        "resolution": resolution,
        "sites": [
            {
                "id": site,
                "devices": [
                    {
                        "name": "battery",
                        "type": "storage",
                        "power": {"values": p, "unit": "kW"},
                        "soc": {"values": [1.0] * (steps + 1), "unit": "kWh"},
                    }
                ],
                "site": {"power": {"values": p, "unit": "kW"}},
                "cost": {"value": cost / len(powers), "unit": "EUR"},
            }
            for site, p in powers.items()
        ],
        "portfolio": summary,
    }


def iso_minutes(delta: pd.Timedelta) -> str:
    return f"PT{int(delta.total_seconds() // 60)}M"


# =========================================================================================
# Request building
# =========================================================================================
def test_requests_carry_token_path_and_json_body() -> None:
    rec = Recorder(lambda r: httpx.Response(201, json={"id": 7, "name": "home"}))
    with make_client(rec) as c:
        site = c.create_site(
            "home",
            [{"name": "battery", "soc-at-start": "1 kWh", "soc-max": "5 kWh"}],
            {"site-power-capacity": "17 kW"},
            ean="EAN1",
            congestion_point="EAN-CP",
        )
    assert site == {"id": 7, "name": "home"}
    request = rec.last
    assert (request.method, str(request.url)) == ("POST", "http://vpp.test/api/v1/sites")
    assert request.headers["authorization"] == "Bearer secret"
    assert request.headers["content-type"] == "application/json"
    assert body_of(request) == {
        "name": "home",
        "flex-model": [{"name": "battery", "soc-at-start": "1 kWh", "soc-max": "5 kWh"}],
        "flex-context": {"site-power-capacity": "17 kW"},
        "ean": "EAN1",
        "congestion-point": "EAN-CP",
    }


def test_every_simple_method_hits_its_route() -> None:
    lists = {"/api/v1/sites", "/api/v1/portfolios", "/api/v1/sensors", "/api/v1/scheduling-jobs"}
    rec = Recorder(lambda r: httpx.Response(
        204 if r.method == "DELETE" else 200, json=[] if r.url.path in lists else {}))
    # a base URL ending in /api/v1 (and a slash) is the same server
    c = Client("http://vpp.test/api/v1/", token="t", transport=httpx.MockTransport(rec))
    c.me()
    c.sites()
    c.site(3)
    c.delete_site(3)
    c.portfolios()
    c.portfolio(4)
    c.sensors()
    c.job("abc")
    c.cancel("abc")
    c.jobs(status="running", limit=5)
    assert rec.calls() == [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/sites"),
        ("GET", "/api/v1/sites/3"),
        ("DELETE", "/api/v1/sites/3"),
        ("GET", "/api/v1/portfolios"),
        ("GET", "/api/v1/portfolios/4"),
        ("GET", "/api/v1/sensors"),
        ("GET", "/api/v1/scheduling-job/abc"),
        ("DELETE", "/api/v1/scheduling-job/abc"),
        ("GET", "/api/v1/scheduling-jobs"),
    ]
    assert dict(rec.last.url.params) == {"status": "running", "limit": "5"}
    assert all(not r.content for r in rec.requests)  # no body on GET and DELETE


def test_portfolio_sensor_and_submit_bodies() -> None:
    def answer(r: httpx.Request) -> httpx.Response:
        if r.url.path.startswith("/api/v1/scheduling-job/"):
            return httpx.Response(202, json={"job": "j-1", "status": "queued"})
        return httpx.Response(201, json={"id": 1})

    rec = Recorder(answer)
    c = make_client(rec)
    c.create_portfolio("p", [1, 2], congestion_point="EAN")
    assert body_of(rec.last) == {"name": "p", "sites": [1, 2], "congestion-point": "EAN"}
    c.create_sensor("price", "EUR/MWh", resolution=timedelta(hours=1), site=4)
    assert body_of(rec.last) == {
        "name": "price",
        "unit": "EUR/MWh",
        "resolution": "PT1H",
        "site": 4,
    }
    c.create_sensor("load", "kW")
    assert body_of(rec.last)["resolution"] == "PT15M" and "site" not in body_of(rec.last)
    # numpy values, datetimes and timedeltas in a request are written as JSON
    request = {
        "start": datetime.fromisoformat(START),
        "duration": timedelta(hours=24),
        "flex-context": {"consumption-price": {"values": np.array([1.5, 2.0]), "unit": "kW"}},
    }
    assert c.submit("portfolio", request) == "j-1"
    assert rec.last.url.path == "/api/v1/scheduling-job/portfolio"
    assert body_of(rec.last) == {
        "start": START,
        "duration": "PT24H",
        "flex-context": {"consumption-price": {"values": [1.5, 2.0], "unit": "kW"}},
    }
    n = len(rec.requests)
    with pytest.raises(ValueError, match="kind must be one of"):
        c.submit("battery", request)
    with pytest.raises(ValueError, match="NaN"):
        c.submit("storage", {"x": math.nan})
    assert len(rec.requests) == n  # nothing sent


def test_token_and_url_default_to_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from vpp.settings import get_settings

    monkeypatch.setenv("VPP_TOKEN", "from-env")
    monkeypatch.setenv("VPP_URL", "http://from-env.test/api/v1")
    get_settings.cache_clear()
    try:
        rec = Recorder(lambda r: httpx.Response(200, json={}))
        Client(transport=httpx.MockTransport(rec)).me()
        assert rec.last.headers["authorization"] == "Bearer from-env"
        assert str(rec.last.url) == "http://from-env.test/api/v1/me"
        monkeypatch.delenv("VPP_TOKEN")
        get_settings.cache_clear()
        Client("http://vpp.test", transport=httpx.MockTransport(rec)).me()
        assert "authorization" not in rec.last.headers
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(minutes=15), "PT15M"),
        (timedelta(hours=24), "PT24H"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(days=2, seconds=5), "PT48H5S"),
    ],
)
def test_iso_durations(delta: timedelta, text: str) -> None:
    from vpp.timeseries import iso_duration as server_iso

    assert vc.iso_duration(delta) == text == server_iso(delta)  # the server's own helper
    assert vc.iso_duration(pd.Timedelta(delta)) == text
    assert pd.Timedelta(text) == delta


@pytest.mark.parametrize("delta", [timedelta(milliseconds=500), timedelta(0), timedelta(-1)])
def test_iso_durations_the_api_refuses(delta: timedelta) -> None:
    # the API takes whole, positive seconds: refused before anything is sent
    with pytest.raises(ValueError, match=r"positive|whole number of seconds"):
        vc.iso_duration(delta)


# =========================================================================================
# Errors
# =========================================================================================
def problem(status: int, title: str, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@pytest.mark.parametrize(
    ("status", "cls", "base"),
    [
        (401, vc.AuthenticationError, VppApiError),
        (403, vc.PermissionDeniedError, VppApiError),
        (404, vc.ApiNotFoundError, errors.NotFoundError),
        (409, vc.ApiConflictError, errors.ConflictError),
        (500, vc.ServerError, VppApiError),
        (503, vc.ServerError, VppApiError),
        (418, VppApiError, errors.VppError),
    ],
)
def test_statuses_map_to_exceptions(
    status: int, cls: type[Exception], base: type[Exception]
) -> None:
    c = make_client(lambda r: problem(status, "Some title", f"detail {status}"))
    with pytest.raises(cls) as caught:
        c.site(1)
    assert isinstance(caught.value, base) and isinstance(caught.value, errors.VppError)
    assert type(caught.value) is cls
    err: Any = caught.value
    assert (err.status, err.http_status, err.title, err.detail) == (
        status,
        status,
        "Some title",
        f"detail {status}",
    )
    assert err.body["status"] == status and err.errors == []
    assert err.method == "GET" and err.url == "http://vpp.test/api/v1/sites/1"
    assert f"{status} Some title: detail {status}" in str(err)
    assert err.to_problem() == err.body


def test_422_carries_the_field_errors() -> None:
    field_errors = [
        {"field": "flex-model[0].soc-at-start", "message": "required"},
        {"field": "flex-model[0].soc-max", "message": "'4 kWh/h' is not an energy"},
    ]
    answer = problem(
        422,
        "Invalid request",
        "; ".join(f"{e['field']}: {e['message']}" for e in field_errors),
        type="urn:vpp:error:RequestValidationError",
        errors=field_errors,
    )
    c = make_client(lambda r: answer)
    with pytest.raises(vc.InvalidRequestError) as caught:
        c.create_site("x", [{"soc-max": "4 kWh/h"}])
    err = caught.value
    assert isinstance(err, errors.RequestValidationError)  # caught like a local one
    assert err.errors == field_errors
    assert [(i.field, i.message) for i in err.issues] == [
        (e["field"], e["message"]) for e in field_errors
    ]
    assert err.type == "urn:vpp:error:RequestValidationError"


def test_a_body_that_is_not_a_problem() -> None:
    c = make_client(lambda r: httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(vc.ServerError) as caught:
        c.me()
    assert caught.value.status == 502
    assert caught.value.title == "Bad Gateway"
    assert caught.value.detail == "<html>Bad gateway</html>" and caught.value.body is None
    c = make_client(lambda r: httpx.Response(200, text="not json"))
    with pytest.raises(VppApiError, match="expected JSON"):
        c.me()


def test_an_unreachable_server() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(vc.ApiConnectionError, match="unreachable") as caught:
        make_client(refuse).me()
    assert isinstance(caught.value, ConnectionError | errors.VppError)


# =========================================================================================
# pandas: series up and down
# =========================================================================================
def test_upload_series_sends_start_values_and_step() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={"sensor": 3, "stored": 3}))
    index = pd.date_range("2026-03-02 00:00", periods=3, freq="1h", tz="Europe/Amsterdam")
    out = make_client(rec).upload_series(3, pd.Series([50, 51.5, -2.0], index=index))
    assert out == {"sensor": 3, "stored": 3}
    assert rec.last.url.path == "/api/v1/sensors/3/data"
    assert body_of(rec.last) == {
        "start": "2026-03-02T00:00:00+01:00",
        "values": [50.0, 51.5, -2.0],
        "resolution": "PT1H",
    }


def test_upload_series_across_a_dst_change_is_regular() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={}))
    # 2026-03-29 02:00 CET -> 03:00 CEST: eight quarter hours, equally spaced in real time
    index = pd.date_range("2026-03-29 01:00", periods=8, freq="15min", tz="Europe/Amsterdam")
    make_client(rec).upload_series(1, pd.Series(np.arange(8.0), index=index))
    sent = body_of(rec.last)
    assert sent["start"] == "2026-03-29T01:00:00+01:00" and sent["resolution"] == "PT15M"
    assert sent["values"] == list(range(8))


def test_upload_series_of_one_value() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={}))
    c = make_client(rec)
    index = pd.date_range("2026-03-02", periods=1, freq="30min", tz="UTC")
    c.upload_series(1, pd.Series([4.0], index=index))
    sent = body_of(rec.last)
    assert sent == {"start": "2026-03-02T00:00:00+00:00", "values": [4.0], "resolution": "PT30M"}
    single = pd.Series([4.0], index=pd.DatetimeIndex([pd.Timestamp(START)]))
    c.upload_series(1, single)  # no freq: the sensor's resolution applies
    assert "resolution" not in body_of(rec.last)
    c.upload_series(1, single, resolution="PT5M")
    assert body_of(rec.last)["resolution"] == "PT5M"


@pytest.mark.parametrize(
    ("series", "message"),
    [
        (
            pd.Series([1.0, 2.0], index=pd.date_range("2026-03-02", periods=2, freq="h")),
            "timezone-aware",
        ),
        (
            pd.Series(
                [1.0, 2.0],
                index=pd.DatetimeIndex(["2026-03-02T00:00+01:00", "2026-03-02T00:00+01:00"]),
            ),
            "must increase",
        ),
        (
            pd.Series(
                [1.0, 2.0, 3.0],
                index=pd.DatetimeIndex(
                    ["2026-03-02T00:00+01:00", "2026-03-02T00:15+01:00", "2026-03-02T00:45+01:00"]
                ),
            ),
            r"regular: 2026-03-02T00:45:00\+01:00 follows 2026-03-02T00:15:00\+01:00",
        ),
        (
            pd.Series(
                [1.0, math.nan], index=pd.date_range("2026-03-02", periods=2, freq="h", tz="UTC")
            ),
            r"missing or infinite, the first at 2026-03-02T01:00:00\+00:00",
        ),
        (pd.Series([1.0, 2.0]), "must be a DatetimeIndex"),
        (pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float), "empty"),
        (
            pd.Series(["a", "b"], index=pd.date_range("2026-03-02", periods=2, freq="h", tz="UTC")),
            "must be numbers",
        ),
    ],
)
def test_upload_series_refuses_before_sending(series: pd.Series, message: str) -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={}))
    with pytest.raises(ValueError, match=message):
        make_client(rec).upload_series(1, series)
    assert rec.requests == []


def test_upload_series_resolution_must_match_the_index() -> None:
    index = pd.date_range("2026-03-02", periods=3, freq="h", tz="UTC")
    with pytest.raises(ValueError, match="differs"):
        vc.series_payload(pd.Series([1.0, 2.0, 3.0], index=index), resolution="PT15M")


def test_series_reads_values_nulls_and_a_tz_aware_index() -> None:
    answer = {
        "sensor": 5,
        "start": "2026-03-01T23:00:00+00:00",
        "resolution": "PT30M",
        "unit": "EUR/MWh",
        "values": [40.0, None, 42.5, 43.0],
    }
    rec = Recorder(lambda r: httpx.Response(200, json=answer))
    start = pd.Timestamp("2026-03-02 00:00", tz="Europe/Amsterdam")
    got = make_client(rec).series(5, start, start + pd.Timedelta(hours=2), resolution="PT30M")
    assert rec.last.url.path == "/api/v1/sensors/5/data"
    assert dict(rec.last.url.params) == {
        "start": "2026-03-02T00:00:00+01:00",
        "end": "2026-03-02T02:00:00+01:00",
        "resolution": "PT30M",
    }
    expected = instants("2026-03-01T23:00:00+00:00", 30, 4)
    assert [t.to_pydatetime() for t in got.index] == expected
    assert str(pd.DatetimeIndex(got.index).tz) == "Europe/Amsterdam"  # the zone of start
    assert got.iloc[0] == 40.0 and math.isnan(got.iloc[1]) and got.iloc[3] == 43.0
    assert got.attrs["unit"] == "EUR/MWh" and got.name == 5
    with pytest.raises(ValueError, match="timezone-aware"):
        make_client(rec).series(5, "2026-03-02T00:00", "2026-03-02T02:00")
    with pytest.raises(ValueError, match="after start"):
        make_client(rec).series(5, START, START)


# =========================================================================================
# pandas: result frames
# =========================================================================================
def test_power_and_soc_frames_of_a_site_result() -> None:
    result = site_result()
    power = vc.power_frame(result)
    assert list(power.columns) == ["battery", "ev", "pv", "site"]
    assert [t.to_pydatetime() for t in power.index] == instants(START, 15, 4)
    assert pd.DatetimeIndex(power.index).tz is not None
    for device in result["devices"]:
        assert power[device["name"]].tolist() == device["power"]["values"]
    assert power["site"].tolist() == result["site"]["power"]["values"]

    soc = vc.soc_frame(result)
    assert list(soc.columns) == ["battery", "ev"]  # pv has no SoC
    assert [t.to_pydatetime() for t in soc.index] == instants(START, 15, 5)
    assert soc["ev"].tolist() == result["devices"][1]["soc"]["values"]

    # a finished job's body works as well; other zones on request
    job = {"job": "j", "kind": "storage", "status": "finished", "result": result}
    pd.testing.assert_frame_equal(vc.power_frame(job), power)
    utc = vc.power_frame(result, tz="UTC")
    assert utc.index[0] == pd.Timestamp("2026-03-01T23:00:00Z")
    with pytest.raises(ValueError, match="no result"):
        vc.power_frame({"job": "j", "status": "running"})


def test_frames_convert_units_and_check_lengths() -> None:
    result = site_result()
    result["site"]["power"] = {"values": [2000.0, -500.0, 0.0, 1750.0], "unit": "W"}
    assert vc.power_frame(result)["site"].tolist() == [2.0, -0.5, 0.0, 1.75]
    result["site"]["power"] = {"values": [1.0, 2.0], "unit": "kW"}
    with pytest.raises(ValueError, match="differ in length"):
        vc.power_frame(result)


def test_power_and_soc_frames_of_a_portfolio_result() -> None:
    powers = {"home-1": [1.0, 2.0, -1.0], "home-2": [0.5, 0.5, 4.0]}
    result = portfolio_result(powers)
    frame = vc.power_frame(result)
    assert list(frame.columns) == ["home-1", "home-2", "portfolio"]
    assert [t.to_pydatetime() for t in frame.index] == instants(START, 15, 3)
    assert frame["home-2"].tolist() == powers["home-2"]
    assert frame["portfolio"].tolist() == [1.5, 2.5, 3.0]
    soc = vc.soc_frame(result)
    assert list(soc.columns) == [("home-1", "battery"), ("home-2", "battery")]
    assert soc.columns.names == ["site", "device"] and len(soc) == 4


# =========================================================================================
# Waiting, progress, backoff
# =========================================================================================
class FakeJobs:
    """A MockTransport API whose jobs go through scripted states, one per GET."""

    def __init__(self, states: list[dict[str, Any]], kind: str = "portfolio") -> None:
        self.states = states
        self.kind = kind
        self.gets = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"job": "job-1234567890", "status": "queued"})
        state = self.states[min(self.gets, len(self.states) - 1)]
        self.gets += 1
        return httpx.Response(200, json={"job": "job-1234567890", "kind": self.kind, **state})


def running(k: int) -> dict[str, Any]:
    return {
        "status": "running",
        "progress": {
            "iteration": k,
            "primal_residual": 1.0 / k,
            "dual_residual": 0.5 / k,
            "rho": 0.25,
            "objective": 100.0 + k,
        },
    }


def test_wait_backs_off_to_one_second_and_returns_the_result() -> None:
    result = portfolio_result({"a": [1.0]})
    states = [{"status": "queued"}] * 7 + [{"status": "finished", "result": result}]
    clock = FakeClock()
    c = make_client(Recorder(FakeJobs(states)), clock)
    assert c.wait("job-1234567890", progress=False) == result
    assert clock.sleeps == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_wait_honours_poll_and_max_poll() -> None:
    states = [{"status": "queued"}] * 4 + [{"status": "finished", "result": {}}]
    clock = FakeClock()
    make_client(FakeJobs(states), clock).wait("j", poll=0.3, max_poll=0.5, progress=False)
    assert clock.sleeps == [0.3, 0.5, 0.5, 0.5]


def test_wait_times_out_with_the_last_status() -> None:
    clock = FakeClock()
    c = make_client(FakeJobs([{"status": "running"}]), clock)
    with pytest.raises(JobTimeoutError, match="still running after 2 s") as caught:
        c.wait("job-1234567890", timeout=2, progress=False)
    assert isinstance(caught.value, TimeoutError)
    assert sum(clock.sleeps) == pytest.approx(2.0)  # the last sleep is cut to the deadline
    assert clock.sleeps[-1] < 1.0


def test_wait_raises_the_jobs_problem() -> None:
    infeasible = {
        "type": "urn:vpp:error:InfeasibleError",
        "title": "Infeasible request",
        "status": 422,
        "detail": "soc-targets[0] cannot be met for battery",
        "constraint": "soc-targets",
        "device": "battery",
        "time": "2026-03-02T02:00:00+01:00",
    }
    c = make_client(FakeJobs([{"status": "failed", "error": infeasible}]), FakeClock())
    with pytest.raises(JobFailedError, match="cannot be met") as caught:
        c.wait("job-1234567890")
    err = caught.value
    assert err.problem == infeasible and err.to_problem() == infeasible
    assert (err.constraint, err.device, err.status) == ("soc-targets", "battery", 422)
    assert isinstance(err, errors.VppError)
    c = make_client(FakeJobs([{"status": "cancelled"}]), FakeClock())
    with pytest.raises(JobCancelledError, match="job-1234567890 was cancelled"):
        c.wait("job-1234567890")


def test_progress_bar_in_a_log_prints_status_changes_and_every_tenth_iteration() -> None:
    states = (
        [{"status": "queued"}, {"status": "running"}]
        + [running(k) for k in range(1, 26)]
        + [{"status": "finished", "result": {"ok": 1}}]
    )
    stream = io.StringIO()
    c = make_client(FakeJobs(states), FakeClock())
    assert c.wait("job-1234567890", progress=stream) == {"ok": 1}
    lines = stream.getvalue().splitlines()
    assert [line.split()[-1] if "queued" in line else None for line in lines[:1]] == ["queued"]
    iterations = [int(line.split("]")[1].split("/")[0]) for line in lines]
    assert iterations == [0, 0, 10, 20, 25]  # queued, running, every ten, finished
    assert lines[2] == (
        "job job-1234 ADMM [###...........................]  10/100 running "
        "r=1.00e-01 s=5.00e-02 rho=2.50e-01 cost=110.00 EUR"
    )
    assert lines[-1].split()[5] == "finished"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_rewrites_one_line() -> None:
    states = [running(k) for k in (1, 2, 2, 50)] + [{"status": "finished", "result": {}}]
    stream = Tty()
    make_client(FakeJobs(states), FakeClock()).wait("job-1234567890", progress=stream)
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "[###############...............]  50/100" in text


def test_progress_goes_to_stderr_and_can_be_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    states = [running(3), {"status": "finished", "result": {}}]
    make_client(FakeJobs(states), FakeClock()).wait("job-1234567890")
    assert "ADMM" in capsys.readouterr().err
    make_client(FakeJobs(states), FakeClock()).wait("job-1234567890", progress=False)
    assert capsys.readouterr().err == ""
    # single-site jobs have no ADMM to show
    make_client(FakeJobs(states, kind="storage"), FakeClock()).wait("job-1234567890")
    assert capsys.readouterr().err == ""


def test_schedule_submits_and_waits() -> None:
    rec = Recorder(FakeJobs([{"status": "queued"}, {"status": "finished", "result": {"x": 1}}]))
    out = make_client(rec, FakeClock()).schedule({"start": START}, progress=False)
    assert out == {"x": 1}
    assert rec.calls() == [
        ("POST", "/api/v1/scheduling-job/storage"),
        ("GET", "/api/v1/scheduling-job/job-1234567890"),
        ("GET", "/api/v1/scheduling-job/job-1234567890"),
    ]


# =========================================================================================
# What-if
# =========================================================================================
def fake_schedule(request: dict[str, Any]) -> dict[str, Any]:
    """A stand-in 'scheduler': each site's power is its `load` times the price factor."""
    factor = float(request["flex-context"]["factor"])
    powers = {s["id"]: [v * factor for v in s["load"]] for s in request["sites"]}
    total = np.sum(list(powers.values()), axis=0)
    extra = request.get("extra", {})
    return portfolio_result(
        powers,
        cost=float(total.sum()) * 0.1,
        iterations=extra.get("iterations", 12),
        converged=extra.get("converged", True),
        violation=extra.get("violation", 0.0),
        gap=extra.get("gap"),
    )


class FakeCluster:
    """Portfolio jobs that finish on their second poll (one that fails, if asked)."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.log: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        job_id = request.url.path.rsplit("/", 1)[1]
        if request.method == "POST":
            job_id = f"job-{len(self.jobs)}"
            self.jobs[job_id] = body_of(request)
            self.log.append(("submit", job_id))
            return httpx.Response(202, json={"job": job_id, "status": "queued"})
        if request.method == "DELETE":
            self.log.append(("cancel", job_id))
            return httpx.Response(204)
        self.log.append(("poll", job_id))
        self.polls[job_id] = self.polls.get(job_id, 0) + 1
        body = self.jobs[job_id]
        if self.polls[job_id] < 2:
            return httpx.Response(
                200, json={"job": job_id, "kind": "portfolio", "status": "running"}
            )
        if body.get("fail"):
            error = {"title": "Infeasible request", "status": 422, "detail": "no way"}
            state = {"status": "failed", "error": error}
        else:
            state = {"status": "finished", "result": fake_schedule(body)}
        return httpx.Response(200, json={"job": job_id, "kind": "portfolio", **state})


BASE_REQUEST: dict[str, Any] = {
    "start": START,
    "duration": "PT1H",
    "resolution": "PT15M",
    "flex-context": {"factor": 1.0},
    "sites": [
        {"id": "a", "load": [1.0, 2.0, 3.0, 0.0]},
        {"id": "b", "load": [0.0, 1.0, -2.0, 1.0]},
    ],
}


def test_what_if_submits_all_then_compares() -> None:
    cluster = FakeCluster()

    def double_a(request: dict[str, Any]) -> dict[str, Any]:
        request["sites"][0]["load"] = [2 * v for v in request["sites"][0]["load"]]
        return request

    def in_place(request: dict[str, Any]) -> None:
        request["extra"] = {"gap": 0.002, "iterations": 100, "converged": False}

    base = copy.deepcopy(BASE_REQUEST)
    table = vc.what_if(
        base,
        {
            "cheap": {"flex-context": {"factor": 0.5}, "extra": {"violation": 0.25}},
            "double a": double_a,
            "gap": in_place,
        },
        client=make_client(cluster, FakeClock()),
        progress=False,
    )
    assert base == BASE_REQUEST  # the caller's request is left alone
    # all four submitted before the first poll: they run side by side
    assert [kind for kind, _ in cluster.log[:4]] == ["submit"] * 4
    assert cluster.jobs["job-1"]["flex-context"] == {"factor": 0.5}  # deep-merged
    assert cluster.jobs["job-1"]["sites"] == BASE_REQUEST["sites"]

    assert list(table.index) == ["base", "cheap", "double a", "gap"]
    assert list(table.columns) == [
        "cost",
        "peak",
        "energy_shifted",
        "gap",
        "iterations",
        "converged",
        "limit_violation_kw",
    ]
    loads = {s["id"]: s["load"] for s in BASE_REQUEST["sites"]}
    totals = {
        "base": [loads["a"][t] + loads["b"][t] for t in range(4)],
        "cheap": [0.5 * (loads["a"][t] + loads["b"][t]) for t in range(4)],
        "double a": [2 * loads["a"][t] + loads["b"][t] for t in range(4)],
        "gap": [loads["a"][t] + loads["b"][t] for t in range(4)],
    }
    for name, total in totals.items():
        shifted = 0.0
        for t in range(4):
            shifted += abs(total[t] - totals["base"][t]) * 0.25 / 2  # 15 min = 0.25 h
        assert table.loc[name, "energy_shifted"] == pytest.approx(shifted)
        assert table.loc[name, "peak"] == pytest.approx(max(total))
        assert table.loc[name, "cost"] == pytest.approx(sum(total) * 0.1)
    assert table.loc["double a", "energy_shifted"] == pytest.approx((1 + 2 + 3) * 0.125)
    assert bool(table["gap"].isna()["base"]) and table.loc["gap", "gap"] == 0.002
    assert table["iterations"].tolist() == [12, 12, 12, 100]
    assert table["converged"].tolist() == [True, True, True, False]
    assert table["limit_violation_kw"].tolist() == [0.0, 0.25, 0.0, 0.0]


def test_what_if_in_sequence_waits_for_each() -> None:
    cluster = FakeCluster()
    vc.what_if(
        BASE_REQUEST,
        {"cheap": {"flex-context": {"factor": 0.5}}},
        client=make_client(cluster, FakeClock()),
        parallel=False,
        progress=False,
    )
    assert [kind for kind, _ in cluster.log] == ["submit", "poll", "poll", "submit", "poll", "poll"]


def test_what_if_cancels_the_rest_when_a_scenario_fails() -> None:
    cluster = FakeCluster()
    with pytest.raises(JobFailedError, match="no way") as caught:
        vc.what_if(
            BASE_REQUEST,
            {"broken": {"fail": True}, "fine": {"flex-context": {"factor": 2.0}}},
            client=make_client(cluster, FakeClock()),
            progress=False,
        )
    assert "in what-if scenario 'broken'" in caught.value.__notes__
    assert ("cancel", "job-2") in cluster.log  # "fine" was still pending
    assert ("cancel", "job-0") not in cluster.log  # "base" had finished


def test_what_if_cancels_its_jobs_on_ctrl_c() -> None:
    cluster = FakeCluster()
    client = make_client(cluster, FakeClock())

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    client._sleep = interrupt
    with pytest.raises(KeyboardInterrupt):
        client.what_if(BASE_REQUEST, {"a": {}, "b": {}}, progress=False)
    cancelled = [job for kind, job in cluster.log if kind == "cancel"]
    assert cancelled == ["job-0", "job-1", "job-2"]


def test_what_if_refuses_a_scenario_named_base_and_an_async_client() -> None:
    with pytest.raises(ValueError, match="unchanged request"):
        vc.scenario_requests(BASE_REQUEST, {"base": {}})
    async_client: Any = AsyncClient(transport=httpx.MockTransport(FakeCluster()))
    with pytest.raises(TypeError, match=r"await client\.what_if"):
        vc.what_if(BASE_REQUEST, {}, client=async_client)


def test_compare_results_without_a_base() -> None:
    with pytest.raises(ValueError, match="no 'base'"):
        vc.compare_results({"x": portfolio_result({"a": [1.0]})})


def test_async_client_runs_the_same_operations() -> None:
    async def main() -> tuple[Any, ...]:
        clock = FakeClock()
        jobs = FakeJobs([{"status": "queued"}, {"status": "finished", "result": {"x": 2}}])
        async with AsyncClient(
            "http://vpp.test", token="t", transport=httpx.MockTransport(jobs)
        ) as c:
            c._sleep = clock.asleep
            c._clock = clock.clock
            result = await c.schedule({"start": START}, kind="shifting", progress=False)
        cluster = FakeCluster()
        async with AsyncClient(transport=httpx.MockTransport(cluster)) as c:
            c._sleep = clock.asleep
            scenarios = {"x": {"flex-context": {"factor": 3.0}}}
            table = await c.what_if(BASE_REQUEST, scenarios, progress=False)
        failing = AsyncClient(
            transport=httpx.MockTransport(lambda r: problem(404, "Not found", "no"))
        )
        with pytest.raises(vc.NotFoundError):
            await failing.site(9)
        return result, clock.sleeps, table

    result, sleeps, table = asyncio.run(main())
    assert result == {"x": 2} and sleeps[0] == 0.05
    assert table.loc["x", "peak"] == pytest.approx(3 * 3.0)


# =========================================================================================
# Scenario builders
# =========================================================================================
@pytest.fixture(scope="module")
def portfolio() -> dict[str, Any]:
    from vpp.examples import mixed_portfolio

    request = mixed_portfolio(12, target=None)
    request["target"] = {
        "type": "congestion",
        "congestion-point": "EAN-1",
        "max-consumption": "30 kW",
        "max-production": "50 kW",
    }
    return request


def variant(portfolio: dict[str, Any], scenario: vc.Scenario) -> dict[str, Any]:
    from vpp.portfolio import parse_portfolio

    out = vc.scenario_requests(portfolio, {"x": scenario})["x"]
    parse_portfolio(out)  # the server would accept it
    return out


def test_scale_prices(portfolio: dict[str, Any]) -> None:
    request = copy.deepcopy(portfolio)
    request["sites"][0]["flex-context"]["consumption-price"] = "40 EUR/MWh"
    request["sites"][1]["flex-context"]["production-price"] = [
        {"start": START, "duration": "PT12H", "value": "0.03 EUR/kWh"},
        {"start": "2026-03-02T12:00:00+01:00", "duration": "PT12H", "value": "35 EUR/MWh"},
    ]
    request["sites"][2]["flex-model"].append(
        {"name": "fixed", "type": "inflexible", "power": "1 kW", "consumption-price": "1e2 EUR/MWh"}
    )
    out = variant(request, vc.scale_prices(1.5))
    for key in ("consumption-price", "production-price"):
        assert out["flex-context"][key]["values"] == pytest.approx(
            [1.5 * v for v in request["flex-context"][key]["values"]]
        )
        assert out["flex-context"][key]["unit"] == "EUR/MWh"
    assert out["sites"][0]["flex-context"]["consumption-price"] == "60 EUR/MWh"
    segments = out["sites"][1]["flex-context"]["production-price"]
    assert [s["value"] for s in segments] == ["0.045 EUR/kWh", "52.5 EUR/MWh"]
    assert segments[0]["start"] == START
    assert out["sites"][2]["flex-model"][-1]["consumption-price"] == "150 EUR/MWh"
    assert request["sites"][0]["flex-context"]["consumption-price"] == "40 EUR/MWh"  # untouched
    stored = copy.deepcopy(request)
    stored["flex-context"]["consumption-price"] = {"sensor": 4}
    with pytest.raises(ValueError, match="sensor 4"):
        vc.scenario_requests(stored, {"x": vc.scale_prices(2)})


def test_congestion_and_market_targets(portfolio: dict[str, Any]) -> None:
    out = variant(portfolio, vc.with_congestion_limit(20))
    assert out["target"] == {
        "type": "congestion",
        "congestion-point": "EAN-1",
        "max-consumption": "20 kW",
        "max-production": "50 kW",
    }
    steps = list(np.linspace(10, 30, 96))
    out = variant(portfolio, vc.with_congestion_limit(np.array(steps), max_production_kw=5.5))
    assert out["target"]["max-consumption"] == {"values": steps, "unit": "kW"}
    assert out["target"]["max-production"] == "5.5 kW"
    out = variant(portfolio, vc.with_market_target(8.5))
    assert out["target"] == {
        "type": "market",
        "volume": "8.5 kW",
        "deviation-price": "200 EUR/MWh",
    }
    out = variant(portfolio, vc.with_market_target([1.0] * 96, deviation_price=120))
    assert out["target"]["deviation-price"] == "120 EUR/MWh"
    market = variant(portfolio, vc.with_market_target(3))
    again = variant(market, vc.with_congestion_limit(25))
    assert again["target"] == {"type": "congestion", "max-consumption": "25 kW"}


def test_bigger_batteries(portfolio: dict[str, Any]) -> None:
    out = variant(portfolio, vc.bigger_batteries(2))
    seen = 0
    for before, after in zip(portfolio["sites"], out["sites"], strict=True):
        for d0, d1 in zip(before["flex-model"], after["flex-model"], strict=True):
            if d0["name"] == "battery":
                seen += 1
                assert float(d1["soc-max"].split()[0]) == 2 * float(d0["soc-max"].split()[0])
                assert d1["power-capacity"] == f"{2 * float(d0['power-capacity'].split()[0]):g} kW"
                assert d1["soc-at-start"] == d0["soc-at-start"]
            else:
                assert d1 == d0  # EVs, heat pumps, PV unchanged
    assert seen > 0
    with_evs = variant(portfolio, vc.bigger_batteries(2, include_vehicles=True))
    evs = [d for s in with_evs["sites"] for d in s["flex-model"] if d["name"] == "ev"]
    assert evs and all(d["soc-max"] == "120 kWh" for d in evs)
    assert [d["consumption-capacity"] for d in evs] == [
        f"{2 * float(d['consumption-capacity'].split()[0]):g} kW"
        for s in portfolio["sites"]
        for d in s["flex-model"]
        if d["name"] == "ev"
    ]
    with pytest.raises(ValueError, match="positive"):
        vc.bigger_batteries(0)


def test_more_batteries_is_deterministic_and_nested(portfolio: dict[str, Any]) -> None:
    def with_battery(request: dict[str, Any]) -> set[str]:
        return {s["id"] for s in request["sites"] if any(vc.is_battery(d) for d in s["flex-model"])}

    had = with_battery(portfolio)
    without = {s["id"] for s in portfolio["sites"]} - had
    assert len(without) >= 3
    half = variant(portfolio, vc.more_batteries(0.5, size_kwh=8))
    added = with_battery(half) - had
    assert len(added) == round(0.5 * len(without)) and added <= without
    assert variant(portfolio, vc.more_batteries(0.5, size_kwh=8)) == half
    all_of_them = variant(portfolio, vc.more_batteries(1.0))
    assert with_battery(all_of_them) - had == without
    assert added <= with_battery(all_of_them)  # a larger share adds to the same sites
    reordered = copy.deepcopy(portfolio)
    reordered["sites"].reverse()
    assert with_battery(variant(reordered, vc.more_batteries(0.5, size_kwh=8))) - had == added
    assert variant(portfolio, vc.more_batteries(0.0)) == portfolio

    site = next(s for s in half["sites"] if s["id"] in added)
    battery = site["flex-model"][-1]
    assert battery == {
        "name": "battery",
        "type": "storage",
        "soc-at-start": "4 kWh",
        "soc-min": "0 kWh",
        "soc-max": "8 kWh",
        "power-capacity": "3.2 kW",
        "roundtrip-efficiency": "90%",
        "soc-targets": [{"datetime": "2026-03-03T00:00:00+01:00", "value": "4 kWh"}],
    }
    from vpp.site import schedule

    alone = {k: half[k] for k in ("start", "duration", "resolution")}
    alone["flex-model"] = site["flex-model"]
    alone["flex-context"] = {**half["flex-context"], **site["flex-context"]}
    assert schedule(alone)["status"] == "finished"  # the added battery is feasible


def test_combine_and_in_place_scenarios(portfolio: dict[str, Any]) -> None:
    both = variant(portfolio, vc.combine(vc.with_congestion_limit(20), vc.bigger_batteries(3)))
    assert both["target"]["max-consumption"] == "20 kW"
    one_by_one = variant(variant(portfolio, vc.with_congestion_limit(20)), vc.bigger_batteries(3))
    assert both == one_by_one
    requests = vc.scenario_requests(portfolio, {"none": {"target": None}})
    assert requests["none"]["target"] is None and requests["base"] == portfolio


# =========================================================================================
# End to end: the real app (no Ray) behind uvicorn
# =========================================================================================
class LiveServer:
    def __init__(self, url: str, token: str, sessions: Any) -> None:
        self.url, self.token, self.sessions = url, token, sessions


@contextlib.contextmanager
def serve_app(database: str, dispatcher: Any = None) -> Iterator[LiveServer]:
    """The real API app (``create_app``) behind uvicorn on a free port, in a thread."""
    import uvicorn

    from api.app import create_app
    from store import repository as repo

    app = create_app(database, dispatcher)
    if dispatcher is not None:
        dispatcher.sessions = app.state.sessions
    with app.state.sessions.begin() as session:
        _, token = repo.ensure_admin(session)
    assert token is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", token, app.state.sessions)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def live(tmp_path: Any) -> Iterator[LiveServer]:
    with serve_app(f"sqlite:///{tmp_path}/db.sqlite") as server:
        yield server


class CentralisedDispatcher(InlineDispatcher):
    """The app's ``InlineDispatcher`` with portfolio jobs too, run centralised (one HiGHS
    model) instead of ADMM on Ray, after reporting a few fake ADMM iterations as progress."""

    def __init__(self, iterations: int = 3, pause: float = 0.05) -> None:
        super().__init__(None, self._portfolio)  # sessions: set once the app exists
        self.iterations, self.pause = iterations, pause

    def _portfolio(
        self, request: dict[str, Any], job_id: str, on_progress: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        from vpp.portfolio import CentralisedPortfolio

        for k in range(1, self.iterations + 1):
            on_progress(
                {
                    "iteration": k,
                    "primal_residual": 1.0 / k,
                    "dual_residual": 0.1 / k,
                    "rho": 0.5,
                    "objective": 50.0 - k,
                }
            )
            time.sleep(self.pause)
        return CentralisedPortfolio(request).solve().to_json()


@pytest.fixture
def live_portfolios(tmp_path: Any) -> Iterator[LiveServer]:
    with serve_app(f"sqlite:///{tmp_path}/db.sqlite", CentralisedDispatcher()) as server:
        yield server


BATTERY = {
    "name": "battery",
    "soc-at-start": "10 kWh",
    "soc-min": "0 kWh",
    "soc-max": "40 kWh",
    "power-capacity": "10 kW",
    "charging-efficiency": "95%",
    "discharging-efficiency": "95%",
    "soc-targets": [{"datetime": "2026-03-02T18:00:00+01:00", "value": "30 kWh"}],
}


def test_end_to_end_storage_job_matches_the_in_process_scheduler(live: LiveServer) -> None:
    from conftest import price_curve

    from vpp.site import schedule

    context = {
        "site-power-capacity": "25 kW",
        "production-price": "30 EUR/MWh",
        "inflexible-devices": {"house": "0.4 kW"},
    }
    with Client(live.url, token=live.token) as c:
        assert c.me()["user"] == "admin"
        site = c.create_site("home", [BATTERY], context)
        assert c.site(site["id"])["flex-model"][0]["soc-max"] == "40 kWh"
        # hourly prices, uploaded as pandas; the 15-minute job repeats each hour's price
        hourly = price_curve(96)[::4]
        sensor = c.create_sensor("day-ahead", "EUR/MWh", resolution="PT1H")
        index = pd.date_range("2026-03-02", periods=24, freq="h", tz="Europe/Amsterdam")
        assert c.upload_series(sensor["id"], pd.Series(hourly, index=index))["stored"] == 24
        back = c.series(sensor["id"], index[0], index[0] + pd.Timedelta(hours=24))
        assert back.tolist() == hourly and back.index.equals(index)

        request = {
            "site": site["id"],
            "start": START,
            "duration": "PT24H",
            "resolution": "PT15M",
            "flex-context": {"consumption-price": {"sensor": sensor["id"]}},
        }
        job_id = c.submit("storage", request)
        result = c.wait(job_id, timeout=60, progress=False)
        assert c.job(job_id)["status"] == "finished"

    expanded = {
        "start": START,
        "duration": "PT24H",
        "resolution": "PT15M",
        "flex-model": [{"type": "storage", **BATTERY}],
        "flex-context": {
            **context,
            "consumption-price": {"values": np.repeat(hourly, 4).tolist(), "unit": "EUR/MWh"},
        },
    }
    reference = schedule(expanded)
    got, want = vc.power_frame(result), vc.power_frame(reference)
    assert list(got.columns) == list(want.columns) == ["battery", "site"]
    assert [t.to_pydatetime() for t in got.index] == instants(START, 15, 96)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(vc.soc_frame(result), vc.soc_frame(reference), atol=1e-6)
    assert result["cost"]["value"] == pytest.approx(reference["cost"]["value"], abs=1e-6)
    assert got["battery"].abs().max() > 1  # the battery does something


def test_end_to_end_errors(live: LiveServer) -> None:
    with Client(live.url, token=live.token) as c:
        site = c.create_site("home", [BATTERY], {})
        with pytest.raises(vc.ConflictError, match="already has a site named 'home'"):
            c.create_site("home", [BATTERY], {})
        with pytest.raises(vc.InvalidRequestError) as caught:
            c.create_site("bad", [{"name": "b", "soc-max": "4 kWh/h"}], {})
        fields = {e["field"] for e in caught.value.errors}
        assert {"flex-model[0].soc-at-start", "flex-model[0].soc-max"} <= fields
        with pytest.raises(vc.NotFoundError):
            c.job("no-such-job")
        # a job that fails on the server: its problem comes back
        bad = {
            "site": site["id"],
            "start": START,
            "duration": "PT24H",
            "flex-model": [{"name": "battery", "soc-at-start": "50 kWh"}],
            "flex-context": {"consumption-price": "50 EUR/MWh"},
        }
        # refused when submitted (422), or the job fails when it runs: the fields come back
        with pytest.raises((JobFailedError, vc.InvalidRequestError)) as failed:
            c.schedule(bad, timeout=60, progress=False)
        assert isinstance(failed.value, JobFailedError | vc.InvalidRequestError)
        assert failed.value.errors[0]["field"].endswith("soc-at-start")
        c.delete_site(site["id"])
        with pytest.raises(vc.NotFoundError):
            c.site(site["id"])
    with (
        pytest.raises(vc.AuthenticationError, match="unknown or revoked token"),
        Client(live.url, token="wrong") as wrong,
    ):
        wrong.me()
    with pytest.raises(vc.ApiConnectionError), Client("http://127.0.0.1:9", timeout=2) as gone:
        gone.me()


def test_end_to_end_async(live: LiveServer) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with AsyncClient(live.url, token=live.token) as c:
            me = await c.me()
            request = {
                "start": START,
                "duration": "PT24H",
                "flex-model": [BATTERY],
                "flex-context": {
                    "consumption-price": "50 EUR/MWh",
                    "production-price": "20 EUR/MWh",
                },
            }
            jobs = [await c.submit("storage", request) for _ in range(2)]
            results = await asyncio.gather(*(c.wait(j, timeout=60, progress=False) for j in jobs))
            assert results[0] == results[1]
            return me, results[0]

    me, result = asyncio.run(main())
    assert me["role"] == "admin"
    assert vc.power_frame(result).shape == (96, 2)


def test_end_to_end_portfolio_progress_and_what_if(live_portfolios: LiveServer) -> None:
    """Portfolio jobs through the real API (run centralised here: no Ray): progress while
    they run, and a what-if table whose numbers match the results."""
    from vpp.examples import mixed_portfolio

    portfolio = {**mixed_portfolio(6), "method": "admm"}
    with Client(live_portfolios.url, token=live_portfolios.token) as c:
        stream = io.StringIO()
        job_id = c.submit("portfolio", portfolio)
        result = c.wait(job_id, timeout=60, progress=stream)
        lines = stream.getvalue().splitlines()
        assert lines and "finished" in lines[-1]
        assert any("r=" in line and "cost=" in line for line in lines)  # progress was read
        frame = vc.power_frame(result)
        assert list(frame.columns) == [s["id"] for s in portfolio["sites"]] + ["portfolio"]
        np.testing.assert_allclose(frame.drop(columns="portfolio").sum(axis=1), frame["portfolio"])

        limit = float(portfolio["target"]["max-consumption"].split()[0])
        table = vc.what_if(
            portfolio,
            {
                "tighter": vc.with_congestion_limit(round(0.9 * limit, 1)),
                "no limit": {"target": None},
                "batteries x2": vc.bigger_batteries(2),
            },
            client=c,
            progress=False,
        )
    assert list(table.index) == ["base", "tighter", "no limit", "batteries x2"]
    assert table.loc["base", "cost"] == pytest.approx(result["portfolio"]["cost"]["value"])
    assert table.loc["base", "peak"] == pytest.approx(frame["portfolio"].max())
    assert table.loc["base", "energy_shifted"] == 0
    assert table.loc["tighter", "peak"] <= 0.9 * limit + 1e-6
    assert table.loc["tighter", "cost"] >= table.loc["base", "cost"] - 1e-6
    assert table.loc["no limit", "cost"] <= table.loc["base", "cost"] + 1e-6
    assert table.loc["batteries x2", "cost"] <= table.loc["base", "cost"] + 1e-6
    assert table["energy_shifted"].drop("base").gt(0).all()


def test_the_what_if_example_runs(
    live_portfolios: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "docs" / "examples" / "what_if.py"
    spec = importlib.util.spec_from_file_location("what_if_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    argv = ["--url", live_portfolios.url, "--token", live_portfolios.token, "--sites", "6"]
    assert example.main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "cost", "peak", "energy_shifted", "gap", "iterations", "converged", "limit_violation_kw",
    ]  # fmt: skip
    assert [line.split()[0] for line in out.splitlines()[2:]] == [
        "base", "limit", "no", "batteries", "+batteries", "market",
    ]  # fmt: skip
    assert example.main(["--url", live_portfolios.url, "--token", "wrong", "--quiet"]) == 1
    assert "unknown or revoked token" in capsys.readouterr().err


# =========================================================================================
# Lists that scale (issue 11 item 7), progress phases and the server's cap (item 8)
# =========================================================================================
def paged_api(rows: list[dict[str, Any]]) -> Handler:
    """A list route that pages ``rows`` by an ``X-Next-Cursor`` holding the next index."""

    def handle(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params.get("limit", "2"))
        start = int(request.url.params.get("cursor", "0"))
        page = rows[start: start + limit]
        headers = {"X-Next-Cursor": str(start + limit)} if start + limit < len(rows) else {}
        return httpx.Response(200, json=page, headers=headers)

    return handle


def test_jobs_is_one_page_with_its_next_cursor_and_filters() -> None:
    rows = [{"job": f"j{i}"} for i in range(5)]
    rec = Recorder(paged_api(rows))
    c = make_client(rec)
    first = c.jobs(limit=2, kind="portfolio", portfolio=3,
                   created_after=datetime.fromisoformat("2026-03-01T00:00:00+00:00"))
    assert first == rows[:2] and isinstance(first, list) and first.next == "2"
    assert dict(rec.last.url.params) == {
        "limit": "2", "kind": "portfolio", "portfolio": "3",
        "created-after": "2026-03-01T00:00:00+00:00",
    }
    last = c.jobs(limit=2, cursor="4")
    assert last == rows[4:] and last.next is None
    assert rec.last.url.params["cursor"] == "4"


def test_sites_sensors_and_portfolios_follow_every_page() -> None:
    rows = [{"id": i} for i in range(5)]
    rec = Recorder(paged_api(rows))
    c = make_client(rec)
    assert c.sites(congestion_point="EAN-CP") == rows
    assert [dict(r.url.params) for r in rec.requests] == [
        {"congestion-point": "EAN-CP"},
        {"congestion-point": "EAN-CP", "cursor": "2"},
        {"congestion-point": "EAN-CP", "cursor": "4"},
    ]
    assert c.sensors(site=7) == rows and rec.last.url.params["site"] == "7"
    assert c.portfolios() == rows


def test_a_list_route_answering_something_else_is_an_error() -> None:
    c = make_client(lambda r: httpx.Response(200, json={"not": "a list"}))
    with pytest.raises(VppApiError, match="expected a JSON list"):
        c.sites()


def test_uftp_messages_page() -> None:
    rows = [{"id": i} for i in range(3)]
    rec = Recorder(paged_api(rows))
    page = make_client(rec).uftp_messages("FlexOffer", limit=2, status="processed")
    assert page == rows[:2] and page.next == "2"
    assert dict(rec.last.url.params) == {"limit": "2", "type": "FlexOffer", "status": "processed"}


def test_async_jobs_page() -> None:
    rows = [{"job": f"j{i}"} for i in range(3)]

    async def go() -> Any:
        async with AsyncClient("http://vpp.test", transport=httpx.MockTransport(paged_api(rows))
                               ) as c:
            return await c.jobs(limit=2), await c.sites()

    page, sites = asyncio.run(go())
    assert page == rows[:2] and page.next == "2" and sites == rows


def test_progress_bar_uses_the_servers_cap_and_shows_the_phase() -> None:
    def phase(name: str, **more: Any) -> dict[str, Any]:
        return {"status": "running", "progress": {"phase": name, **more}}

    states = [
        {"status": "queued", "progress": {"phase": "queued"}},
        phase("starting"),
        phase("starting", **{"max-iterations": 40}),
        phase("building", **{"max-iterations": 40}),
        phase("iterating", **{"max-iterations": 40, "iteration": 20, "certified-gap": 0.01}),
        phase("finalising", **{"max-iterations": 40, "iteration": 31}),
        {"status": "finished", "result": {"portfolio": {"iterations": 31}},
         "progress": {"phase": "finalising", "max-iterations": 40, "iteration": 31}},
    ]
    stream = io.StringIO()
    make_client(FakeJobs(states), FakeClock()).wait("job-1234567890", progress=stream)
    lines = stream.getvalue().splitlines()
    assert [line.split("]")[1].split()[1:] for line in lines][:4] == [
        ["queued", "queued"], ["running", "starting"], ["running", "building"],
        ["running", "iterating", "gap=1.00e-02"],
    ]
    assert "  0/100 queued" in lines[0]  # the default cap until the server says its own
    assert "[###############...............]  20/40 running iterating" in lines[3]
    assert " 31/40 running finalising" in lines[4]
    assert lines[-1].endswith(" 31/40 finished")


# =========================================================================================
# Sensor reads longer than one read may cover (issue 11): the client pages
# =========================================================================================
@pytest.fixture
def small_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The server's VPP_MAX_SENSOR_POINTS set to 10 for one test."""
    from vpp.settings import get_settings

    monkeypatch.setenv("VPP_MAX_SENSOR_POINTS", "10")
    get_settings.cache_clear()
    yield 10
    monkeypatch.undo()
    get_settings.cache_clear()


def test_series_reads_a_long_range_in_pages(live: LiveServer, small_reads: int) -> None:
    start = pd.Timestamp("2026-03-02", tz="Europe/Amsterdam")
    end = start + pd.Timedelta(hours=24)
    hourly = np.arange(24.0) * 1.5
    with Client(live.url, token=live.token) as c:
        sensor = c.create_sensor("load", "kW", resolution="PT1H")["id"]
        index = pd.date_range(start, periods=24, freq="h")
        c.upload_series(sensor, pd.Series(hourly, index=index))
        # one read of the whole range is refused...
        raw = c._http.get(f"/api/v1/sensors/{sensor}/data",
                          params={"start": start.isoformat(), "end": end.isoformat()})
        assert raw.status_code == 422 and raw.json()["limit"] == "max-sensor-points"
        # ...so the client reads it in pages of at most 10 points
        sent: list[httpx.Request] = []
        c._http.event_hooks["request"] = [sent.append]
        back = c.series(sensor, start, end)
        limits = [r.url.params.get("limit") for r in sent]
        assert limits == [None, "10", "10", "10"]  # refused, then 10 + 10 + 4 values
        coarse = c.series(sensor, start, end, resolution="PT2H")  # 5 values: 10 points
        # 15-minute values, 10 points a read: pages of 8, two whole stored hours each
        fine = c.series(sensor, start, end, resolution="PT15M")
        assert [r.url.params.get("limit") for r in sent[4:]] == [
            None, None, "5", "5", "5", None, None, *["8"] * 12]  # fmt: skip
        assert {r.url.path for r in sent if "limit" not in r.url.params} == {
            f"/api/v1/sensors/{sensor}/data", "/api/v1/sensors"}  # the sensor's resolution
    assert back.index.equals(index) and back.tolist() == hourly.tolist()
    assert back.attrs["unit"] == "kW" and back.name == sensor
    assert coarse.tolist() == hourly.reshape(12, 2).mean(axis=1).tolist()
    assert coarse.index.equals(pd.date_range(start, periods=12, freq="2h", name="datetime"))
    assert fine.tolist() == np.repeat(hourly, 4).tolist() and len(fine.index) == 96


def test_series_pages_only_when_the_server_refuses_for_its_point_limit() -> None:
    def refuse(limit: str) -> httpx.Response:
        return problem(422, "Limit exceeded", "too many", type="urn:vpp:error:LimitExceededError",
                       errors=[{"field": "end", "message": "too many"}], limit=limit, maximum=2)

    other = Recorder(lambda r: refuse("max-job-steps"))
    with pytest.raises(vc.InvalidRequestError) as caught:
        make_client(other).series(5, START, "2026-03-02T01:00:00+01:00")
    assert caught.value.limit == "max-job-steps" and caught.value.maximum == 2
    assert len(other.requests) == 1  # another limit: raised as it is

    def paged(request: httpx.Request) -> httpx.Response:
        if "limit" not in request.url.params:
            return refuse("max-sensor-points")
        first = datetime.fromisoformat(request.url.params["start"])
        count = min(int(request.url.params["limit"]), 3 - (first.minute // 20))
        end = first + timedelta(minutes=20 * count)
        return httpx.Response(200, json={
            "sensor": 5, "start": first.isoformat(), "end": end.isoformat(),
            "resolution": "PT20M", "unit": "kW",
            "values": [first.minute + 20.0 * k for k in range(count)],
            "next": end.isoformat() if end.minute else None})

    rec = Recorder(paged)
    got = make_client(rec).series(5, START, "2026-03-02T01:00:00+01:00")
    assert got.tolist() == [0.0, 20.0, 40.0]
    assert [r.url.params.get("limit") for r in rec.requests] == [None, "2", "2"]
    assert rec.requests[2].url.params["start"] == "2026-03-02T00:40:00+01:00"


# =========================================================================================
# One definition per method; one progress bar
# =========================================================================================
def test_both_clients_have_every_operation_with_its_signature() -> None:
    import inspect

    from vpp.client import operations

    names = [op.__name__ for op in operations.METHODS]
    for cls in (Client, AsyncClient):
        methods = {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}
        assert methods - {"close", "aclose"} == set(names)
        for op in operations.METHODS:
            method = getattr(cls, op.__name__)
            assert method.__doc__ == op.__doc__
            params = list(inspect.signature(method).parameters.values())
            assert params[1:] == list(inspect.signature(op).parameters.values())
    assert inspect.iscoroutinefunction(AsyncClient.series)
    assert not inspect.iscoroutinefunction(Client.series)


def test_the_progress_bar_also_draws_a_local_admm_run() -> None:
    """``vpp portfolio`` draws ``vpp.admm.Progress`` entries (snake_case) with the same bar."""
    stream = io.StringIO()
    bar = vc.ProgressBar(" ", 40, stream=stream)
    for k in range(1, 13):
        bar.step({"iteration": k, "primal_residual": 1.0 / k, "dual_residual": 0.5 / k,
                  "rho": 0.25, "objective": 100.0 + k, "lower_bound": 99.0 if k > 10 else None})
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [int(line.split("]")[1].split("/")[0]) for line in lines] == [1, 10]
    assert lines[1] == (
        "  ADMM [#######.......................]  10/40 r=1.00e-01 s=5.00e-02 rho=2.50e-01 "
        "cost=110.00 EUR"
    )
