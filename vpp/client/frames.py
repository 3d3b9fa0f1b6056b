"""Time helpers and pandas conversions: series up (:func:`series_payload`) and results down
(:func:`power_frame`, :func:`soc_frame`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from vpp.timeseries import iso_duration as _core_iso_duration

__all__ = [
    "POWER_UNITS",
    "aware",
    "is_portfolio",
    "iso",
    "iso_duration",
    "kpi_frame",
    "period_frame",
    "power_frame",
    "report_frame",
    "result_of",
    "series_payload",
    "soc_frame",
    "steps",
    "timestamp",
    "values_in",
]


def iso_duration(delta: timedelta | pd.Timedelta) -> str:
    """``PT15M``, ``PT24H``, ``PT1H30M`` (hours, not days): :func:`vpp.timeseries.iso_duration`,
    the server's own, for a positive whole number of seconds (the API takes no other)."""
    step = pd.Timedelta(delta)
    if step <= pd.Timedelta(0):
        raise ValueError(f"a duration must be positive, not {delta}")
    if step % pd.Timedelta(seconds=1) != pd.Timedelta(0):
        raise ValueError(f"a duration must be a whole number of seconds, not {delta}")
    return _core_iso_duration(step.to_pytimedelta())


def iso(value: str | timedelta | pd.Timedelta) -> str:
    """A duration as the API writes it (a string is taken as it is)."""
    return value if isinstance(value, str) else iso_duration(value)


def aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, not {value.isoformat()}")
    return value


def timestamp(value: datetime | str, what: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(
            f"{what} must be timezone-aware (e.g. '2026-03-02T00:00:00+01:00'), not {value!r}"
        )
    return stamp


def steps(start: str, resolution: str, periods: int, tz: Any = None) -> pd.DatetimeIndex:
    """``periods`` instants from ``start`` every ``resolution`` (tz-aware)."""
    index = pd.date_range(
        pd.Timestamp(start), periods=periods, freq=pd.Timedelta(resolution), name="datetime"
    )
    return index.tz_convert(tz) if tz is not None else index


def series_payload(series: pd.Series, resolution: str | timedelta | None = None) -> dict[str, Any]:
    """The JSON body ``{"start", "values", "resolution"}`` for ``series``, checked first:
    a tz-aware, strictly increasing ``DatetimeIndex`` at one regular step, finite values."""
    if not isinstance(series, pd.Series):
        raise ValueError(f"expected a pandas Series, got {type(series).__name__}")
    index = series.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"the series' index must be a DatetimeIndex, not {type(index).__name__}")
    if index.tz is None:
        raise ValueError(
            "the series' index must be timezone-aware: use series.tz_localize('Europe/Amsterdam')"
            " (or the zone the data is in)"
        )
    if len(index) == 0:
        raise ValueError("the series is empty")
    given = pd.Timedelta(resolution) if resolution is not None else None
    step: pd.Timedelta | None
    if len(index) > 1:
        steps = index[1:] - index[:-1]
        step = steps[0]
        bad = np.flatnonzero(steps != step)
        if step <= pd.Timedelta(0):
            raise ValueError(
                f"the index must increase: {index[1].isoformat()} follows {index[0].isoformat()}"
            )
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"the index must be regular: {index[i + 1].isoformat()} follows "
                f"{index[i].isoformat()} after {steps[i]}, but the first step is {step}"
            )
        if given is not None and given != step:
            raise ValueError(f"resolution {resolution} differs from the index's step {step}")
    else:
        freq = index.freq
        step = given
        if step is None and freq is not None:
            try:
                step = pd.Timedelta(freq.nanos, unit="ns")
            except ValueError:  # a calendar offset (months...): no fixed length
                raise ValueError(
                    f"the index' freq {freq.freqstr} has no fixed length; pass resolution="
                ) from None
    try:
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as err:
        raise ValueError(f"the values must be numbers: {err}") from None
    missing = np.flatnonzero(~np.isfinite(values))
    if missing.size:
        at = index[int(missing[0])].isoformat()
        raise ValueError(
            f"{missing.size} value(s) are missing or infinite, the first at {at}; the API stores"
            " regular runs of numbers: fill them, or upload each run separately"
        )
    body: dict[str, Any] = {"start": index[0].isoformat(), "values": values.tolist()}
    if step is not None:
        body["resolution"] = iso_duration(step)
    return body


POWER_UNITS = {"W": 1e-3, "kW": 1.0, "MW": 1e3}
ENERGY_UNITS = {"Wh": 1e-3, "kWh": 1.0, "MWh": 1e3}


def values_in(series: Mapping[str, Any], units: Mapping[str, float], want: str) -> list[float]:
    unit = series.get("unit", want)
    if unit not in units:
        raise ValueError(f"cannot convert {unit!r} to {want}")
    f = units[unit]
    return [math.nan if v is None else float(v) * f for v in series["values"]]


def result_of(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """A result, also when given the job body that holds it."""
    if "job" in result and "status" in result and "start" not in result:
        if result["status"] != "finished" or "result" not in result:
            raise ValueError(f"job {result['job']} is {result['status']}: it has no result")
        inner: Mapping[str, Any] = result["result"]
        return inner
    return result


def is_portfolio(result: Mapping[str, Any]) -> bool:
    return "portfolio" in result and "sites" in result


def _frame(result: Mapping[str, Any], columns: dict[Any, list[float]], extra: int) -> pd.DataFrame:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"the result's series differ in length: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    index = steps(result["start"], result["resolution"], n)
    if extra == 0 and n and "duration" in result:
        expected = pd.Timedelta(result["duration"]) / pd.Timedelta(result["resolution"])
        if round(expected) != n:
            raise ValueError(f"the result has {n} steps, its duration says {expected:g}")
    return pd.DataFrame(columns, index=index)


def power_frame(result: Mapping[str, Any], tz: Any = None) -> pd.DataFrame:
    """Power (kW, consumption positive) per step, indexed by each step's start.

    A site result has one column per device and ``"site"``; a portfolio result one column
    per site (its net power) and ``"portfolio"``. ``tz`` converts the index (it is in the
    result's offset otherwise). Takes a result or a finished job's body.
    """
    result = result_of(result)
    columns: dict[Any, list[float]] = {}
    if is_portfolio(result):
        for site in result["sites"]:
            columns[site["id"]] = values_in(site["site"]["power"], POWER_UNITS, "kW")
        columns["portfolio"] = values_in(result["portfolio"]["power"], POWER_UNITS, "kW")
    else:
        for device in result.get("devices", []):
            columns[device["name"]] = values_in(device["power"], POWER_UNITS, "kW")
        columns["site"] = values_in(result["site"]["power"], POWER_UNITS, "kW")
    frame = _frame(result, columns, 0)
    return frame.tz_convert(tz) if tz is not None else frame


def soc_frame(result: Mapping[str, Any], tz: Any = None) -> pd.DataFrame:
    """State of charge (kWh) at every instant (``steps + 1`` rows, the first the
    ``soc-at-start``), one column per device that has one; for a portfolio the columns are
    ``(site, device)`` pairs."""
    result = result_of(result)
    columns: dict[Any, list[float]] = {}
    sites = result["sites"] if is_portfolio(result) else [{"id": None, **result}]
    for site in sites:
        for device in site.get("devices", []):
            if "soc" in device:
                key = device["name"] if site["id"] is None else (site["id"], device["name"])
                columns[key] = values_in(device["soc"], ENERGY_UNITS, "kWh")
    frame = _frame(result, columns, 1)
    if is_portfolio(result) and columns:
        frame.columns = pd.MultiIndex.from_tuples(list(columns), names=["site", "device"])
    return frame.tz_convert(tz) if tz is not None else frame


def kpi_frame(rows: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """KPIs as a table: one row per entry of ``rows`` (a name: its KPIs as a report gives
    them), one column per KPI holding its number (a quantity's ``value``; a share as is;
    the ``penalties`` summed into ``penalties``). ``attrs["units"]``: each column's unit."""
    units: dict[str, str] = {}
    table: dict[str, dict[str, float]] = {}
    for name, kpis in rows.items():
        table[name] = {}
        for key, kpi in kpis.items():
            if key == "penalties":
                table[name][key] = float(sum(kpi.values()))
                units.setdefault(key, "EUR")
            elif isinstance(kpi, Mapping):
                table[name][key] = math.nan if kpi["value"] is None else float(kpi["value"])
                units.setdefault(key, str(kpi["unit"]))
            else:
                table[name][key] = math.nan if kpi is None else float(kpi)
                units.setdefault(key, "" if key == "co2-steps" else "share")
    frame = pd.DataFrame.from_dict(table, orient="index", dtype=float)
    frame.index.name = "site"
    frame.attrs["units"] = units
    return frame


def period_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """A period report (``GET /api/v1/reports``) as a table: one row per site (by its
    ``label``: its name, with its key where two share one) and ``"total"``; KPI columns
    (:func:`kpi_frame`), ``hours`` and ``jobs`` (how many jobs count)."""
    rows = {s["label"]: s["kpis"] for s in report["sites"]}
    frame = kpi_frame({**rows, "total": report["total"]})
    frame["hours"] = [
        *(float(s["hours"]) for s in report["sites"]),
        float(sum(s["hours"] for s in report["sites"])),
    ]
    frame["jobs"] = [
        *(len(s["jobs"]) for s in report["sites"]),
        len({j for s in report["sites"] for j in s["jobs"]}),
    ]
    frame.attrs["start"], frame.attrs["end"] = report["start"], report["end"]
    return frame


def report_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """A job's report (``GET /api/v1/scheduling-job/{id}/report``) as a table: the row
    ``"site"`` for a site job; each site and ``"portfolio"`` for a portfolio job."""
    if "site" in report:
        return kpi_frame({"site": report["site"]})
    return kpi_frame({**report["sites"], "portfolio": report["portfolio"]})
