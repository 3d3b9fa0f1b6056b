"""A home to simulate on, built from real weather that an installed package ships.

:func:`greensboro_home` returns 15-minute series of one home for any days of a year:

* ``pv``: the AC power (kW) of a 5 kWp south-facing PV system at 30 degrees tilt under the
  typical-meteorological-year weather of Greensboro, North Carolina (NSRDB TMY3 station
  723170) that pvlib ships (``pvlib/data/723170TYA.CSV``), by :func:`vpp.solar.pv_power`
  (pvlib's PVWatts chain); hourly values interpolated to 15 minutes;
* ``load``: the house (kW), a stated model, not data: 0.25 kW base, a morning and an
  evening peak (0.6 and 1.0 kW, Gaussian in the hour of day), and electric heating of
  0.08 kW per kelvin that the TMY's air temperature lies below 15 degC;
* ``consumption-price`` and ``production-price`` (EUR/MWh): a time-of-use tariff known in
  advance: 300 from 17:00 to 21:00, 150 from 23:00 to 07:00, 220 otherwise; feed-in 70.

The weather is real (a typical year stitched from measured months); the house and the
tariff are models. Forecasts of ``pv`` and ``load`` are the simulator's business
(:mod:`vpp.mpc`), never read from the future here.
"""

from __future__ import annotations

import functools
import warnings
from datetime import date, timedelta

import numpy as np
import pandas as pd

from vpp.errors import RequestValidationError

__all__ = ["PV_PEAK_KW", "TMY_FILE", "greensboro_home"]

PV_PEAK_KW = 5.0
TMY_FILE = "723170TYA.CSV"
_YEAR = 2026  # the TMY's months are re-labelled to this (non-leap) year


@functools.lru_cache(maxsize=1)
def _hourly() -> pd.DataFrame:
    """PV AC power (:func:`vpp.solar.pv_power`) and air temperature per hour of the typical
    year, labelled by the hour's start, local standard time."""
    from vpp.solar import pv_power, tmy3

    # pvlib 0.16 still calls pandas API that pandas 3.1 deprecates (DatetimeIndex.dayofyear);
    # the values are right, the warnings are pvlib's to fix
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        pv = pv_power(TMY_FILE, kwp=PV_PEAK_KW, year=_YEAR)
        weather, _ = tmy3(TMY_FILE, _YEAR)
    # both hour-ending rows of the same file, in order: the n-th hour of each is the same hour
    temperature = weather.sort_index()["temp_air"].to_numpy()
    return pd.DataFrame({"pv": pv.to_numpy(), "temp_air": temperature}, index=pv.index)


def _house(index: pd.DatetimeIndex, temp_air: np.ndarray) -> np.ndarray:
    hour = index.hour + index.minute / 60.0
    peaks = 0.6 * np.exp(-(((hour - 7.5) / 1.2) ** 2)) + 1.0 * np.exp(-(((hour - 19.0) / 1.8) ** 2))
    heating = 0.08 * np.maximum(15.0 - temp_air, 0.0)
    return np.asarray(0.25 + peaks + heating, float)


def _tariff(index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    hour = np.asarray(index.hour)
    price = np.where(
        (hour >= 17) & (hour < 21), 300.0, np.where((hour >= 23) | (hour < 7), 150.0, 220.0)
    )
    return price, np.full(len(index), 70.0)


def greensboro_home(first_day: date, days: int) -> pd.DataFrame:
    """Columns ``pv``, ``load`` (kW) and ``consumption-price``, ``production-price``
    (EUR/MWh) per 15 minutes from ``first_day`` for ``days`` days (local standard time,
    UTC-5, as the TMY file; the year wraps, so any 365 consecutive days are available)."""
    if days < 1 or days > 365:
        raise RequestValidationError.single("days", "must be 1 to 365")
    hourly = _hourly()
    hourly_index: pd.DatetimeIndex = hourly.index  # type: ignore[assignment]
    start = pd.Timestamp(first_day.replace(year=_YEAR), tz=hourly_index.tz)
    index = pd.date_range(start, periods=days * 96, freq="15min", name="start")
    # hours since the typical year's start, wrapped onto its 8,760 hours
    hours = np.asarray((index - hourly_index[0]) / timedelta(hours=1), float) % len(hourly)
    position = np.arange(len(hourly) + 1, dtype=float)
    frame = pd.DataFrame(index=index)
    for column in ("pv", "temp_air"):
        values = hourly[column].to_numpy()
        frame[column] = np.interp(hours, position, np.append(values, values[0]))
    frame["load"] = _house(index, frame["temp_air"].to_numpy())
    frame["consumption-price"], frame["production-price"] = _tariff(index)
    return frame.drop(columns="temp_air")
