"""Job charts: the pure Vega-Lite spec builder, the chart endpoint, the page and its
vendored scripts, and the page rendered by a real headless Chromium."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import served
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.charts import (
    MAX_SITE_LINES,
    PALETTE,
    STATIC_DIR,
    TARGET_COLOUR,
    TOTAL_COLOUR,
    chart_spec,
)
from store import repository as repo
from vpp.portfolio import CentralisedPortfolio
from vpp.site import schedule

CHROMIUM = Path("/usr/bin/chromium")
PROBLEM = "application/problem+json"
START = "2026-03-02T00:00:00+01:00"


def battery(**overrides: str) -> dict[str, str]:
    return {
        "soc-at-start": "10 kWh",
        "soc-min": "0 kWh",
        "soc-max": "40 kWh",
        "power-capacity": "10 kW",
        "charging-efficiency": "95%",
        "discharging-efficiency": "95%",
    } | overrides


def prices(steps: int) -> dict[str, Any]:
    """Cheap nights, dear evenings (EUR/MWh), ``steps`` steps over a day."""
    hour = [24.0 * k / steps for k in range(steps)]
    return {
        "values": [round(60 + 40 * (17 <= h < 21) - 30 * (h < 6), 2) for h in hour],
        "unit": "EUR/MWh",
    }


# -- helpers ----------------------------------------------------------------------------------
def times(start: str, resolution: timedelta, count: int) -> list[datetime]:
    """The instants ``start + k * resolution``, recomputed here (not by the module)."""
    first = datetime.fromisoformat(start)
    return [first + k * resolution for k in range(count)]


def rows(spec: dict[str, Any], panel: str, series: str) -> list[dict[str, Any]]:
    return [r for r in spec["data"]["values"] if r["panel"] == panel and r["series"] == series]


def panel_of(spec: dict[str, Any], panel: str) -> dict[str, Any]:
    found = [
        p for p in spec["vconcat"] if p["transform"] == [{"filter": f"datum.panel === '{panel}'"}]
    ]
    assert len(found) == 1, f"one panel {panel!r}"
    return found[0]


def assert_step_series(
    spec: dict[str, Any], panel: str, series: str, values: list[Any], instants: list[datetime]
) -> None:
    """``values[k]`` at instant ``k``, plus the closing row at the end repeating the last."""
    got = rows(spec, panel, series)
    steps = len(values)
    assert len(got) == steps + 1
    assert [r["value"] for r in got[:steps]] == values
    assert [r["step"] for r in got] == list(range(steps + 1))
    assert [datetime.fromisoformat(r["time"]) for r in got] == instants[: steps + 1]
    assert all(re.search(r"[+-]\d\d:\d\d$", r["time"]) for r in got), "ISO with offset"
    assert [r["clock"] for r in got] == [
        t.replace(tzinfo=None).isoformat() + "Z" for t in instants[: steps + 1]
    ], "the wall clock at the request's offset, as if UTC"
    assert "closing" not in got[0] and got[-1]["closing"] is True
    assert got[-1]["value"] == values[-1]


def line_layer(panel: dict[str, Any]) -> dict[str, Any]:
    lines = [layer for layer in panel["layer"] if layer["mark"]["type"] == "line"]
    assert len(lines) == 1
    return lines[0]


def assert_xy(layer: dict[str, Any]) -> None:
    enc = layer["encoding"]
    # the wall clock at the request's offset on a UTC scale: the browser's zone plays no part
    assert enc["x"]["field"] == "clock" and enc["x"]["type"] == "temporal"
    assert enc["x"]["scale"] == {"type": "utc"}
    assert enc["x"]["title"].endswith("(UTC+01:00)")
    assert enc["y"]["field"] == "value" and enc["y"]["type"] == "quantitative"
    assert enc["color"]["field"] == "series" and enc["color"]["type"] == "nominal"


def site_request() -> dict[str, Any]:
    """A battery and a PV plant (no SoC): two device lines, the site line, one SoC line."""
    storage = {"name": "battery", "type": "storage", **battery()}
    pv = {
        "name": "pv",
        "type": "generation",
        "production": {
            "values": [max(0.0, 6.0 - abs(k - 52) * 0.25) for k in range(96)],
            "unit": "kW",
        },
    }
    context = {
        "consumption-price": prices(96),
        "production-price": "10 EUR/MWh",
        "site-power-capacity": "25 kW",
        "inflexible-devices": {"house": "1 kW"},
    }
    return {
        "start": START,
        "duration": "PT24H",
        "resolution": "PT15M",
        "flex-model": [storage, pv],
        "flex-context": context,
    }


def portfolio_request(target: dict[str, Any] | None, sites: int = 2) -> dict[str, Any]:
    """``sites`` homes (a battery each, a house load) over 24 hourly steps."""
    homes = []
    for i in range(sites):
        storage = battery(**{"soc-at-start": f"{5 + 5 * i} kWh", "power-capacity": "4 kW"})
        homes.append(
            {
                "id": f"home-{i}",
                "flex-model": [{"name": "battery", **storage}],
                "flex-context": {"inflexible-devices": {"house": f"{1 + 0.5 * i} kW"}},
            }
        )
    request: dict[str, Any] = {
        "start": START,
        "duration": "PT24H",
        "resolution": "PT1H",
        "flex-context": {"consumption-price": prices(24)},
        "sites": homes,
    }
    if target is not None:
        request["target"] = target
    return request


# -- (a) chart_spec on real results -----------------------------------------------------------
@pytest.fixture(scope="module")
def site_result() -> tuple[dict[str, Any], dict[str, Any]]:
    request = site_request()
    return schedule(request), request


def test_site_spec_holds_the_result_series(site_result: Any) -> None:
    result, request = site_result
    spec = chart_spec(result, request)
    json.dumps(spec, allow_nan=False)  # plain JSON: no NaN or infinity
    assert spec["$schema"] == "https://vega.github.io/schema/vega-lite/v5.json"
    steps = 96
    instants = times(START, timedelta(minutes=15), steps + 1)
    devices = {d["name"]: d for d in result["devices"]}
    assert set(devices) == {"battery", "pv"}
    for name, device in devices.items():
        assert len(device["power"]["values"]) == steps
        assert_step_series(spec, "power", name, device["power"]["values"], instants)
    assert_step_series(spec, "power", "site", result["site"]["power"]["values"], instants)

    soc = rows(spec, "soc", "battery")
    assert [r["value"] for r in soc] == devices["battery"]["soc"]["values"]
    assert len(soc) == steps + 1
    assert [datetime.fromisoformat(r["time"]) for r in soc] == instants
    assert rows(spec, "soc", "pv") == [], "a device without SoC has no SoC line"
    assert {r["panel"] for r in spec["data"]["values"]} == {"power", "soc"}


def test_site_spec_marks_and_encodings(site_result: Any) -> None:
    result, request = site_result
    spec = chart_spec(result, request)
    assert [p["transform"][0]["filter"] for p in spec["vconcat"]] == [
        "datum.panel === 'power'",
        "datum.panel === 'soc'",
    ]
    power = line_layer(panel_of(spec, "power"))
    assert power["mark"]["interpolate"] == "step-after"
    assert_xy(power)
    colour = power["encoding"]["color"]["scale"]
    assert colour["domain"] == ["battery", "pv", "site"]
    assert colour["range"] == [PALETTE[0], PALETTE[1], TOTAL_COLOUR]
    assert power["encoding"]["strokeWidth"]["condition"]["test"] == "datum.series === 'site'"

    soc = line_layer(panel_of(spec, "soc"))
    assert soc["mark"]["interpolate"] == "linear"
    assert_xy(soc)
    assert soc["encoding"]["color"]["scale"] == {"domain": ["battery"], "range": [PALETTE[0]]}
    assert soc["encoding"]["y"]["title"] == "state of charge (kWh)"

    for panel in spec["vconcat"]:
        rules = [layer for layer in panel["layer"] if layer["mark"]["type"] == "rule"]
        assert [r["encoding"]["y"]["datum"] for r in rules] == [0]


def test_site_spec_without_storage_and_a_device_called_site(site_result: Any) -> None:
    result, request = site_result
    renamed = json.loads(json.dumps(result))
    renamed["devices"] = [d | {"name": "site"} for d in renamed["devices"] if d["name"] == "pv"]
    spec = chart_spec(renamed, request)
    assert len(spec["vconcat"]) == 1, "no SoC panel when no device has a SoC"
    domain = line_layer(spec["vconcat"][0])["encoding"]["color"]["scale"]["domain"]
    assert domain == ["site", "site (total)"]
    assert [r["value"] for r in rows(spec, "power", "site (total)")][:-1] == (
        result["site"]["power"]["values"]
    )


def test_not_a_result() -> None:
    with pytest.raises(ValueError, match="not a site or portfolio result"):
        chart_spec({"status": "finished"}, {})


def test_portfolio_spec_with_a_congestion_target() -> None:
    target = {"type": "congestion", "max-consumption": "6000 W", "max-production": "4 kW"}
    request = portfolio_request(target)
    result = CentralisedPortfolio(request).solve().to_json()
    spec = chart_spec(result, request)
    json.dumps(spec, allow_nan=False)
    instants = times(START, timedelta(hours=1), 25)
    total = result["portfolio"]["power"]["values"]
    assert max(total) <= 6.0 + 1e-6
    assert_step_series(spec, "portfolio", "portfolio", total, instants)
    assert_step_series(spec, "portfolio", "max-consumption", [6.0] * 24, instants)
    assert_step_series(spec, "portfolio", "max-production", [-4.0] * 24, instants)
    for site in result["sites"]:
        assert_step_series(spec, "sites", site["id"], site["site"]["power"]["values"], instants)

    main = line_layer(panel_of(spec, "portfolio"))
    assert main["mark"]["interpolate"] == "step-after"
    assert_xy(main)
    assert main["encoding"]["color"]["scale"] == {
        "domain": ["portfolio", "max-consumption", "max-production"],
        "range": [TOTAL_COLOUR, TARGET_COLOUR, TARGET_COLOUR],
    }
    dash = main["encoding"]["strokeDash"]
    assert dash["condition"] == {"test": "datum.series === 'portfolio'", "value": [1, 0]}
    assert dash["value"] == [6, 4], "targets dashed"
    sites = line_layer(panel_of(spec, "sites"))
    assert sites["encoding"]["color"]["scale"]["domain"] == ["home-0", "home-1"]
    assert sites["mark"]["interpolate"] == "step-after"


def test_portfolio_spec_with_a_market_target_and_partial_limits() -> None:
    volume = [3.0 if 8 <= k < 20 else 1.0 for k in range(24)]
    request = portfolio_request(
        {
            "type": "market",
            "volume": {"values": volume, "unit": "kW"},
            "deviation-price": "100 EUR/MWh",
        }
    )
    result = CentralisedPortfolio(request).solve().to_json()
    spec = chart_spec(result, request)
    instants = times(START, timedelta(hours=1), 25)
    assert_step_series(spec, "portfolio", "volume", volume, instants)
    assert {r["series"] for r in spec["data"]["values"] if r["panel"] == "portfolio"} == {
        "portfolio",
        "volume",
    }

    # a limit on some steps only: the others are null (the line breaks there)
    later = (datetime.fromisoformat(START) + timedelta(hours=12)).isoformat()
    partial = request | {
        "target": {
            "type": "congestion",
            "max-consumption": [{"start": later, "duration": "PT6H", "value": "5 kW"}],
        }
    }
    spec = chart_spec(result, partial)
    json.dumps(spec, allow_nan=False)
    limit = [r["value"] for r in rows(spec, "portfolio", "max-consumption")]
    assert limit[:24] == [None] * 12 + [5.0] * 6 + [None] * 6
    assert rows(spec, "portfolio", "max-production") == [], "no production limit, no line"
    assert line_layer(panel_of(spec, "portfolio"))["mark"]["invalid"] == (
        "break-paths-filter-domains"
    )


def test_portfolio_spec_without_target_and_with_many_sites() -> None:
    request = portfolio_request(None)
    result = CentralisedPortfolio(request).solve().to_json()
    spec = chart_spec(result, request)
    assert {r["series"] for r in rows_of_panel(spec, "portfolio")} == {"portfolio"}
    assert len(spec["vconcat"]) == 2

    many = json.loads(json.dumps(result))
    many["sites"] = [many["sites"][i % 2] | {"id": f"s{i}"} for i in range(MAX_SITE_LINES + 1)]
    spec = chart_spec(many, request)
    assert len(spec["vconcat"]) == 1, "no per-site panel above MAX_SITE_LINES sites"
    assert rows_of_panel(spec, "sites") == []
    assert "21 site(s)" in spec["title"]["text"]


def test_portfolio_spec_with_an_unreadable_target() -> None:
    request = portfolio_request(None)
    result = CentralisedPortfolio(request).solve().to_json()
    broken = request | {"target": {"type": "market"}}  # e.g. a job stored by an older schema
    spec = chart_spec(result, broken)
    assert {r["series"] for r in rows_of_panel(spec, "portfolio")} == {"portfolio"}
    assert "target not shown: target.volume: required" in spec["title"]["subtitle"]


def rows_of_panel(spec: dict[str, Any], panel: str) -> list[dict[str, Any]]:
    return [r for r in spec["data"]["values"] if r["panel"] == panel]


# -- (b) HTTP ---------------------------------------------------------------------------------
class NoDispatcher:
    """Leaves queued jobs queued."""

    def kick(self) -> None:
        pass


def admin_token(app: Any) -> str:
    with app.state.sessions.begin() as session:
        _, token = repo.ensure_admin(session)
    assert token is not None
    return token


def admin_account(session: Any) -> Any:
    """The bootstrap admin's account (whatever its kind)."""
    user, _ = repo.ensure_admin(session)
    return user.account


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_finished(client: Any, job_id: str, token: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(
            f"/api/v1/scheduling-job/{job_id}", headers=bearer(token)
        ).json()
        if body["status"] in ("finished", "failed", "cancelled"):
            assert body["status"] == "finished", body
            return body
        assert time.monotonic() < deadline, f"job {job_id} still {body['status']}"
        time.sleep(0.1)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    app = create_app(f"sqlite:///{tmp_path / 'vpp.db'}")
    token = admin_token(app)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, token


@pytest.fixture
def idle_client(tmp_path: Path) -> Iterator[tuple[TestClient, str, Any]]:
    app = create_app(f"sqlite:///{tmp_path / 'vpp.db'}", dispatcher=NoDispatcher())
    token = admin_token(app)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, token, app


def test_chart_of_a_finished_storage_job(client: Any) -> None:
    http, token = client
    request = site_request()
    posted = http.post("/api/v1/scheduling-job/storage", json=request, headers=bearer(token))
    assert posted.status_code == 202, posted.text
    job_id = posted.json()["job"]
    job = wait_finished(http, job_id, token)

    response = http.get(f"/api/v1/scheduling-job/{job_id}/chart", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    spec = response.json()
    meta = spec.pop("usermeta")
    assert meta["job"] == job_id and meta["kind"] == "storage" and meta["status"] == "finished"
    assert meta["finished"] == job["finished"]
    assert spec == chart_spec(job["result"], request)


def test_chart_needs_a_valid_token(client: Any) -> None:
    http, _token = client
    for headers in ({}, bearer("vpp_not-a-token"), {"Authorization": "Basic eDp5"}):
        response = http.get("/api/v1/scheduling-job/some-job/chart", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["status"] == 401


def test_chart_404_like_the_job_route(idle_client: Any) -> None:
    http, token, app = idle_client
    missing = http.get("/api/v1/scheduling-job/no-such-job/chart", headers=bearer(token))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["detail"] == "no scheduling job no-such-job"

    with app.state.sessions.begin() as session:
        job_id = repo.create_job(
            session, "storage", site_request(), account=admin_account(session)
        ).id
        other = repo.get_or_create_account(session, "other")
        user = repo.create_user(session, other, "olga", "admin")
        _, other_token = repo.issue_token(session, user, "test")
    for path in (f"/api/v1/scheduling-job/{job_id}", f"/api/v1/scheduling-job/{job_id}/chart"):
        hidden = http.get(path, headers=bearer(other_token))
        assert hidden.status_code == 404, path
        assert hidden.json()["detail"] == f"no scheduling job {job_id}"


def test_chart_409_until_finished(idle_client: Any) -> None:
    http, token, app = idle_client
    job_id = http.post(
        "/api/v1/scheduling-job/storage", json=site_request(), headers=bearer(token)
    ).json()["job"]
    url = f"/api/v1/scheduling-job/{job_id}/chart"

    queued = http.get(url, headers=bearer(token))
    assert queued.status_code == 409
    assert queued.headers["content-type"] == PROBLEM
    body = queued.json()
    assert body["title"] == "Conflict" and body["job-status"] == "queued"
    assert body["detail"] == f"job {job_id} is queued; its chart exists once it has finished"
    assert body["instance"] == url

    with app.state.sessions.begin() as session:
        repo.set_job_status(session, job_id, "running", progress={"iteration": 7})
    running = http.get(url, headers=bearer(token)).json()
    assert running["job-status"] == "running" and running["progress"] == {"iteration": 7}

    error = {"title": "Infeasible", "detail": "soc-targets[0] cannot be met"}
    with app.state.sessions.begin() as session:
        repo.set_job_status(session, job_id, "failed", error=error)
    failed = http.get(url, headers=bearer(token))
    assert failed.status_code == 409
    assert failed.json()["job-status"] == "failed" and failed.json()["job-error"] == error


def test_chart_of_a_portfolio_job(idle_client: Any) -> None:
    http, token, app = idle_client
    request = portfolio_request({"type": "congestion", "max-consumption": "6 kW"})
    result = CentralisedPortfolio(request).solve().to_json()
    with app.state.sessions.begin() as session:
        job_id = repo.create_job(session, "portfolio", request, account=admin_account(session)).id
        repo.set_job_status(session, job_id, "running")
        repo.set_job_status(session, job_id, "finished", result=result)
    response = http.get(f"/api/v1/scheduling-job/{job_id}/chart", headers=bearer(token))
    assert response.status_code == 200, response.text
    spec = response.json()
    assert spec.pop("usermeta")["kind"] == "portfolio"
    assert spec == chart_spec(result, request)
    assert [r["value"] for r in rows(spec, "portfolio", "max-consumption")] == [6.0] * 25


def vendored_versions() -> dict[str, str]:
    """``{file: version}`` from the table in api/static/vendor/README.md."""
    text = (STATIC_DIR / "vendor" / "README.md").read_text()
    found = dict(re.findall(r"^\| `([\w.-]+\.min\.js)` \| .*? \| ([\d.]+) \|", text, re.M))
    assert set(found) == {"vega.min.js", "vega-lite.min.js", "vega-embed.min.js"}
    return found


def test_page_and_vendored_scripts(client: Any) -> None:
    http, _token = client
    page = http.get("/ui/jobs/3f2a-any-id")  # no token: the page holds no data
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp
    assert "connect-src 'self'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    scripts = re.findall(r'<script src="([^"]+)"></script>', html)
    assert scripts == [
        "../static/vendor/vega.min.js",
        "../static/vendor/vega-lite.min.js",
        "../static/vendor/vega-embed.min.js",
        "../static/job.js",
    ]
    links = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert links and all(link.startswith("../static/") for link in links), "no CDN"

    versions = vendored_versions()
    names = {
        "vega.min.js": "vega",
        "vega-lite.min.js": "vega-lite",
        "vega-embed.min.js": "vega-embed",
    }
    for file, version in versions.items():
        assert f"{names[file]} {version}" in html, "the page's comment names the version"
        served = http.get(f"/ui/static/vendor/{file}")
        assert served.status_code == 200
        assert "javascript" in served.headers["content-type"]
        local = (STATIC_DIR / "vendor" / file).read_bytes()
        assert served.content == local and len(local) > 50_000
        assert f'"{version}"'.encode() in local, f"{file} is version {version}"
        licence = STATIC_DIR / "vendor" / f"LICENSE.{names[file]}"
        assert "University of Washington Interactive Data Lab" in licence.read_text()
    for asset in ("job.js", "job.css"):
        assert http.get(f"/ui/static/{asset}").status_code == 200
    assert http.get("/ui/static/../routes/charts.py").status_code == 404
    assert http.get("/ui/static/%2e%2e/routes/charts.py").status_code == 404


# -- (c) headless Chromium --------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing (apt-get install -y --no-install-recommends chromium)",
)


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The app on uvicorn at 127.0.0.1:<free port> in a thread: (base URL, admin token)."""
    db = tmp_path_factory.mktemp("live") / "vpp.db"
    app = create_app(f"sqlite:///{db}")
    token = admin_token(app)
    with served(app) as base:
        yield base, token


@pytest.fixture(scope="module")
def live_job(live_app: tuple[str, str]) -> tuple[str, str, str]:
    """A finished storage job made through the API: (base URL, token, job id)."""
    import httpx

    base, token = live_app
    with httpx.Client(base_url=base, headers=bearer(token), timeout=30) as http:
        posted = http.post("/api/v1/scheduling-job/storage", json=site_request())
        assert posted.status_code == 202, posted.text
        job_id = posted.json()["job"]
        wait_finished(http, job_id, token)
    return base, token, job_id


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,900",
)
"""Headless Chromium as every page test runs it: no network of its own beyond the page."""


def chromium(
    url: str, profile: Path, *args: str, budget_ms: int = 10_000, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Chromium run once on ``url`` (``args``: what to do, e.g. ``--dump-dom``), its console
    logged to stderr; ``budget_ms`` of virtual time for the page's scripts."""
    command = [
        str(CHROMIUM),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def console_lines(stderr: str) -> list[str]:
    """What the page wrote to its console (or threw), from Chromium's stderr log."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def colour_pixels(pixels: np.ndarray, hex_colour: str, tolerance: int = 24) -> int:
    """How many RGB ``pixels`` (H×W×3) are within ``tolerance`` of ``hex_colour``."""
    want = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels.astype(int) - want) <= tolerance).all(axis=2).sum())


@needs_chromium
def test_page_renders_the_chart_in_chromium(live_job: Any, tmp_path: Path) -> None:
    from PIL import Image

    base, token, job_id = live_job
    url = f"{base}/ui/jobs/{job_id}#token={token}"

    dom = chromium(url, tmp_path / "profile-dom", "--dump-dom")
    assert console_lines(dom.stderr) == [], "the page logged to its console"
    html = dom.stdout
    assert 'data-state="rendered"' in html, html[-2000:]
    assert re.search(r'<div id="error" role="alert" hidden=""', html), "no error shown"
    assert "could not be loaded" not in html and "Not signed in" not in html
    chart = html[html.index('<div id="chart"') :]
    assert "<svg" in chart and 'class="marks"' in chart
    # battery, pv and site power lines; the battery's SoC line
    assert chart.count('aria-roledescription="line mark"') == 4
    assert "status: finished · storage job" in html

    shot = tmp_path / "shot.png"
    done = chromium(url, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert console_lines(done.stderr) == [], "the page logged to its console"
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    plot = np.asarray(image)[120:760, 20:1180]  # both panels, below the page header
    drawn = int((plot.min(axis=2) < 230).sum())
    assert drawn > 0.03 * plot.shape[0] * plot.shape[1], f"only {drawn} non-white pixels"
    for name, colour in (("battery", PALETTE[0]), ("pv", PALETTE[1]), ("site", TOTAL_COLOUR)):
        assert colour_pixels(plot, colour) > 300, f"the {name} line ({colour}) is not drawn"
    assert colour_pixels(plot, PALETTE[2]) < 50, "no third device colour"


@needs_chromium
def test_page_names_a_running_jobs_phase_and_the_servers_cap(tmp_path: Path) -> None:
    """Issue 11 item 8 on the job page: a running portfolio job shows its phase and its
    iteration against the server's own cap (not an assumed one)."""
    app = create_app(f"sqlite:///{tmp_path / 'vpp.db'}")
    token = admin_token(app)
    progress = {"phase": "iterating", "iteration": 7, "max-iterations": 100}
    with app.state.sessions.begin() as session:
        job_id = repo.create_job(session, "portfolio", {}, account=admin_account(session)).id
        repo.set_job_status(session, job_id, "running", progress=progress)
    with served(app) as base:
        done = chromium(f"{base}/ui/jobs/{job_id}#token={token}", tmp_path / "p", "--dump-dom",
                        budget_ms=3_000)
    assert "status: running (iterating, iteration 7 of 100)" in done.stdout, done.stdout[-1500:]
    assert not [line for line in console_lines(done.stderr) if "Uncaught" in line]


@needs_chromium
def test_page_explains_a_refused_token_in_chromium(live_job: Any, tmp_path: Path) -> None:
    base, _token, job_id = live_job
    done = chromium(f"{base}/ui/jobs/{job_id}#token=vpp_wrong", tmp_path / "profile", "--dump-dom")
    html = done.stdout
    assert 'data-state="error"' in html
    assert "Not signed in (401): unknown or revoked token." in html
    assert "<svg" not in html[html.index('<div id="chart"') :]
    assert not [line for line in console_lines(done.stderr) if "Uncaught" in line]


class DevTools:
    """A headless Chromium driven over the DevTools protocol (``websockets``' sync client):
    enough to load a page and evaluate expressions in it."""

    def __init__(self, profile: Path, env: dict[str, str]) -> None:
        import os

        command = [
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            command,
            env=os.environ | env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ws: Any = None
        self.exits = contextlib.ExitStack()
        self.next_id = 0
        try:
            self._connect(profile / "DevToolsActivePort")
        except BaseException:
            self.close()
            raise

    def _connect(self, port_file: Path) -> None:
        import httpx
        from websockets.sync.client import connect

        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None, "chromium exited"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = self.exits.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        got = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in got, got
        return got["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """The first truthy value of ``expression`` (errors while the page is being replaced,
        e.g. no document yet, count as not yet)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
            value = None if "exceptionDetails" in got else got["result"].get("value")
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.1)

    def close(self) -> None:
        self.exits.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@needs_chromium
def test_page_draws_the_requests_offset_and_drops_the_token(live_job: Any, tmp_path: Path) -> None:
    """The browser runs in New York (UTC-5) and the job in UTC+01:00: the axes still show the
    request's times with dates, say which offset, and the token leaves the URL and history."""
    base, token, job_id = live_job
    url = f"{base}/ui/jobs/{job_id}#token={token}"
    browser = DevTools(tmp_path / "profile", {"TZ": "America/New_York"})
    try:
        assert browser.evaluate("new Date(2026, 2, 2).getTimezoneOffset()") == 300, "UTC-5"
        browser.call("Page.navigate", url=url)
        state = browser.wait_for(
            "location.pathname.startsWith('/ui/jobs/')"
            " && ['rendered', 'error'].includes(document.documentElement.dataset.state)"
            " && document.documentElement.dataset.state"
        )
        assert state == "rendered", browser.evaluate("document.body.innerText")
        labels: list[list[str]] = browser.evaluate(
            "Array.from(document.querySelectorAll('#chart g.role-axis'))"
            ".filter(a => a.querySelector('.role-axis-domain line, .role-axis-domain path'))"
            ".map(a => Array.from(a.querySelectorAll('.role-axis-label text'))"
            ".map(t => t.textContent))"
        )
        titles: list[str] = browser.evaluate(
            "Array.from(document.querySelectorAll('#chart .role-axis-title text'))"
            ".map(t => t.textContent)"
        )
        text = browser.evaluate("document.querySelector('#chart svg').textContent")
        href = browser.evaluate("location.href")
        hash_ = browser.evaluate("location.hash")
        history = browser.call("Page.getNavigationHistory")
    finally:
        browser.close()

    # x axes: their labels are times, and the first is the start's date at midnight (+01:00)
    x_axes = [axis for axis in labels if any(re.fullmatch(r"\d\d:\d\d", s) for s in axis)]
    assert len(x_axes) == 2, labels  # the power and the SoC panel
    for axis in x_axes:
        assert axis[0] == "Mon 02 Mar", axis
        hours = [s for s in axis if re.fullmatch(r"\d\d:\d\d", s)]
        assert hours[:3] == ["01:00", "02:00", "03:00"], axis  # New York: 19:00, 20:00, ...
        assert "Sun 01 Mar" not in axis, "not the browser's zone"
    span = "Mon 02 Mar 2026 00:00 – Tue 03 Mar 2026 00:00 (UTC+01:00)"
    assert titles.count(span) == 2, titles
    assert "times in UTC+01:00" in text

    assert token not in href and hash_ == "" and "#" not in href, href
    assert href == f"{base}/ui/jobs/{job_id}"
    entries = history["entries"]
    assert all(token not in entry["url"] for entry in entries), entries
