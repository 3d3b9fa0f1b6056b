"""A PV system's power from real measured weather that pvlib ships: the public data set for
forecast backtests (docs/forecasting.md).

pvlib bundles TMY3 files of the US National Solar Radiation Data Base: a typical
meteorological year of hourly irradiance, temperature and wind at one station, each month
taken from a measured year. :func:`pv_power` runs a stated system through pvlib's PVWatts
chain on one of them:

- the station's location (latitude, longitude, altitude from the file's header), the file's
  fixed UTC offset as the timezone, every month put in one year (``year``);
- a fixed array tilted ``tilt`` degrees facing ``azimuth`` (180 = south), Perez-free
  defaults of pvlib (Hay-Davies transposition), physical IAM, no spectral loss;
- PVWatts DC: ``P_dc = kWp * POA_eff / 1000 W/m² * (1 + gamma (T_cell - 25 °C))`` with
  ``gamma = -0.4 %/K``, cell temperature by the SAPM model (open rack, glass/polymer),
  PVWatts' default system losses (14 %); PVWatts inverter of ``kWp`` AC at 96 % nominal
  efficiency.

TMY3 values are hour-ending (the row at 13:00 covers 12:00-13:00): the weather is modelled at
the middle of its hour and the result labelled by the hour's start, vpp's convention.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pvlib
from pvlib.iotools import read_tmy3
from pvlib.location import Location
from pvlib.modelchain import ModelChain
from pvlib.pvsystem import PVSystem
from pvlib.temperature import TEMPERATURE_MODEL_PARAMETERS

from vpp.errors import RequestValidationError

__all__ = ["TMY3_FILES", "pv_power", "tmy3"]

logger = logging.getLogger(__name__)

DATA = Path(pvlib.__file__).parent / "data"
# The TMY3 files pvlib ships: {file: station}
TMY3_FILES = {
    "723170TYA.CSV": "Greensboro Piedmont Triad Intl, NC (36.1 N, 79.95 W)",
    "703165TY.csv": "Sand Point, AK (55.3 N, 160.5 W)",
}
HALF_HOUR = pd.Timedelta(minutes=30)


@functools.lru_cache(maxsize=4)
def tmy3(file: str, year: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The hourly weather (pvlib's column names, hour-ending rows, months put in ``year``)
    and header of pvlib's TMY3 ``file``, read once per process (callers copy before they
    change it)."""
    if file not in TMY3_FILES:
        raise RequestValidationError.single(
            "file", f"{file!r} is not one of pvlib's TMY3 files: {', '.join(TMY3_FILES)}"
        )
    weather, meta = read_tmy3(str(DATA / file), coerce_year=year, map_variables=True)
    return weather, meta


def pv_power(
    file: str = "723170TYA.CSV",
    *,
    kwp: float = 5.0,
    tilt: float = 30.0,
    azimuth: float = 180.0,
    year: int = 2021,
) -> pd.Series:
    """Hourly AC power (kW, >= 0) of a ``kwp`` PV system under the weather of the TMY3
    ``file`` from pvlib's data folder, labelled by the start of each hour (8,760 values)."""
    if not kwp > 0:
        raise RequestValidationError.single("kwp", f"must be positive, not {kwp}")
    weather, meta = tmy3(file, year)
    offset = int(meta["TZ"])
    location = Location(
        meta["latitude"], meta["longitude"], tz=f"Etc/GMT{-offset:+d}", altitude=meta["altitude"]
    )
    system = PVSystem(
        surface_tilt=tilt,
        surface_azimuth=azimuth,
        module_parameters={"pdc0": kwp * 1000.0, "gamma_pdc": -0.004},
        inverter_parameters={"pdc0": kwp * 1000.0 / 0.96},
        temperature_model_parameters=TEMPERATURE_MODEL_PARAMETERS["sapm"][
            "open_rack_glass_polymer"
        ],
    )
    chain = ModelChain(
        system, location, aoi_model="physical", spectral_model="no_loss", losses_model="pvwatts"
    )
    inputs = weather[["ghi", "dni", "dhi", "temp_air", "wind_speed"]].copy()
    inputs.index = pd.DatetimeIndex(inputs.index) - HALF_HOUR  # mid-hour
    chain.run_model(inputs)
    power = pd.Series(chain.results.ac, dtype=float).clip(lower=0.0) / 1000.0
    power.index = (pd.DatetimeIndex(power.index) - HALF_HOUR).as_unit("ns")
    power.name = "pv_kw"
    logger.debug("%s: %.0f kWh a year from %g kWp", file, power.sum(), kwp)
    return power
