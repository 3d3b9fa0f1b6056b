"""Quantities with units, parsed by pint into vpp's canonical units.

vpp computes in one set of units so no formula carries a conversion factor:

========  ==================  =========================================
kind      canonical unit      accepted examples
========  ==================  =========================================
power     kW                  "5 kW", "5000 W", "0.005 MW"
energy    kWh                 "10 kWh", "0.01 MWh"
price     EUR/kWh             "50 EUR/MWh", "0.05 EUR/kWh"; or any per-energy
                              quantity: "300 kg/MWh" (kg/kWh), "300 g/kWh" (CO2 steering)
demand    EUR/kW              "5 EUR/kW" (a peak's price, vpp/peaks.py)
intensity kg/kWh              "300 kg/MWh", "300 g/kWh" (vpp/co2.py)
co2-price EUR/kg              "80 EUR/t", "0.08 EUR/kg"
fraction  1 (dimensionless)   "95%", "0.95", 0.95
========  ==================  =========================================
"""

from __future__ import annotations

import math
import tokenize
from functools import lru_cache
from typing import Any, Literal

import pint

__all__ = [
    "CANONICAL",
    "DISPLAY",
    "UNREADABLE",
    "Kind",
    "factor",
    "is_finite",
    "parse_quantity",
    "price_numerator",
    "registry",
]


Kind = Literal["power", "energy", "price", "fraction", "demand", "intensity", "co2-price"]

CANONICAL: dict[Kind, str] = {
    "power": "kW",
    "energy": "kWh",
    "price": "EUR/kWh",
    "fraction": "dimensionless",
    "demand": "EUR/kW",
    "intensity": "kg/kWh",
    "co2-price": "EUR/kg",
}
"""The unit vpp computes in, per kind of quantity."""

DISPLAY: dict[Kind, str] = {
    "power": "kW",
    "energy": "kWh",
    "price": "EUR/MWh",
    "fraction": "",
    "demand": "EUR/kW",
    "intensity": "kg/MWh",
    "co2-price": "EUR/t",
}

# what a "price" may count per kWh, as in FlexMeasures (any per-energy quantity): money, or
# mass for steering on CO2 intensity; the canonical unit of each is "<numerator>/kWh"
_NUMERATORS = {"[currency]": "EUR", "[mass]": "kg"}


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry[Any]:
    """The process-wide unit registry (built on first use: it takes ~0.1 s)."""
    ureg: pint.UnitRegistry[Any] = pint.UnitRegistry()
    ureg.define("EUR = [currency] = euro")
    return ureg


_UNREADABLE: tuple[type[Exception], ...] = (
    pint.PintError,
    AttributeError,
    SyntaxError,
    TypeError,
    ValueError,
    # pint's expression parser asserts on a dangling operator ("*", "kW*", "5 kW**", ">")
    # and divides by a literal zero ("1/0"): both are unreadable input, not bugs of ours
    AssertionError,
    # an unbalanced bracket ("{", "kW(") ends pint's tokenizer early
    tokenize.TokenError,
    ZeroDivisionError,
    OverflowError,  # an integer too large for a float ("1e400" is inf; 10**400 raises)
)
UNREADABLE = _UNREADABLE
"""What pint raises on text that is no quantity (for other parsers of unit strings)."""


@lru_cache(maxsize=4096)
def factor(unit: str, kind: Kind) -> float:
    """Multiplier that turns a number in ``unit`` into the canonical unit of ``kind``.

    Raises ``ValueError`` with a readable message for unknown or mismatched units.
    """
    ureg = registry()
    text = unit.strip().replace("%", " percent") or "dimensionless"
    try:
        one = ureg.Quantity(1.0, text)
        return float(one.to(_canonical(one, kind)).magnitude)
    except pint.UndefinedUnitError:
        raise ValueError(f"unknown unit {unit!r}") from None
    except pint.DimensionalityError:
        raise ValueError(f"unit {unit!r} is not {_a(kind)} unit (e.g. {_example(kind)})") from None
    except _UNREADABLE:
        raise ValueError(f"cannot read unit {unit!r}") from None


@lru_cache(maxsize=4096)
def _parse_text(text: str, kind: Kind) -> float:
    ureg = registry()
    cleaned = text.strip().replace("%", " percent")
    if not cleaned:
        raise ValueError(f"empty {kind} quantity")
    try:
        quantity: Any = ureg.Quantity(cleaned)
    except pint.UndefinedUnitError:
        raise ValueError(f"unknown unit in {text!r}") from None
    except _UNREADABLE:
        raise ValueError(f"cannot read {text!r} as a {kind} (e.g. {_example(kind)})") from None
    if not isinstance(quantity, pint.Quantity) or not isinstance(quantity.magnitude, int | float):
        raise ValueError(f"cannot read {text!r} as a {kind} (e.g. {_example(kind)})")
    if not is_finite(quantity.magnitude):  # "NaN kW", "1e309 kW": no solver takes them
        raise ValueError(f"{text!r} is not a finite {kind}")
    if kind != "fraction" and quantity.dimensionless and not str(quantity.units):
        raise ValueError(f"{text!r} has no unit; write e.g. {_example(kind)}")
    try:
        value = float(quantity.to(_canonical(quantity, kind)).magnitude)
    except pint.DimensionalityError:
        raise ValueError(f"{text!r} is not {_a(kind)} (e.g. {_example(kind)})") from None
    if not math.isfinite(value):  # finite until converted ("1e308 MW")
        raise ValueError(f"{text!r} is not a finite {kind}")
    return value


def is_finite(number: float) -> bool:
    """Whether ``number`` is a finite float; an integer too large for a float is not (where
    ``math.isfinite`` raises ``OverflowError``)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def parse_quantity(value: object, kind: Kind) -> float:
    """Parse ``"5 kW"``-style text (or a bare number, for fractions only) to canonical units."""
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind}, got a boolean")
    if isinstance(value, int | float):
        if kind != "fraction":
            raise ValueError(f"{value!r} has no unit; write e.g. {_example(kind)}")
        if not is_finite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return float(value)
    if isinstance(value, str):
        return _parse_text(value, kind)
    raise ValueError(f"expected a {kind} as text such as {_example(kind)}")


def _canonical(quantity: Any, kind: Kind) -> str:
    """The unit to convert ``quantity`` to: a price's is ``<numerator>/kWh`` (EUR or kg)."""
    if kind != "price":
        return CANONICAL[kind]
    return f"{_numerator_of(quantity) or 'EUR'}/kWh"


def _numerator_of(quantity: Any) -> str | None:
    """``"EUR"`` or ``"kg"`` for a per-energy quantity of money or mass; None otherwise."""
    per_kwh = quantity * registry().Quantity(1.0, "kWh")
    for dimension, unit in _NUMERATORS.items():
        if per_kwh.dimensionality == registry().get_dimensionality(dimension):
            return unit
    return None


@lru_cache(maxsize=4096)
def price_numerator(text: str) -> str:
    """What a price unit or quantity (``"kg/MWh"``, ``"50 EUR/MWh"``) counts per energy:
    ``"EUR"`` or ``"kg"``. Raises ``ValueError`` for anything that is not a price."""
    try:
        quantity: Any = registry().Quantity(text.strip())
        numerator = _numerator_of(quantity)
    except _UNREADABLE:
        raise ValueError(f"cannot read {text!r} as a price") from None
    if numerator is None:
        raise ValueError(f"{text!r} is not a price (e.g. {_example('price')})")
    return numerator


def _a(kind: Kind) -> str:
    return f"an {kind}" if kind == "energy" else f"a {kind}"


def _example(kind: Kind) -> str:
    return {
        "power": "'5 kW'",
        "energy": "'10 kWh'",
        "price": "'50 EUR/MWh'",
        "fraction": "'95%' or 0.95",
        "demand": "'5 EUR/kW'",
        "intensity": "'300 kg/MWh'",
        "co2-price": "'80 EUR/t'",
    }[kind]
