"""Charts of finished scheduling jobs.

* ``GET /api/v1/scheduling-job/{id}/chart``: a Vega-Lite v5 spec of the job's result, data
  inline (auth and 404 exactly as ``GET /api/v1/scheduling-job/{id}``; 409 until finished).
* ``GET /ui/jobs/{id}``: a static page that fetches that spec with the bearer token from its
  URL fragment (``#token=...``, never sent to a server) and renders it with vega-embed.
* ``/ui/static/...``: the page's script and the vendored vega, vega-lite and vega-embed
  builds (no CDN), from ``api/static``.

:func:`chart_spec` is pure: result JSON (and the job's request, for a portfolio's target) in,
spec out.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import Field, TypeAdapter

from api import problems
from api.deps import CallerDep, KnownQuery, SessionDep
from api.routes.jobs import _visible_job
from vpp.errors import VppError
from vpp.portfolio import CongestionTarget, MarketTarget, PortfolioRequest, resolve_target
from vpp.request import TimeWindow, validate

__all__ = [
    "MAX_SITE_LINES",
    "PAGE_HEADERS",
    "PALETTE",
    "STATIC_DIR",
    "TARGET_COLOUR",
    "TIME_FORMAT",
    "TOTAL_COLOUR",
    "VEGA_LITE_SCHEMA",
    "chart_spec",
    "clock",
    "get_chart",
    "instants",
    "job_page",
    "router",
    "target_series",
    "time_axis_title",
    "zone_label",
]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
MAX_SITE_LINES = 20
"""A portfolio chart draws each site's power when it has at most this many sites."""

# Vega's tableau10 for devices and sites; totals dark, targets red (the page test looks for
# these colours in its screenshot).
PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#b279a2",
    "#72b7b2",
    "#eeca3b",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
    "#e45756",
)
TOTAL_COLOUR = "#222222"
TARGET_COLOUR = "#d62728"
WIDTH, HEIGHT = 900, 260

PAGE_HEADERS = {
    # The page holds no data; its script may only talk to this origin. Styles inline for
    # vega-embed's injected stylesheet; no 'unsafe-eval': expressions run in vega-interpreter.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(tags=["charts"])
router.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")

_DURATION = TypeAdapter(timedelta)


class _TargetWindow(TimeWindow):
    """The part of a portfolio request a chart needs: its window and target."""

    target: Annotated[CongestionTarget | MarketTarget, Field(discriminator="type")] | None = None


# -- the spec ---------------------------------------------------------------------------------
def instants(result: dict[str, Any], count: int) -> list[str]:
    """ISO texts (with offset) of ``start + k * resolution`` for ``k < count``."""
    start = datetime.fromisoformat(result["start"])
    step = _DURATION.validate_python(result["resolution"])
    return [(start + k * step).isoformat() for k in range(count)]


def clock(time: str) -> str:
    """``time``'s wall-clock reading at its own offset, written as if it were UTC: the chart
    draws these on a UTC scale, so it shows the request's (the site's) offset whatever the
    browser's zone."""
    return datetime.fromisoformat(time).replace(tzinfo=None).isoformat() + "Z"


def zone_label(time: str) -> str:
    """``UTC+01:00`` (``UTC`` at offset zero) for an ISO instant with offset."""
    offset = datetime.fromisoformat(time).utcoffset()
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def time_axis_title(times: list[str]) -> str:
    """The span with dates and the zone: ``Mon 02 Mar 2026 00:00 – Tue 03 Mar 2026 00:00
    (UTC+01:00)``."""
    if not times:
        return ""
    first, last = (datetime.fromisoformat(t) for t in (times[0], times[-1]))
    shown = "%a %d %b %Y %H:%M"
    return f"{first.strftime(shown)} – {last.strftime(shown)} ({zone_label(times[0])})"


def _number(value: Any) -> float | None:
    """A finite float, or ``None`` (JSON has no infinity; Vega-Lite breaks lines at nulls)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _step_rows(
    panel: str, series: str, values: list[Any], times: list[str]
) -> list[dict[str, Any]]:
    """One row per step at the step's start, and a closing row at the end of the horizon
    repeating the last value, so a ``step-after`` line draws the last step too."""
    rows = [
        {
            "panel": panel,
            "series": series,
            "time": times[k],
            "clock": clock(times[k]),
            "step": k,
            "value": _number(v),
        }
        for k, v in enumerate(values)
    ]
    if values:
        end = times[len(values)]
        rows.append(
            rows[-1] | {"time": end, "clock": clock(end), "step": len(values), "closing": True}
        )
    return rows


def _instant_rows(
    panel: str, series: str, values: list[Any], times: list[str]
) -> list[dict[str, Any]]:
    """One row per instant (SoC: ``steps + 1`` values, the first at ``start``)."""
    return [
        {
            "panel": panel,
            "series": series,
            "time": times[k],
            "clock": clock(times[k]),
            "step": k,
            "value": _number(v),
        }
        for k, v in enumerate(values)
    ]


def _unique(label: str, taken: list[str]) -> str:
    while label in taken:
        label += " (total)"
    return label


def _colour(domain: list[str], colours: dict[str, str]) -> dict[str, Any]:
    return {
        "field": "series",
        "type": "nominal",
        "scale": {"domain": domain, "range": [colours[s] for s in domain]},
        "legend": {"title": None, "orient": "right"},
    }


# 24-hour clock, the date at midnight (Vega time multi-format), formatted as UTC: the x field
# is ``clock`` (the wall clock at the request's offset, written as UTC), so the axis shows the
# site's times and dates whatever the browser's zone.
TIME_FORMAT = {
    "year": "%Y",
    "month": "%b %Y",
    "date": "%a %d %b",
    "hours": "%H:%M",
    "minutes": "%H:%M",
    "seconds": "%H:%M:%S",
    "milliseconds": "%H:%M:%S.%L",
}


def _x(title: str) -> dict[str, Any]:
    return {
        "field": "clock",
        "type": "temporal",
        "title": title or None,
        "scale": {"type": "utc"},
        "axis": {"format": TIME_FORMAT, "labelOverlap": True},  # utc scale: utcFormat
    }


def _y(title: str) -> dict[str, Any]:
    # padding: lines at a limit (a full battery, full power) stay clear of the frame
    return {"field": "value", "type": "quantitative", "title": title, "scale": {"padding": 6}}


def _panel(
    panel: str,
    title: str,
    y_title: str,
    layers: list[dict[str, Any]],
    x_title: str,
) -> dict[str, Any]:
    return {
        "title": {"text": title, "anchor": "start", "fontSize": 13},
        "width": WIDTH,
        "height": HEIGHT,
        "transform": [{"filter": f"datum.panel === '{panel}'"}],
        "layer": [
            _zero_rule(),  # first: beneath the lines
            *(
                {**layer, "encoding": {"x": _x(x_title), "y": _y(y_title), **layer["encoding"]}}
                for layer in layers
            ),
        ],
    }


def _zero_rule() -> dict[str, Any]:
    """A grey horizontal line at 0 kW: consumption above, production below."""
    return {
        "data": {"values": [{}]},
        "mark": {"type": "rule", "color": "#999999", "strokeWidth": 1},
        "encoding": {"y": {"datum": 0, "type": "quantitative"}},
    }


def _line(
    interpolate: str,
    colour: dict[str, Any],
    *,
    width: float | dict[str, Any] = 2,
    dash: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A line per series; ``width``/``dash`` a constant or a conditional encoding."""
    mark: dict[str, Any] = {
        "type": "line",
        "interpolate": interpolate,
        "invalid": "break-paths-filter-domains",  # a limit missing on some steps: gaps
    }
    encoding: dict[str, Any] = {"color": colour}
    if isinstance(width, dict):
        encoding["strokeWidth"] = width
    else:
        mark["strokeWidth"] = width
    if dash is not None:
        encoding["strokeDash"] = dash
    return {"mark": mark, "encoding": encoding}


def chart_spec(result: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A Vega-Lite v5 spec of a finished job's result (single site or portfolio).

    Rows of ``data.values``: ``{"panel", "series", "time", "step", "value"}`` with ``time``
    the ISO instant ``start + step * resolution``; step series (power, targets) add a
    ``"closing": true`` row at the end of the horizon repeating their last value. Power is
    in kW with consumption positive, SoC in kWh at each instant.
    """
    if "portfolio" in result and "sites" in result:
        return _portfolio_spec(result, request)
    if "devices" in result and "site" in result:
        return _site_spec(result)
    raise ValueError("not a site or portfolio result: no 'devices'/'site' or 'sites'/'portfolio'")


def _base(
    title: str, subtitle: str, rows: list[dict[str, Any]], panels: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "description": title,
        "title": {"text": title, "subtitle": subtitle, "anchor": "start"},
        "background": "white",
        "data": {"values": rows},
        "vconcat": panels,
        "resolve": {"scale": {"color": "independent"}, "legend": {"color": "independent"}},
        "config": {"view": {"stroke": None}, "line": {"strokeCap": "butt"}},
    }


def _site_spec(result: dict[str, Any]) -> dict[str, Any]:
    devices = result["devices"]
    site_power = result["site"]["power"]["values"]
    steps = len(site_power)
    times = instants(result, steps + 1)
    names = [str(d["name"]) for d in devices]
    site_label = _unique("site", names)
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    colours[site_label] = TOTAL_COLOUR

    rows: list[dict[str, Any]] = []
    for name, device in zip(names, devices, strict=True):
        rows += _step_rows("power", name, device["power"]["values"], times)
    rows += _step_rows("power", site_label, site_power, times)
    power_domain = [*names, site_label]
    width = {"condition": {"test": f"datum.series === '{_js(site_label)}'", "value": 3}, "value": 2}
    panels = [
        _panel(
            "power",
            "Power per device and site (kW, consumption positive)",
            "power (kW)",
            [_line("step-after", _colour(power_domain, colours), width=width)],
            time_axis_title(times),
        )
    ]
    with_soc = [(n, d) for n, d in zip(names, devices, strict=True) if d.get("soc")]
    for name, device in with_soc:
        rows += _instant_rows("soc", name, device["soc"]["values"], times)
    if with_soc:
        soc_domain = [n for n, _ in with_soc]
        panels.append(
            _panel(
                "soc",
                "State of charge (kWh)",
                "state of charge (kWh)",
                [_line("linear", _colour(soc_domain, colours))],
                time_axis_title(times),
            )
        )
    cost = result.get("cost", {})
    subtitle = (
        f"{result['start']} · {result.get('duration', '')} at {result['resolution']} · "
        f"cost {cost.get('value', 0):.2f} {cost.get('unit', 'EUR')} · "
        f"times in {zone_label(result['start'])} (the request's offset)"
    )
    return _base(f"Site schedule: {len(devices)} device(s)", subtitle, rows, panels)


def target_series(request: dict[str, Any], steps: int) -> dict[str, list[float | None]]:
    """The portfolio target on the horizon, by series name, kW with consumption positive:
    ``max-consumption`` and ``max-production`` (drawn negative) of a congestion target, the
    ``volume`` of a market target; steps without a limit are ``None``."""
    window = {k: request[k] for k in ("start", "duration", "resolution", "target") if k in request}
    parsed = validate(_TargetWindow, window)
    if parsed.target is None:
        return {}
    target = resolve_target(
        PortfolioRequest.model_construct(
            start=parsed.start,
            duration=parsed.duration,
            resolution=parsed.resolution,
            target=parsed.target,
            sites=[],
        )
    )
    if target.kind == "congestion":
        candidates = {"max-consumption": target.upper, "max-production": target.lower}
    else:
        candidates = {"volume": target.volume}
    out: dict[str, list[float | None]] = {}
    for name, array in candidates.items():
        values = [_number(v) for v in list(array)[:steps]]
        if any(v is not None for v in values):
            out[name] = values
    return out


def _portfolio_spec(result: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    total = result["portfolio"]["power"]["values"]
    steps = len(total)
    times = instants(result, steps + 1)
    try:
        targets = target_series(request, steps)
        unreadable = ""
    except VppError as err:  # an old job's request the current schema rejects: no target
        targets, unreadable = {}, f" · target not shown: {err}"
    total_label = "portfolio"
    colours = {total_label: TOTAL_COLOUR} | {name: TARGET_COLOUR for name in targets}

    rows = _step_rows("portfolio", total_label, total, times)
    for name, values in targets.items():
        rows += _step_rows("portfolio", name, values, times)
    domain = [total_label, *targets]
    dash = {
        "condition": {"test": f"datum.series === '{total_label}'", "value": [1, 0]},
        "value": [6, 4],
    }
    kind = (request.get("target") or {}).get("type", "no")
    panels = [
        _panel(
            "portfolio",
            f"Portfolio power and {kind} target (kW, consumption positive)",
            "power (kW)",
            [_line("step-after", _colour(domain, colours), width=2.5, dash=dash)],
            time_axis_title(times),
        )
    ]
    sites = result["sites"]
    if len(sites) <= MAX_SITE_LINES:
        site_ids = [str(s["id"]) for s in sites]
        site_colours = {sid: PALETTE[i % len(PALETTE)] for i, sid in enumerate(site_ids)}
        for sid, site in zip(site_ids, sites, strict=True):
            rows += _step_rows("sites", sid, site["site"]["power"]["values"], times)
        panels.append(
            _panel(
                "sites",
                "Power per site (kW, consumption positive)",
                "power (kW)",
                [_line("step-after", _colour(site_ids, site_colours), width=1.5)],
                time_axis_title(times),
            )
        )
    info = result["portfolio"]
    cost = info.get("cost", {})
    subtitle = (
        f"{result['start']} · {result.get('duration', '')} at {result['resolution']} · "
        f"cost {cost.get('value', 0):.2f} {cost.get('unit', 'EUR')} · "
        f"target violation {info.get('target-violation-kw', 0):.3g} kW · "
        f"times in {zone_label(result['start'])} (the request's offset)"
        f"{unreadable}"
    )
    return _base(f"Portfolio schedule: {len(sites)} site(s)", subtitle, rows, panels)


def _js(text: str) -> str:
    """``text`` inside a single-quoted Vega expression string."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


# -- routes -----------------------------------------------------------------------------------
@router.get(
    "/api/v1/scheduling-job/{job_id}/chart",
    dependencies=[KnownQuery],
    responses={
        200: {
            "description": "A Vega-Lite v5 spec, data inline",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **problems.errors(
            e404="No such job, or not visible to the caller",
            e409="The job is not finished (`job-status` says what it is)",
        ),
    },
)
def get_chart(
    job_id: str, request: Request, caller: CallerDep, session: SessionDep
) -> JSONResponse:
    """The finished job's result as a Vega-Lite v5 chart spec (render it with vega-embed)."""
    job = _visible_job(session, caller, job_id)
    if job.status != "finished" or not job.result:
        extra: dict[str, Any] = {"job-status": job.status}
        if job.progress and job.status == "running":
            extra["progress"] = job.progress
        if job.error and job.status == "failed":
            extra["job-error"] = job.error
        return problems.problem(
            409,
            "Conflict",
            f"job {job_id} is {job.status}; its chart exists once it has finished",
            request,
            **extra,
        )
    spec = chart_spec(job.result, job.request)
    spec["usermeta"] = {
        "job": job.id,
        "kind": job.kind,
        "status": job.status,
        "created": job.created_at.isoformat(),
        "finished": job.finished_at.isoformat() if job.finished_at else None,
    }
    return JSONResponse(spec)


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
def job_page(job_id: str) -> HTMLResponse:
    """The chart page; it holds no data (the script reads the job id from its own path)."""
    return HTMLResponse((STATIC_DIR / "job.html").read_text("utf-8"), headers=PAGE_HEADERS)
