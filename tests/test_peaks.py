"""Peak (demand) charges: flex-context ``site-peak-consumption(-price)`` and
``site-peak-production(-price)`` (vpp/peaks.py).

Judged against a small LP built here with highspy (battery, inflexible load, import/export,
one excess column per priced peak, written from FlexMeasures' semantics: only the part of
the peak above the one already reached costs), and against hand-derived numbers; never
against vpp's own output. Each optional field is tried present and absent.
"""

from __future__ import annotations

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
from vpp.site import SiteProblem, schedule

START = "2026-03-02T00:00:00+01:00"
END = "2026-03-02T04:00:00+01:00"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "flex-model.md"
INF = highspy.kHighsInf


def request(
    load: list[float],
    cp: list[float],
    pp: list[float] | None = None,
    target: float = 8.0,
    **peaks: Any,
) -> dict[str, Any]:
    """A 4-hour site: a 10 kWh battery (0 -> ``target`` kWh, 5 kW) and an inflexible load."""
    context: dict[str, Any] = {
        "consumption-price": {"values": cp, "unit": "EUR/MWh"},
        "inflexible-devices": {"load": {"values": load, "unit": "kW"}},
    }
    if pp is not None:
        context["production-price"] = {"values": pp, "unit": "EUR/MWh"}
    context |= {k.replace("_", "-"): v for k, v in peaks.items() if v is not None}
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
    peak_c: tuple[float, float | None],
    peak_p: tuple[float, float | None],
) -> float:
    """The minimum cost (EUR) from a model built here with highspy.

    Columns per hour t: charge c, discharge d in [0, 5]; import i, export e >= 0; and one
    excess column per priced peak. Rows: i - e - c + d = load (balance); 0 <= sum c - d <= 10
    (SoC), = target at the end; x_c - c + d >= load - current_c; x_p + c - d >= -load -
    current_p. Cost: (cp*i - pp*e)/1000 + price_c*x_c + price_p*x_p (dt = 1 h).
    """
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    n = len(load)
    cost: list[float] = []

    def var(lo: float, hi: float, c: float) -> int:
        h.addVar(lo, hi)
        cost.append(c)
        return len(cost) - 1

    ch = [var(0, 5, 0) for _ in range(n)]
    dis = [var(0, 5, 0) for _ in range(n)]
    imp = [var(0, INF, cp[t] / 1000) for t in range(n)]
    exp = [var(0, INF, -pp[t] / 1000) for t in range(n)]

    def row(lo: float, hi: float, cols: list[int], vals: list[float]) -> None:
        h.addRow(lo, hi, len(cols), np.array(cols, np.int32), np.array(vals, float))

    for t in range(n):
        row(load[t], load[t], [imp[t], exp[t], ch[t], dis[t]], [1, -1, -1, 1])
        cols = ch[: t + 1] + dis[: t + 1]
        vals = [1.0] * (t + 1) + [-1.0] * (t + 1)
        row(target if t == n - 1 else 0.0, target if t == n - 1 else 10.0, cols, vals)
    for (current, price), sign in ((peak_c, 1.0), (peak_p, -1.0)):
        if price is None:
            continue
        x = var(0, INF, price)
        for t in range(n):  # x >= sign * (c - d + load) - current
            row(sign * load[t] - current, INF, [x, ch[t], dis[t]], [1, -sign, sign])
    for i, c in enumerate(cost):
        h.changeColCost(i, c)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return float(h.getInfo().objective_function_value)


def kw(value: float) -> str:
    return f"{value} kW"


def eur_per_kw(value: float) -> str:
    return f"{value} EUR/kW"


# -- hand-derived ---------------------------------------------------------------------------


def test_hand_derived_peak_rises_just_enough() -> None:
    """Load [1, 3, 1, 1] kW, current peak 3 kW at 5 EUR/kW: under 3 kW the battery finds
    2 + 0 + 2 + 2 = 6 kWh of room, 2 short of its 8 kWh. Each kW of peak adds 4 kWh of room,
    so the peak rises by 0.5 kW to 3.5 (2.5 EUR) and the site draws 3.5 kW every hour:
    energy 3.5 * (10 + 20 + 30 + 40) / 1000 = 0.35 EUR; total 2.85 EUR."""
    req = request(
        [1, 3, 1, 1],
        [10, 20, 30, 40],
        site_peak_consumption="3 kW",
        site_peak_consumption_price="5 EUR/kW",
    )
    result = schedule(req)
    assert result["cost"] == pytest.approx(
        {"value": 2.85, "unit": "EUR", "energy": 0.35, "peak-charges": 2.5}
    )
    assert result["site"]["peak-consumption"] == {"value": pytest.approx(3.5), "unit": "kW"}
    assert result["site"]["power"]["values"] == pytest.approx([3.5] * 4)
    assert "peak-production" not in result["site"]


def test_a_peak_below_the_current_one_is_sunk() -> None:
    """Current peak 10 kW: the battery fits under it anywhere, so it fills up in the two
    cheapest hours (5 kW at 10 and 20 EUR/MWh) and gives 2 kW back for the 3 kW load of the
    dearest hour (ending at 8 kWh): the site draws 6, 6, 1, 1 kW at no peak cost."""
    req = request(
        [1, 1, 1, 3],
        [10, 20, 30, 40],
        site_peak_consumption="10 kW",
        site_peak_consumption_price="5 EUR/kW",
    )
    result = schedule(req)
    energy = (6 * 10 + 6 * 20 + 30 + 40) / 1000
    assert result["cost"] == pytest.approx(
        {"value": energy, "unit": "EUR", "energy": energy, "peak-charges": 0.0}
    )
    assert result["site"]["peak-consumption"]["value"] == pytest.approx(10.0)


def test_production_peak_charged_on_export() -> None:
    """Load [-4, -4, 0, 0] kW (local generation), battery 0 -> 0 kWh: the 8 kWh must leave the
    site. Without a peak price it leaves as it comes (4 kW twice, -0.4 EUR at 50 EUR/MWh).
    With 1 EUR/kW on the production peak, the battery spreads it evenly: 2 kW every hour, a
    2 kW peak (2 EUR) and the same -0.4 EUR of export: 1.6 EUR."""
    base = request([-4, -4, 0, 0], [100] * 4, [50] * 4, target=0.0)
    plain = schedule(base)
    assert plain["cost"]["value"] == pytest.approx(-8 * 50 / 1000)
    req = request(
        [-4, -4, 0, 0],
        [100] * 4,
        [50] * 4,
        target=0.0,
        site_peak_production_price="1 EUR/kW",
    )
    result = schedule(req)
    assert result["cost"] == pytest.approx(
        {"value": 1.6, "unit": "EUR", "energy": -0.4, "peak-charges": 2.0}
    )
    assert result["site"]["peak-production"] == {"value": pytest.approx(2.0), "unit": "kW"}
    assert result["site"]["power"]["values"] == pytest.approx([-2.0] * 4)


def test_current_peak_alone_is_reported_not_charged() -> None:
    req = request([1, 3, 1, 1], [10, 20, 30, 40], site_peak_consumption="2 kW")
    result = schedule(req)
    plain = schedule(request([1, 3, 1, 1], [10, 20, 30, 40]))
    assert result["cost"] == plain["cost"]
    assert "peak-charges" not in result["cost"]
    highest = max(result["site"]["power"]["values"])
    assert result["site"]["peak-consumption"]["value"] == pytest.approx(max(2.0, highest))


def test_absent_fields_leave_the_result_as_before() -> None:
    result = schedule(request([1, 3, 1, 1], [10, 20, 30, 40]))
    assert set(result["site"]) == {"power"}
    assert "peak-charges" not in result["cost"]


def test_peak_cost_is_in_the_base_cost_the_portfolio_sees() -> None:
    problem = SiteProblem(
        request([1, 3, 1, 1], [10, 20, 30, 40], site_peak_consumption_price="5 EUR/kW")
    )
    block = next(b for b in problem.model.var_blocks if b.name == "site-peak-consumption-excess")
    assert problem.base_cost[block.start] == pytest.approx(5.0)
    assert any(f.name == "site-peak-consumption" for f in problem.model.families)


def test_series_price_with_one_value_is_accepted() -> None:
    req = request(
        [1, 3, 1, 1],
        [10, 20, 30, 40],
        site_peak_consumption={"values": [3, 3, 3, 3], "unit": "kW"},
        site_peak_consumption_price={"values": [5, 5, 5, 5], "unit": "EUR/kW"},
    )
    assert schedule(req)["cost"]["value"] == pytest.approx(2.85)


# -- against the highspy model ----------------------------------------------------------------

optional_kw = st.none() | st.floats(0, 8).map(lambda v: round(v, 3))
optional_price = st.none() | st.floats(0, 20).map(lambda v: round(v, 3))


@settings(max_examples=60, deadline=None)
@given(
    load=st.lists(st.floats(-4, 4).map(lambda v: round(v, 2)), min_size=4, max_size=4),
    cp=st.lists(st.floats(0, 100).map(lambda v: round(v, 1)), min_size=4, max_size=4),
    spread=st.floats(0, 50).map(lambda v: round(v, 1)),
    target=st.floats(0, 10).map(lambda v: round(v, 2)),
    cur_c=optional_kw,
    price_c=optional_price,
    cur_p=optional_kw,
    price_p=optional_price,
)
def test_matches_hand_built_highspy_model(
    load: list[float],
    cp: list[float],
    spread: float,
    target: float,
    cur_c: float | None,
    price_c: float | None,
    cur_p: float | None,
    price_p: float | None,
) -> None:
    pp = [c - spread for c in cp]  # never above the consumption price: an LP reference
    req = request(
        load,
        cp,
        pp,
        target,
        site_peak_consumption=None if cur_c is None else kw(cur_c),
        site_peak_consumption_price=None if price_c is None else eur_per_kw(price_c),
        site_peak_production=None if cur_p is None else kw(cur_p),
        site_peak_production_price=None if price_p is None else eur_per_kw(price_p),
    )
    result = schedule(req)
    expected = reference(load, cp, pp, target, (cur_c or 0.0, price_c), (cur_p or 0.0, price_p))
    assert result["cost"]["value"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    power = np.array(result["site"]["power"]["values"])
    charges = 0.0
    for key, current, price, side in (
        ("peak-consumption", cur_c, price_c, power),
        ("peak-production", cur_p, price_p, -power),
    ):
        if current is None and price is None:
            assert key not in result["site"]
            continue
        peak = max(current or 0.0, float(side.max()))
        assert result["site"][key]["value"] == pytest.approx(peak, abs=1e-6)
        charges += (price or 0.0) * (peak - (current or 0.0))
    if price_c is None and price_p is None:
        assert "peak-charges" not in result["cost"]
    else:
        assert result["cost"]["peak-charges"] == pytest.approx(charges, abs=1e-6)
        assert result["cost"]["peak-charges"] >= 0
        total = result["cost"]["energy"] + result["cost"]["peak-charges"]
        assert result["cost"]["value"] == pytest.approx(total, abs=2e-9)  # each rounded to 1e-9


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("site-peak-consumption-price", "-1 EUR/kW", "must not be negative"),
        ("site-peak-production-price", "-1 EUR/kW", "must not be negative"),
        ("site-peak-consumption", "-2 kW", "must not be negative"),
        ("site-peak-production", "-2 kW", "must not be negative"),
        ("site-peak-consumption-price", "5 EUR/MWh", "not"),
        ("site-peak-consumption-price", "5 kW", "not"),
        ("site-peak-production-price", 5, "no unit"),
        ("site-peak-consumption", "2 kWh", "not"),
        ("site-peak-consumption-price", {"values": [5, 6, 5, 5], "unit": "EUR/kW"}, "one value"),
        ("site-peak-production-price", {"values": [5, 5], "unit": "EUR/kW"}, "values"),
    ],
)
def test_bad_fields_are_422s_naming_the_field(field: str, value: Any, message: str) -> None:
    req = request([1, 3, 1, 1], [10, 20, 30, 40])
    req["flex-context"][field] = value
    with pytest.raises(RequestValidationError) as info:
        schedule(req)
    fields = [i.field for i in info.value.issues]
    assert fields == [f"flex-context.{field}"], info.value.issues
    assert message in info.value.issues[0].message


# -- the worked example in docs/flex-model.md -----------------------------------------------


def test_docs_worked_example() -> None:
    text = DOCS.read_text()
    section = text[text.index("## Peak charges") :]
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.S)
    req, expected = json.loads(blocks[0]), json.loads(blocks[1])
    result = schedule(req)
    assert result["cost"] == pytest.approx(expected["cost"])
    assert result["site"]["peak-consumption"] == pytest.approx(expected["site"]["peak-consumption"])
    assert result["site"]["power"]["values"] == pytest.approx(expected["site"]["power"]["values"])
    load, cp = [1, 3, 1, 1], [10, 20, 30, 40]
    assert expected["cost"]["value"] == pytest.approx(
        reference(load, cp, cp, 8.0, (3.0, 5.0), (0.0, None))
    )


def test_a_portfolio_pays_each_sites_peak() -> None:
    """Two copies of the hand-derived site under a joint congestion limit loose enough not to
    bind: the centralised portfolio and the ADMM both cost 2 x 2.85 EUR (the peak charge is in
    each site's base cost, so the portfolio's objective carries it)."""
    from vpp.admm import AdmmSettings, LocalPool, solve_portfolio_admm
    from vpp.portfolio import (
        CentralisedPortfolio,
        build_sites,
        parse_portfolio,
        price_scale,
        resolve_target,
    )

    site = request(
        [1, 3, 1, 1],
        [10, 20, 30, 40],
        site_peak_consumption="3 kW",
        site_peak_consumption_price="5 EUR/kW",
    )
    raw = {k: site[k] for k in ("start", "duration", "resolution", "flex-context")}
    raw["sites"] = [{"id": f"s{i}", "flex-model": site["flex-model"]} for i in range(2)]
    raw["target"] = {"type": "congestion", "congestion-point": "x", "max-consumption": "100 kW"}
    central = CentralisedPortfolio(raw).solve().to_json()
    assert central["portfolio"]["cost"]["value"] == pytest.approx(5.7)
    parsed = parse_portfolio(raw)
    pool = LocalPool([s.id for s in parsed.sites], build_sites(parsed))
    admm = solve_portfolio_admm(
        parsed, pool, resolve_target(parsed), price_scale(parsed), AdmmSettings()
    ).to_json()
    assert admm["portfolio"]["cost"]["value"] == pytest.approx(5.7, rel=1e-4)


def test_a_peak_price_needs_prices_in_eur() -> None:
    """Prices in g/kWh make the objective kg (vpp/co2.py): EUR/kW cannot be added to it."""
    req = request([1, 3, 1, 1], [10, 20, 30, 40], site_peak_consumption_price="5 EUR/kW")
    req["flex-context"]["consumption-price"]["unit"] = "g/kWh"
    with pytest.raises(RequestValidationError) as info:
        schedule(req)
    assert [i.field for i in info.value.issues] == ["flex-context.site-peak-consumption-price"]
    req["flex-context"].pop("site-peak-consumption-price")
    req["flex-context"]["site-peak-consumption"] = "2 kW"  # reported only: no EUR added
    assert schedule(req)["site"]["peak-consumption"]["value"] >= 2.0
