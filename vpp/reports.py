"""KPIs over a period, from the stored schedules of many jobs (``GET /api/v1/reports``).

A period ``[start, end)`` is reported on from site schedules (one per single-site job, one
per site of a portfolio job), each with the request it answered. Per site:

* **Which steps count.** A step counts when it starts in ``[start, end)``. When schedules
  of the same site overlap (a site re-planned every quarter-hour, a day re-run with new
  prices), the **newest job wins**: a step of a schedule counts only if no newer job's
  schedule of that site (by creation time, ties by job id) covers any of it. A newer
  schedule claims its whole horizon, also outside the period, so what counts is always
  what the site was last told to do at that time.
* **What is summed.** Each counted step's KPIs (:func:`vpp.kpi.step_kpis`: energy cost, the
  price-blind baseline's cost, import, export, production, consumption, CO2 when the
  request had ``co2-intensity``) are summed; ``savings = baseline-cost - energy-cost``;
  self-consumption and self-sufficiency are the shares of the sums; peaks are the largest
  counted step's. A schedule's ``penalties`` (breach penalties, peak charges) belong to its
  whole horizon, so they are counted pro rata: times the share of its steps that count.
* **CO2.** ``emissions``, ``baseline-emissions`` and ``emissions-savings`` (kg) sum the
  counted steps of schedules that had a ``co2-intensity``; absent when none had.
  ``co2-steps`` says how many counted steps that is.

The total sums the sites; its peaks are the largest site's (the sites' steps need not
align, so no coincident peak is claimed). Costs are in the prices' unit (EUR; kg when a
request steered on a CO2 intensity as its price): a sum over different units has value
``null`` and unit ``"mixed"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from vpp.errors import RequestValidationError
from vpp.kpi import StepKpis, step_kpis
from vpp.request import ScheduleRequest

__all__ = [
    "MAX_PERIOD",
    "ScheduleSource",
    "check_period",
    "period_report",
    "source_kpis",
]

logger = logging.getLogger(__name__)

MAX_PERIOD = timedelta(days=366)
"""The longest period one report covers (each schedule in it is re-solved for its baseline)."""

_SUMMED = ("energy-cost", "baseline-cost", "import", "export", "production", "consumption")
_CO2 = ("emissions", "baseline-emissions")
_TIME = TypeAdapter(datetime)
_DURATION = TypeAdapter(timedelta)


@dataclass(frozen=True)
class ScheduleSource:
    """One site's schedule of one finished job: ``site`` identifies the site across jobs
    (a stored site, or the job's own inline site), ``request`` and ``result`` are the
    site's request and result JSON."""

    site: str
    name: str
    site_id: int | None
    job: str
    created: datetime
    request: ScheduleRequest | dict[str, Any]
    result: dict[str, Any]


KpisOf = Callable[[ScheduleSource], StepKpis]
"""How a source's per-step KPIs are had: :func:`source_kpis`, or a cache of it."""


def source_kpis(source: ScheduleSource) -> StepKpis:
    """:func:`vpp.kpi.step_kpis` of the source's schedule (its baseline re-solved)."""
    return step_kpis(source.request, source.result)


def check_period(start: datetime, end: datetime) -> None:
    """``end`` after ``start`` by at most :data:`MAX_PERIOD` (422 naming ``end``)."""
    if end <= start:
        raise RequestValidationError.single("end", "must be later than start")
    if end - start > MAX_PERIOD:
        raise RequestValidationError.single(
            "end", f"a report covers at most {MAX_PERIOD.days} days; ask for a shorter period"
        )


def period_report(
    sources: Iterable[ScheduleSource],
    start: datetime,
    end: datetime,
    kpis_of: KpisOf = source_kpis,
) -> dict[str, Any]:
    """The KPIs over ``[start, end)`` (module docstring) per site and summed."""
    check_period(start, end)
    by_site: dict[str, list[ScheduleSource]] = {}
    for source in sources:
        by_site.setdefault(source.site, []).append(source)
    sites = [_site_report(group, start, end, kpis_of) for _, group in sorted(by_site.items())]
    sites = [s for s in sites if s["jobs"]]
    names = [s["name"] for s in sites]
    for s in sites:  # a label to show: the name, with the key where two share a name
        s["label"] = s["name"] if names.count(s["name"]) == 1 else f"{s['name']} ({s['key']})"
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "sites": sites,
        "total": _total([s["kpis"] for s in sites]),
    }


@dataclass
class _Sums:
    """A site's counted steps, summed."""

    values: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=lambda: {"import": 0.0, "export": 0.0})
    penalties: dict[str, float] = field(default_factory=dict)
    co2_steps: int = 0
    hours: float = 0.0

    def add(self, key: str, value: float, unit: str) -> None:
        self.values.setdefault(key, []).append((value, unit))


def _site_report(
    group: Sequence[ScheduleSource],
    start: datetime,
    end: datetime,
    kpis_of: KpisOf,
) -> dict[str, Any]:
    claimed: list[tuple[float, float]] = []
    sums, jobs = _Sums(), []
    for source in sorted(group, key=lambda s: (-s.created.timestamp(), s.job)):
        first, step, n = _window(source.result)
        a = first.timestamp() + step.total_seconds() * np.arange(n)
        b = a + step.total_seconds()
        counted = (a >= start.timestamp()) & (a < end.timestamp())
        for lo, hi in claimed:
            counted &= ~((a < hi) & (b > lo))
        claimed.append((float(a[0]), float(b[-1])) if n else (0.0, 0.0))
        if counted.any():
            _count(sums, kpis_of(source), counted)
            jobs.append(source.job)
    first_source = group[0]
    return {
        "site": first_source.site_id,
        "key": first_source.site,
        "name": first_source.name,
        "jobs": jobs,
        "hours": round(sums.hours, 9),
        "kpis": _kpis(sums),
    }


def _window(result: dict[str, Any]) -> tuple[datetime, timedelta, int]:
    """A site result's first step, step length and number of steps."""
    first = _TIME.validate_python(result["start"])
    step = _DURATION.validate_python(result["resolution"])
    return first, step, len(result["site"]["power"]["values"])


def _count(sums: _Sums, kpis: StepKpis, counted: np.ndarray) -> None:
    """Add ``kpis``' counted steps to ``sums``."""
    unit = kpis.cost_unit
    sums.add("energy-cost", float(kpis.energy_cost[counted].sum()), unit)
    sums.add("baseline-cost", float(kpis.baseline_cost[counted].sum()), unit)
    energies = {"import": kpis.imports, "export": kpis.exports}
    energies |= {"production": kpis.production, "consumption": kpis.consumption}
    for key, values in energies.items():
        sums.add(key, float(values[counted].sum()), "kWh")
    sums.peaks["import"] = max(sums.peaks["import"], float(kpis.import_power[counted].max()))
    sums.peaks["export"] = max(sums.peaks["export"], float(kpis.export_power[counted].max()))
    share = float(counted.sum()) / kpis.steps
    for name, value in kpis.penalties.items():
        if isinstance(value, int | float):
            sums.penalties[name] = sums.penalties.get(name, 0.0) + share * float(value)
    if kpis.emissions is not None and kpis.baseline_emissions is not None:
        sums.add("emissions", float(kpis.emissions[counted].sum()), "kg")
        sums.add("baseline-emissions", float(kpis.baseline_emissions[counted].sum()), "kg")
        sums.co2_steps += int(counted.sum())
    sums.hours += float(counted.sum()) * kpis.resolution.total_seconds() / 3600.0


def _quantity(parts: Sequence[tuple[float | None, str]]) -> dict[str, Any]:
    """The sum of ``(value, unit)`` parts; ``null`` and ``"mixed"`` over different units."""
    units = {unit for _, unit in parts}
    if len(units) > 1 or any(value is None for value, _ in parts):
        return {"value": None, "unit": "mixed" if len(units) > 1 else units.pop()}
    total = sum(float(value) for value, _ in parts if value is not None)
    return {"value": round(total, 9), "unit": units.pop() if units else "EUR"}


def _kpis(sums: _Sums) -> dict[str, Any]:
    out: dict[str, Any] = {key: _quantity(sums.values.get(key, [])) for key in _SUMMED}
    for key in ("import", "export", "production", "consumption"):
        out[key]["unit"] = "kWh"
    out["peak-import"] = {"value": round(sums.peaks["import"], 9), "unit": "kW"}
    out["peak-export"] = {"value": round(sums.peaks["export"], 9), "unit": "kW"}
    out["penalties"] = {k: round(v, 9) for k, v in sums.penalties.items()}
    if sums.co2_steps:
        for key in _CO2:
            out[key] = _quantity(sums.values[key])
        out["co2-steps"] = sums.co2_steps
    return _derived(out)


def _derived(out: dict[str, Any]) -> dict[str, Any]:
    """Savings and shares from the sums in ``out``."""
    out["savings"] = _difference(out["baseline-cost"], out["energy-cost"])
    if "emissions" in out:
        out["emissions-savings"] = _difference(out["baseline-emissions"], out["emissions"])
    production, consumption = out["production"]["value"], out["consumption"]["value"]
    exported, imported = out["export"]["value"], out["import"]["value"]
    out["self-consumption"] = _share(production - exported, production)
    out["self-sufficiency"] = _share(consumption - imported, consumption)
    return out


def _difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if a["value"] is None or b["value"] is None or a["unit"] != b["unit"]:
        return {"value": None, "unit": "mixed" if a["unit"] != b["unit"] else a["unit"]}
    return {"value": round(a["value"] - b["value"], 9), "unit": a["unit"]}


def _share(part: float, whole: float) -> float | None:
    if whole <= 1e-12:
        return None
    return round(min(1.0, max(0.0, part / whole)), 9)


def _total(sites: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The sites' KPIs summed; peaks the largest site's; shares of the sums."""
    out: dict[str, Any] = {
        key: _quantity([(s[key]["value"], s[key]["unit"]) for s in sites]) for key in _SUMMED
    }
    for key in ("import", "export", "production", "consumption"):
        out[key]["unit"] = "kWh"
    for key in ("peak-import", "peak-export"):
        out[key] = {"value": max([0.0, *(s[key]["value"] for s in sites)]), "unit": "kW"}
    penalties: dict[str, float] = {}
    for s in sites:
        for name, value in s["penalties"].items():
            penalties[name] = round(penalties.get(name, 0.0) + value, 9)
    out["penalties"] = penalties
    with_co2 = [s for s in sites if "emissions" in s]
    if with_co2:
        for key in _CO2:
            out[key] = _quantity([(s[key]["value"], s[key]["unit"]) for s in with_co2])
        out["co2-steps"] = sum(int(s["co2-steps"]) for s in with_co2)
    return _derived(out)
