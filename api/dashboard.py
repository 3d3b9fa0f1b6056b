"""The period report as a Vega-Lite v5 dashboard (``GET /api/v1/reports/chart``, drawn by
``GET /ui/reports``).

:func:`dashboard_spec` is pure: a period report (:func:`vpp.reports.period_report`) in, a
spec out, data inline. Bars per site, one panel each:

* ``cost``: the schedule's energy cost next to the price-blind baseline's;
* ``savings``: baseline less schedule;
* ``shares``: self-consumption and self-sufficiency (sites without production or
  consumption have no bar there);
* ``emissions`` (only when the report has CO2): the schedule's and the baseline's kg.

A panel without a bar is left out (Vega cannot scale an empty axis); a report without sites
is one line of text.
"""

from __future__ import annotations

from typing import Any

from api.routes.charts import PALETTE, VEGA_LITE_SCHEMA

__all__ = ["BAR_WIDTH", "PANELS", "dashboard_spec"]

BAR_WIDTH = 28
"""Pixels per site (step) on each panel's x axis."""

PANELS = {
    "cost": ("Energy cost: schedule and price-blind baseline", "cost"),
    "savings": ("Savings against the baseline", "savings"),
    "shares": ("Self-consumption and self-sufficiency", "share"),
    "emissions": ("CO2 emissions: schedule and baseline", "kg"),
}
"""Panel id: (title, y-axis title; a unit is added where there is one)."""

_SERIES = {
    "cost": (("schedule", "energy-cost"), ("baseline", "baseline-cost")),
    "savings": (("savings", "savings"),),
    "shares": (("self-consumption", "self-consumption"), ("self-sufficiency", "self-sufficiency")),
    "emissions": (("schedule", "emissions"), ("baseline", "baseline-emissions")),
}


def dashboard_spec(report: dict[str, Any]) -> dict[str, Any]:
    """A vconcat of bar panels (module docstring) of ``report``'s sites."""
    labels = [s["label"] for s in report["sites"]]
    rows = [
        row
        for site, label in zip(report["sites"], labels, strict=True)
        for row in _site_rows(site["kpis"], label)
    ]
    panels = [p for p in PANELS if any(row["panel"] == p for row in rows)]
    total = report["total"]
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "title": {
            "text": f"KPIs {report['start']} – {report['end']}",
            "subtitle": _subtitle(total, len(labels)),
            "anchor": "start",
        },
        "data": {"values": rows},
        "vconcat": [_panel(p, labels, _unit(total, p)) for p in panels] or [_nothing()],
        "resolve": {  # each panel its own series, colours and legend
            "scale": {"color": "independent", "xOffset": "independent", "y": "independent"},
            "legend": {"color": "independent"},
        },
        "config": {"view": {"stroke": None}},
        "usermeta": {
            "start": report["start"],
            "end": report["end"],
            "sites": len(labels),
            "savings": total["savings"],
        },
    }


def _site_rows(kpis: dict[str, Any], label: str) -> list[dict[str, Any]]:
    rows = []
    for panel, series in _SERIES.items():
        for name, key in series:
            value = _value(kpis.get(key))
            if value is not None:
                rows.append({"panel": panel, "site": label, "series": name, "value": value})
    return rows


def _value(kpi: Any) -> float | None:
    """A KPI's number: a quantity's value, or the share itself (None when it has none)."""
    if isinstance(kpi, dict):
        value = kpi.get("value")
        return None if value is None else float(value)
    return None if kpi is None else float(kpi)


def _unit(total: dict[str, Any], panel: str) -> str:
    title = PANELS[panel][1]
    key = {"cost": "energy-cost", "savings": "savings", "emissions": "emissions"}.get(panel)
    return f"{title} ({total[key]['unit']})" if key else title


def _subtitle(total: dict[str, Any], sites: int) -> str:
    savings = total["savings"]
    if not sites:
        return "no finished schedules in this period"
    return (
        f"{sites} site(s); total energy cost {total['energy-cost']['value']} "
        f"{total['energy-cost']['unit']}, savings {savings['value']} {savings['unit']}"
    )


def _nothing() -> dict[str, Any]:
    """A panel that says there is nothing to draw (no site had a counted step)."""
    return {
        "data": {"values": [{"text": "no finished schedules in this period"}]},
        "mark": {"type": "text", "fontSize": 14, "align": "left"},
        "encoding": {"text": {"field": "text", "type": "nominal"}},
        "width": 400,
        "height": 40,
    }


def _panel(panel: str, labels: list[str], y_title: str) -> dict[str, Any]:
    series = [name for name, _ in _SERIES[panel]]
    colours = PALETTE[: len(series)] if panel != "savings" else (PALETTE[2],)
    return {
        "title": {"text": PANELS[panel][0], "anchor": "start", "fontSize": 13},
        "width": {"step": BAR_WIDTH * max(1, len(series))},
        "height": 180,
        "transform": [{"filter": {"field": "panel", "equal": panel}}],
        "mark": {"type": "bar"},
        "encoding": {
            "x": {
                "field": "site",
                "type": "nominal",
                "title": None,
                "sort": labels,
                "axis": {"labelAngle": 0, "labelLimit": 160},
            },
            "xOffset": {"field": "series", "sort": series},
            "y": {"field": "value", "type": "quantitative", "title": y_title},
            "color": {
                "field": "series",
                "type": "nominal",
                "title": None,
                "scale": {"domain": series, "range": list(colours)},
            },
            "tooltip": [
                {"field": "site", "type": "nominal"},
                {"field": "series", "type": "nominal"},
                {"field": "value", "type": "quantitative", "format": ".4~f"},
            ],
        },
    }
