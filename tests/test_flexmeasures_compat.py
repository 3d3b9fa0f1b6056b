"""A FlexMeasures user's request works unchanged (issue 13 item 8).

Request bodies in FlexMeasures' documented flex-model style, written here from its field
tables (``soc-unit`` with bare numbers, ``{"datetime", "value"}`` and ``{"start", "end",
"value"}`` SoC constraint entries, the tie-breaking booleans). Each must give the same optimum
as the same request in vpp's unit-string form. Unknown fields are still refused by name, and a
bare number without ``soc-unit`` is still refused: FlexMeasures documents no default unit
(``soc-unit`` is only "the unit used to interpret" bare numbers, kWh or MWh).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_harness import ApiHarness, assert_problem, harness

from vpp.errors import RequestValidationError
from vpp.site import SiteProblem, SiteSchedule

pytest_plugins = ["db_fixtures"]

START = "2026-03-02T00:00:00+01:00"
PRICES = [round(40.0 + 60.0 * abs(float(np.sin(i / 7.0))), 2) for i in range(24)]


def _body(flex_model: dict[str, Any], **context: Any) -> dict[str, Any]:
    return {
        "start": START,
        "duration": "PT6H",
        "resolution": "PT15M",
        "flex-model": flex_model,
        "flex-context": {
            "consumption-price": {"values": PRICES, "unit": "EUR/MWh"},
            "production-price": "30 EUR/MWh",
            "site-power-capacity": "12 kW",
            **context,
        },
    }


# the unit-string form vpp has always accepted
UNIT_FORM: dict[str, Any] = {
    "soc-at-start": "12.1 kWh",
    "soc-min": "2 kWh",
    "soc-max": "40 kWh",
    "power-capacity": "10 kW",
    "roundtrip-efficiency": "90%",
    "soc-targets": [{"datetime": "2026-03-02T05:00:00+01:00", "value": "25 kWh"}],
    "soc-minima": [{"datetime": "2026-03-02T02:00:00+01:00", "value": "8 kWh"}],
    "soc-maxima": [
        {
            "start": "2026-03-02T03:00:00+01:00",
            "end": "2026-03-02T03:30:00+01:00",
            "value": "30 kWh",
        }
    ],
}

# FlexMeasures' documented style: "soc-unit" and bare numbers
FM_KWH: dict[str, Any] = {
    "soc-unit": "kWh",
    "soc-at-start": 12.1,
    "soc-min": 2,
    "soc-max": 40,
    "power-capacity": "10 kW",
    "roundtrip-efficiency": "90%",
    "soc-targets": [{"value": 25, "datetime": "2026-03-02T05:00:00+01:00"}],
    "soc-minima": [{"value": 8, "datetime": "2026-03-02T02:00:00+01:00"}],
    "soc-maxima": [
        {"value": 30, "start": "2026-03-02T03:00:00+01:00", "end": "2026-03-02T03:30:00+01:00"}
    ],
    "prefer-charging-sooner": True,
}

FM_MWH: dict[str, Any] = {
    **FM_KWH,
    "soc-unit": "MWh",
    "soc-at-start": 0.0121,
    "soc-min": 0.002,
    "soc-max": 0.04,
    "soc-targets": [{"value": 0.025, "datetime": "2026-03-02T05:00:00+01:00"}],
    "soc-minima": [{"value": 0.008, "datetime": "2026-03-02T02:00:00+01:00"}],
    "soc-maxima": [
        {"value": 0.03, "start": "2026-03-02T03:00:00+01:00", "end": "2026-03-02T03:30:00+01:00"}
    ],
}

# a unit written in a value wins over soc-unit (soc-unit only applies to bare numbers)
FM_MIXED: dict[str, Any] = {**FM_MWH, "soc-at-start": "12.1 kWh", "soc-max": "40 kWh"}

FM_FLAGS: dict[str, Any] = {
    **FM_KWH,
    "prefer-charging-sooner": True,
    "prefer-curtailing-later": True,
}


def _solve(body: dict[str, Any]) -> SiteSchedule:
    return SiteProblem(copy.deepcopy(body)).solve()


@pytest.mark.parametrize(
    "flex_model",
    [FM_KWH, FM_MWH, FM_MIXED, FM_FLAGS],
    ids=["soc-unit-kWh", "soc-unit-MWh", "unit-in-value-wins", "tie-break-flags"],
)
def test_flexmeasures_style_gives_the_unit_form_optimum(flex_model: dict[str, Any]) -> None:
    expected = _solve(_body(UNIT_FORM))
    got = _solve(_body(flex_model))
    assert got.cost == pytest.approx(expected.cost, rel=1e-9, abs=1e-12)
    assert np.allclose(got.device_power["battery"], expected.device_power["battery"], atol=1e-6)
    assert np.allclose(got.device_soc["battery"], expected.device_soc["battery"], atol=1e-6)
    assert got.device_soc["battery"][0] == pytest.approx(12.1)
    assert got.device_soc["battery"][20] == pytest.approx(25.0)  # 05:00 target


def test_a_list_of_devices_in_flexmeasures_style() -> None:
    """FlexMeasures' multi-device form (a list of flex-models), each with its own soc-unit."""
    unit = [{**UNIT_FORM, "name": "a"}, {**UNIT_FORM, "name": "b", "soc-at-start": "20 kWh"}]
    fm = [{**FM_KWH, "name": "a"}, {**FM_MWH, "name": "b", "soc-at-start": 0.02}]
    expected = _solve(_body(unit, **{"site-power-capacity": "25 kW"}))
    got = _solve(_body(fm, **{"site-power-capacity": "25 kW"}))
    assert got.cost == pytest.approx(expected.cost, rel=1e-9, abs=1e-12)
    for name in ("a", "b"):
        assert np.allclose(got.device_soc[name], expected.device_soc[name], atol=1e-6)


def test_prefer_charging_sooner_off_is_accepted() -> None:
    body = _body({**FM_KWH, "prefer-charging-sooner": False, "prefer-curtailing-later": False})
    assert _solve(body).cost == pytest.approx(_solve(_body(UNIT_FORM)).cost, rel=1e-9)


def _issues(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(RequestValidationError) as err:
        SiteProblem(body)
    return {i.field: i.message for i in err.value.issues}


def test_unknown_fields_are_still_refused_by_name() -> None:
    issues = _issues(_body({**FM_KWH, "soc-unitt": "kWh", "prefer-charging-soon": True}))
    assert issues == {
        "flex-model[0].soc-unitt": "unknown field",
        "flex-model[0].prefer-charging-soon": "unknown field",
    }


def test_bare_numbers_without_soc_unit_are_refused() -> None:
    body = {k: v for k, v in FM_KWH.items() if k != "soc-unit"}
    issues = _issues(_body(body))
    for field in ("soc-at-start", "soc-min", "soc-max", "soc-targets", "soc-minima"):
        assert "has no unit" in issues[f"flex-model[0].{field}"]


@pytest.mark.parametrize("unit", ["Wh", "%", "kW", 1])
def test_soc_unit_is_kwh_or_mwh(unit: Any) -> None:
    issues = _issues(_body({**FM_KWH, "soc-unit": unit}))
    assert "flex-model[0].soc-unit" in issues


@pytest.mark.parametrize("value", ["yes", 2, None])
def test_tie_break_flags_are_booleans(value: Any) -> None:
    issues = _issues(_body({**FM_KWH, "prefer-charging-sooner": value}))
    assert "flex-model[0].prefer-charging-sooner" in issues


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    with harness("sqlite", Path(tmp_path_factory.mktemp("fm-compat"))) as h:
        yield h


def test_the_api_takes_the_flexmeasures_style(api: ApiHarness) -> None:
    url = "/api/v1/scheduling-job/storage"
    response = api.http.post(url, json=_body(FM_KWH), headers=api.admin)
    assert response.status_code < 300, response.text
    response = api.http.post(url, json=_body({**FM_KWH, "soc-unitt": "kWh"}), headers=api.admin)
    assert_problem(response, 422, "flex-model[0].soc-unitt")
