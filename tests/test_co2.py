"""Steering on CO2 (vpp/co2.py): prices in kg/MWh or g/kWh, and ``co2-intensity`` with
``co2-price`` on top of energy prices.

Judged against a small LP built here with highspy (a battery, an inflexible load,
import/export, and a grid-import column ``g >= P, g >= 0`` carrying the CO2 cost) and against
hand-derived numbers, never against vpp's own output. Each optional field is tried present and
absent.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import highspy
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.errors import RequestValidationError
from vpp.portfolio import build_sites, validate_portfolio
from vpp.site import schedule

START = "2026-03-02T00:00:00+01:00"
END = "2026-03-02T04:00:00+01:00"
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "flex-model.md"
INF = highspy.kHighsInf


def request(
    load: list[float],
    cp: list[float],
    pp: list[float] | None = None,
    unit: str = "EUR/MWh",
    target: float = 8.0,
    **co2: Any,
) -> dict[str, Any]:
    """A 4-hour site: a 10 kWh battery (0 -> ``target`` kWh, 5 kW) and an inflexible load."""
    context: dict[str, Any] = {
        "consumption-price": {"values": cp, "unit": unit},
        "inflexible-devices": {"load": {"values": load, "unit": "kW"}},
    }
    if pp is not None:
        context["production-price"] = {"values": pp, "unit": unit}
    context |= {k.replace("_", "-"): v for k, v in co2.items() if v is not None}
    return {
        "start": START,
        "duration": "PT4H",
        "resolution": "PT1H",
        "flex-model": [
            {
                "name": "battery",
                "type": "storage",
                "soc-at-start": "0 kWh",
                "soc-max": "10 kWh",
                "power-capacity": "5 kW",
                "soc-targets": [{"datetime": END, "value": f"{target} kWh"}],
            }
        ],
        "flex-context": context,
    }


def reference(
    load: list[float],
    cp: list[float],
    pp: list[float],
    target: float,
    co2_cost: list[float] | None = None,
) -> float:
    """The minimum objective from a model built here with highspy; prices per MWh, dt 1 h.

    Per hour t: charge c, discharge d in [0, 5]; import i, export e >= 0; rows
    i - e - c + d = load, 0 <= sum c - d <= 10 (= target at the end). With ``co2_cost``
    (per kWh imported from the grid), a column g >= 0 with g - c + d >= load (g >= P).
    Objective: (cp*i - pp*e)/1000 + co2_cost*g.
    """
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    n = len(load)
    cost: list[float] = []

    def var(lo: float, hi: float, c: float) -> int:
        h.addVar(lo, hi)
        cost.append(c)
        return len(cost) - 1

    def row(lo: float, hi: float, cols: list[int], vals: list[float]) -> None:
        h.addRow(lo, hi, len(cols), np.array(cols, np.int32), np.array(vals, float))

    ch = [var(0, 5, 0) for _ in range(n)]
    dis = [var(0, 5, 0) for _ in range(n)]
    imp = [var(0, INF, cp[t] / 1000) for t in range(n)]
    exp = [var(0, INF, -pp[t] / 1000) for t in range(n)]
    for t in range(n):
        row(load[t], load[t], [imp[t], exp[t], ch[t], dis[t]], [1, -1, -1, 1])
        cols = ch[: t + 1] + dis[: t + 1]
        vals = [1.0] * (t + 1) + [-1.0] * (t + 1)
        row(target if t == n - 1 else 0.0, target if t == n - 1 else 10.0, cols, vals)
        if co2_cost is not None:
            g = var(0, INF, co2_cost[t])
            row(load[t], INF, [g, ch[t], dis[t]], [1, -1, 1])
    for i, c in enumerate(cost):
        h.changeColCost(i, c)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return float(h.getInfo().objective_function_value)


# -- prices that are not money ---------------------------------------------------------------


@pytest.mark.parametrize(("unit", "scale"), [("kg/MWh", 1.0), ("g/kWh", 1.0), ("kg/kWh", 1e3)])
def test_intensity_as_price_is_the_reference_optimum_in_kg(unit: str, scale: float) -> None:
    """kg/MWh and g/kWh are the same number; kg/kWh is 1000 times it. The reference reads the
    numbers as kg/MWh, so its objective is kg."""
    load, g = [1.0, -2.0, 1.0, 3.0], [400.0, 150.0, 200.0, 450.0]
    req = request(load, [v / scale for v in g], [0.0] * 4, unit)
    result = schedule(req)
    assert result["cost"]["unit"] == "kg"
    assert result["cost"]["value"] == pytest.approx(reference(load, g, [0.0] * 4, 8.0), abs=1e-9)
    assert "emissions" not in result


def test_hand_derived_intensity_price() -> None:
    """No load, 8 kWh into the battery at intensities 400, 150, 200, 450 g/kWh, 5 kW max: 5 kWh
    at 150 and 3 at 200 g/kWh: 0.75 + 0.6 = 1.35 kg."""
    result = schedule(request([0.0] * 4, [400, 150, 200, 450], [0, 0, 0, 0], "g/kWh"))
    assert result["cost"] == pytest.approx({"value": 1.35, "unit": "kg"})


def test_price_units_of_one_site_must_agree() -> None:
    req = request([0.0] * 4, [400, 150, 200, 450], [10, 10, 10, 10], "g/kWh")
    req["flex-context"]["production-price"]["unit"] = "EUR/MWh"
    with pytest.raises(RequestValidationError) as info:
        schedule(req)
    assert [i.field for i in info.value.issues] == ["flex-context.production-price"]
    assert "kg" in info.value.issues[0].message and "EUR" in info.value.issues[0].message


def test_a_device_price_must_agree_with_the_site() -> None:
    req = request([0.0] * 4, [10, 20, 30, 40])
    req["flex-model"][0]["consumption-price"] = "300 g/kWh"
    with pytest.raises(RequestValidationError) as info:
        schedule(req)
    assert [i.field for i in info.value.issues] == ["flex-model[0].consumption-price"]


def test_segments_must_not_mix_units() -> None:
    req = request([0.0] * 4, [10, 20, 30, 40])
    req["flex-context"]["consumption-price"] = [
        {"start": START, "duration": "PT2H", "value": "300 g/kWh"},
        {"start": "2026-03-02T02:00:00+01:00", "duration": "PT2H", "value": "30 EUR/MWh"},
    ]
    with pytest.raises(RequestValidationError) as info:
        schedule(req)
    assert [i.field for i in info.value.issues] == ["flex-context.consumption-price"]


@pytest.mark.parametrize("unit", ["kW", "m/MWh", "kWh"])
def test_other_units_are_still_not_prices(unit: str) -> None:
    req = request([0.0] * 4, [10, 20, 30, 40], unit=unit)
    with pytest.raises(RequestValidationError) as info:
        schedule(req)
    assert [i.field for i in info.value.issues] == ["flex-context.consumption-price"]
    assert "price" in info.value.issues[0].message


def test_a_portfolio_refuses_a_site_priced_in_kg() -> None:
    raw = json.loads((ROOT / "docs" / "examples" / "portfolio.json").read_text())
    override = {"consumption-price": "300 kg/MWh", "production-price": "300 kg/MWh"}
    raw["sites"][1].setdefault("flex-context", {}).update(override)
    with pytest.raises(RequestValidationError) as info:
        build_sites(validate_portfolio(raw))
    assert [i.field for i in info.value.issues] == ["sites[1].flex-context.consumption-price"]


def test_a_market_target_in_kg_is_refused() -> None:
    raw = json.loads((ROOT / "docs" / "examples" / "portfolio.json").read_text())
    raw["target"] = {"type": "market", "volume": "0 kW", "deviation-price": "300 kg/MWh"}
    with pytest.raises(RequestValidationError) as info:
        build_sites(validate_portfolio(raw))
    assert [i.field for i in info.value.issues] == ["target.deviation-price"]


# -- co2-intensity and co2-price --------------------------------------------------------------


def test_hand_derived_combined_objective() -> None:
    """8 kWh at 10, 20, 30, 40 EUR/MWh and 400, 150, 200, 450 g/kWh, at 1000 EUR/t (1 EUR/kg):
    per kWh 0.41, 0.17, 0.23, 0.49 EUR, so 5 kWh in hour 1 and 3 in hour 2: energy
    0.1 + 0.09 = 0.19 EUR, emissions 0.75 + 0.6 = 1.35 kg (1.35 EUR)."""
    result = schedule(
        request(
            [0.0] * 4,
            [10, 20, 30, 40],
            [0, 0, 0, 0],
            co2_intensity={"values": [400, 150, 200, 450], "unit": "g/kWh"},
            co2_price="1000 EUR/t",
        )
    )
    assert result["cost"] == pytest.approx(
        {"value": 1.54, "unit": "EUR", "energy": 0.19, "co2": 1.35}
    )
    assert result["emissions"] == {"value": pytest.approx(1.35), "unit": "kg"}


def test_intensity_alone_is_reported_not_priced() -> None:
    """Without co2-price the schedule is the energy optimum: 5 kWh at 10, 3 at 20 EUR/MWh,
    emitting 5 * 0.4 + 3 * 0.15 = 2.45 kg."""
    plain = schedule(request([0.0] * 4, [10, 20, 30, 40], [0, 0, 0, 0]))
    req = request(
        [0.0] * 4,
        [10, 20, 30, 40],
        [0, 0, 0, 0],
        co2_intensity={"values": [400, 150, 200, 450], "unit": "g/kWh"},
    )
    result = schedule(req)
    assert result["cost"] == plain["cost"] == pytest.approx({"value": 0.11, "unit": "EUR"})
    assert result["emissions"] == {"value": pytest.approx(2.45), "unit": "kg"}
    assert "emissions" not in plain and "co2" not in plain["cost"]


def test_exports_earn_no_avoided_emissions() -> None:
    """A site that only exports (load -3 kW, battery 0 -> 0) emits nothing, whatever the
    intensity: no credit for exported energy."""
    result = schedule(
        request(
            [-3.0] * 4,
            [10, 20, 30, 40],
            target=0.0,
            co2_intensity="300 kg/MWh",
            co2_price="100 EUR/t",
        )
    )
    assert result["emissions"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert result["cost"]["co2"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"co2-price": "100 EUR/t"}, "flex-context.co2-intensity", "required"),
        (
            {"co2-intensity": "300 g/kWh", "co2-price": "-1 EUR/t"},
            "flex-context.co2-price",
            "negative",
        ),
        ({"co2-intensity": "-300 g/kWh"}, "flex-context.co2-intensity", "negative"),
        ({"co2-intensity": "300 EUR/MWh"}, "flex-context.co2-intensity", "not"),
        (
            {"co2-intensity": "300 g/kWh", "co2-price": "100 EUR/MWh"},
            "flex-context.co2-price",
            "not",
        ),
        (
            {"co2-intensity": {"values": [1, 2], "unit": "g/kWh"}},
            "flex-context.co2-intensity",
            "values",
        ),
        ({"co2-intensity": 300}, "flex-context.co2-intensity", "no unit"),
    ],
)
def test_bad_co2_fields_are_422s(fields: dict[str, Any], field: str, message: str) -> None:
    req = request([0.0] * 4, [10, 20, 30, 40])
    req["flex-context"] |= fields
    with pytest.raises(RequestValidationError) as info:
        schedule(req)
    assert [i.field for i in info.value.issues] == [field], info.value.issues
    assert message in info.value.issues[0].message


def test_co2_price_needs_prices_in_eur() -> None:
    req = request(
        [0.0] * 4,
        [400, 150, 200, 450],
        unit="g/kWh",
        co2_intensity="300 g/kWh",
        co2_price="100 EUR/t",
    )
    with pytest.raises(RequestValidationError) as info:
        schedule(req)
    assert [i.field for i in info.value.issues] == ["flex-context.co2-price"]


optional_intensity = st.none() | st.lists(st.integers(0, 600), min_size=4, max_size=4)
optional_co2_price = st.none() | st.floats(0, 500).map(lambda v: round(v, 1))


@settings(max_examples=60, deadline=None)
@given(
    load=st.lists(st.floats(-4, 4).map(lambda v: round(v, 2)), min_size=4, max_size=4),
    cp=st.lists(st.floats(0, 100).map(lambda v: round(v, 1)), min_size=4, max_size=4),
    spread=st.floats(0, 50).map(lambda v: round(v, 1)),
    target=st.floats(0, 10).map(lambda v: round(v, 2)),
    intensity=optional_intensity,
    price=optional_co2_price,
)
def test_matches_hand_built_highspy_model(
    load: list[float],
    cp: list[float],
    spread: float,
    target: float,
    intensity: list[int] | None,
    price: float | None,
) -> None:
    """``intensity`` in g/kWh, ``price`` in EUR/t: g/kWh * EUR/t = 1e-6 EUR per kWh."""
    if price is not None and intensity is None:
        intensity = [300, 300, 300, 300]  # co2-price needs an intensity (tested above)
    pp = [c - spread for c in cp]
    req = request(
        load,
        cp,
        pp,
        target=target,
        co2_intensity=None if intensity is None else {"values": intensity, "unit": "g/kWh"},
        co2_price=None if price is None else f"{price} EUR/t",
    )
    result = schedule(req)
    co2 = None if price is None or intensity is None else [g * price / 1e6 for g in intensity]
    expected = reference(load, cp, pp, target, co2)
    assert result["cost"]["value"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    power = np.array(result["site"]["power"]["values"])
    if intensity is None:
        assert "emissions" not in result
    else:
        kg = float(np.array(intensity) / 1000 @ np.maximum(power, 0.0))
        assert result["emissions"] == {"value": pytest.approx(kg, abs=1e-6), "unit": "kg"}
    if price is None:
        assert "co2" not in result["cost"]
    else:
        assert result["cost"]["co2"] == pytest.approx(price / 1000 * kg, abs=1e-6)
        assert result["cost"]["co2"] >= 0
        total = result["cost"]["energy"] + result["cost"]["co2"]
        assert result["cost"]["value"] == pytest.approx(total, abs=2e-9)  # each rounded to 1e-9


# -- the worked example in docs/flex-model.md -----------------------------------------------


def test_docs_worked_example() -> None:
    """Checked against the three starts enumerated by hand (energy + 0.1 EUR/kg * CO2)."""
    text = DOCS.read_text()
    section = text[text.index("## Steering on CO2") :]
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.S)
    req, expected = json.loads(blocks[0]), json.loads(blocks[1])
    prices = np.array([100, 120, 110, 95]) / 1000  # EUR/kWh
    kg = np.array([400, 150, 200, 450]) / 1000  # kg/kWh
    starts = [(2 * prices[k : k + 2].sum(), 2 * kg[k : k + 2].sum()) for k in range(3)]
    energy, emitted = min(starts, key=lambda s: s[0] + 0.1 * s[1])
    assert expected["cost"] == pytest.approx(
        {"value": energy + 0.1 * emitted, "unit": "EUR", "energy": energy, "co2": 0.1 * emitted}
    )
    assert expected["emissions"]["value"] == pytest.approx(emitted)
    result = schedule(req)
    assert result["cost"] == pytest.approx(expected["cost"])
    assert result["emissions"] == pytest.approx(expected["emissions"])
    assert result["devices"][0]["power"] == pytest.approx(expected["devices"][0]["power"])
    without = copy.deepcopy(req)
    del without["flex-context"]["co2-price"]
    plain = schedule(without)
    assert plain["cost"]["value"] == pytest.approx(0.41)
    assert plain["emissions"]["value"] == pytest.approx(1.3)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.integers(0, 800), min_size=4, max_size=4),
    form=st.sampled_from(["kg/MWh", "g/kWh", "kg/kWh", "t/MWh", "segments"]),
)
def test_every_form_of_an_intensity_price_is_the_same_objective(
    values: list[int], form: str
) -> None:
    """The same intensities written in any mass-per-energy unit (or as segments of quantity
    text) give the same optimum, in kg: the reference reads them as kg/MWh."""
    scale = {"kg/MWh": 1.0, "g/kWh": 1.0, "kg/kWh": 1e3, "t/MWh": 1e3, "segments": 1.0}[form]
    req = request([1.0, -2.0, 1.0, 3.0], [0.0] * 4, [0.0] * 4)
    if form == "segments":
        req["flex-context"]["consumption-price"] = [
            {"start": f"2026-03-02T{t:02d}:00:00+01:00", "duration": "PT1H", "value": f"{v} g/kWh"}
            for t, v in enumerate(values)
        ]
        req["flex-context"]["production-price"] = "0 kg/MWh"
    else:
        req["flex-context"]["consumption-price"] = {
            "values": [v / scale for v in values],
            "unit": form,
        }
        req["flex-context"]["production-price"] = {"values": [0.0] * 4, "unit": form}
    result = schedule(req)
    assert result["cost"]["unit"] == "kg"
    expected = reference([1.0, -2.0, 1.0, 3.0], [float(v) for v in values], [0.0] * 4, 8.0)
    assert result["cost"]["value"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
