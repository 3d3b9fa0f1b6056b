"""Every optional field may be absent (the lesson of the ADMM x-update that raised on every
site without a ``site-power-capacity``).

``FULL`` is one request that carries every field of every device kind, of the flex-context
and of the request itself. A meta-test keeps it complete: a field added to any spec without
being added here fails. The property test then drops random subsets of the optional fields
and asks one thing of each request: it is scheduled (a result with a status), or refused with
a domain error naming a field or a constraint. Any other exception, the kind an API would
turn into a 500, fails.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpp import assets
from vpp.errors import InfeasibleError, RequestValidationError
from vpp.request import FlexContext, ScheduleRequest
from vpp.site import schedule

START = "2026-03-02T00:00:00+01:00"
STEPS = 8  # 2 h of 15 min


def _window(a: str, b: str) -> dict[str, str]:
    return {"start": f"2026-03-02T{a}:00+01:00", "end": f"2026-03-02T{b}:00+01:00"}


def _series(values: list[float], unit: str) -> dict[str, Any]:
    return {"values": values, "unit": unit}


COMMON = {
    "consumption-price": "120 EUR/MWh",
    "production-price": "40 EUR/MWh",
    "availability": [_window("00:00", "02:00")],
    "power-fixed": [{**_window("00:00", "00:15"), "min": "-20 kW", "max": "20 kW"}],
}

DEVICES: dict[str, dict[str, Any]] = {
    "battery": {
        **COMMON,
        "type": "storage",
        "name": "battery",
        "soc-at-start": "5 kWh",
        "soc-min": "1 kWh",
        "soc-max": "10 kWh",
        "soc-minima": [{"datetime": "2026-03-02T01:00:00+01:00", "value": "2 kWh"}],
        "soc-maxima": [{"datetime": "2026-03-02T01:00:00+01:00", "value": "9 kWh"}],
        "soc-targets": [{"datetime": "2026-03-02T02:00:00+01:00", "value": "5 kWh"}],
        "charging-efficiency": "95%",
        "discharging-efficiency": "95%",
        "storage-efficiency": "99.9%",
        "power-capacity": "6 kW",  # hard, above the soft capacities below
        "consumption-capacity": "4 kW",
        "production-capacity": "4 kW",
        "soc-usage": [{**_window("00:30", "01:00"), "value": "0.5 kW"}],
        "soc-gain": [{**_window("01:00", "01:30"), "value": "0.5 kW"}],
        "soc-unit": "kWh",
        "prefer-charging-sooner": True,
        "prefer-curtailing-later": True,
    },
    # the other half of the either-or pairs: a round-trip efficiency, one power capacity
    "ev": {
        "type": "storage",
        "name": "ev",
        "soc-at-start": 10,
        "soc-unit": "kWh",
        "soc-max": 40,
        "roundtrip-efficiency": "90%",
        "power-capacity": "7 kW",
    },
    "heat-pump": {
        **COMMON,
        "type": "heat",
        "name": "heat-pump",
        "soc-at-start": "6 kWh",
        "soc-min": "2 kWh",
        "soc-max": "12 kWh",
        "soc-minima": [{"datetime": "2026-03-02T01:00:00+01:00", "value": "3 kWh"}],
        "soc-maxima": [{"datetime": "2026-03-02T01:00:00+01:00", "value": "11 kWh"}],
        "soc-targets": [{"datetime": "2026-03-02T02:00:00+01:00", "value": "6 kWh"}],
        "storage-efficiency": "99.9%",
        "cop": "3.2",
        "heat-demand": "2 kW",
        "power-capacity": "2 kW",
        "min-power": "0.5 kW",  # on/off operation (vpp/assets/modes.py)
        "min-on-duration": "PT30M",
        "min-off-duration": "PT15M",
        "start-cost": "0.1 EUR",
    },
    "process": {
        **COMMON,
        "type": "shiftable",
        "name": "process",
        "power": "1.5 kW",
        "duration": "PT30M",
        "process-type": "SHIFTABLE",
        "earliest-start": "2026-03-02T00:15:00+01:00",
        "latest-end": "2026-03-02T01:45:00+01:00",
    },
    "pv": {
        **COMMON,
        "type": "generation",
        "name": "pv",
        "production": _series([0.0, 0.5, 1.0, 2.0, 3.0, 2.0, 1.0, 0.5], "kW"),
        "curtailable": True,
    },
    "load": {**COMMON, "type": "inflexible", "name": "load", "power": "0.4 kW"},
    "chp": {  # operation modes (vpp/assets/modes.py)
        **COMMON,
        "type": "modes",
        "name": "chp",
        "modes": [
            {"name": "off", "power": "0 kW"},
            {"name": "low", "power": "-1 kW", "cost": "0.1 EUR/h", "min-duration": "PT30M"},
            {"name": "high", "min-power": "-3 kW", "max-power": "-2 kW"},
        ],
        "transitions": [
            {"from": "off", "to": "low", "cost": "0.2 EUR", "start-timers": ["hold"]},
            {"from": "low", "to": "high"},
            {"from": "high", "to": "low"},
            {"from": "low", "to": "off", "blocking-timers": ["hold"]},
        ],
        "timers": [{"name": "hold", "duration": "PT45M", "finished-at": START}],
        "min-on-duration": "PT30M",
        "min-off-duration": "PT15M",
        "start-cost": "0.5 EUR",
        "initial-mode": "off",
        "initial-mode-since": START,
    },
}

CONTEXT: dict[str, Any] = {
    "consumption-price": _series([100.0, 80, 60, 90, 150, 200, 120, 110], "EUR/MWh"),
    "production-price": "50 EUR/MWh",
    "site-power-capacity": "25 kW",
    "site-consumption-capacity": "20 kW",
    "site-production-capacity": "15 kW",
    "inflexible-devices": {"house": "0.3 kW"},
    "groups": [  # a hybrid inverter inside a feeder (vpp/groups.py)
        {"name": "inverter", "devices": ["battery", "pv"], "power-capacity": "5 kW"},
        {
            "name": "feeder",
            "devices": ["inverter", "house", "heat-pump"],
            "consumption-capacity": "8 kW",
            "production-capacity": "6 kW",
            "consumption-breach-price": "20 EUR/kW",
            "production-breach-price": "20 EUR/kW",
        },
    ],
    # peak charges (vpp/peaks.py) and CO2 steering (vpp/co2.py)
    "site-peak-consumption": "4 kW",
    "site-peak-consumption-price": "5 EUR/kW",
    "site-peak-production": "3 kW",
    "site-peak-production-price": "2 EUR/kW",
    "co2-intensity": _series([400.0, 380, 300, 200, 150, 180, 350, 420], "g/kWh"),
    "co2-price": "80 EUR/t",
    # soft constraints (vpp/breach.py)
    "site-consumption-breach-price": "10 EUR/kW",
    "site-production-breach-price": "10 EUR/kW",
    "consumption-breach-price": "2 EUR/kW",
    "production-breach-price": "2 EUR/kW",
    "soc-minima-breach-price": "5 EUR/kWh",
    "soc-maxima-breach-price": "5 EUR/kWh",
    "relax-constraints": True,
}

FULL: dict[str, Any] = {
    "start": START,
    "duration": "PT2H",
    "resolution": "PT15M",
    "time-limit": 30,
    "flex-model": list(DEVICES.values()),
    "flex-context": CONTEXT,
}

REQUIRED_CONTEXT = {"consumption-price"}


def _aliases(model: Any) -> dict[str, bool]:
    """Field alias -> required, of a pydantic model."""
    return {(f.alias or name): f.is_required() for name, f in model.model_fields.items()}


def test_full_request_carries_every_field_of_every_spec() -> None:
    for kind in assets.kinds():
        given_fields = set().union(*(d.keys() for d in DEVICES.values() if d["type"] == kind.name))
        missing = set(_aliases(kind.spec)) - given_fields
        assert not missing, f"{kind.name}: add {sorted(missing)} to DEVICES"
    assert set(_aliases(FlexContext)) - set(CONTEXT) == set(), "add them to CONTEXT"
    assert set(_aliases(ScheduleRequest)) - set(FULL) == set(), "add them to FULL"


def test_the_full_request_is_scheduled() -> None:
    result = schedule(copy.deepcopy(FULL))
    assert result["status"] == "finished"
    site = np.array(result["site"]["power"]["values"])
    devices = sum(np.array(d["power"]["values"]) for d in result["devices"])
    assert np.allclose(site, devices + 0.3, atol=1e-6)  # + the house in inflexible-devices


def _optional(model: Any, present: dict[str, Any], always: set[str]) -> list[str]:
    required = {k for k, req in _aliases(model).items() if req} | always
    return sorted(k for k in present if k not in required)


DROPPABLE: list[tuple[str, str]] = [
    *(
        (name, key)
        for name, d in DEVICES.items()
        for key in _optional(assets.get(d["type"]).spec, d, {"type", "name"})
    ),
    *(("flex-context", key) for key in _optional(FlexContext, CONTEXT, REQUIRED_CONTEXT)),
    *(("request", key) for key in _optional(ScheduleRequest, FULL, {"flex-model"})),
]


def _without(drop: set[tuple[str, str]]) -> dict[str, Any]:
    request = copy.deepcopy(FULL)
    for owner, key in drop:
        if owner == "request":
            request.pop(key, None)
        elif owner == "flex-context":
            request.get("flex-context", {}).pop(key, None)
        else:
            device = next(d for d in request["flex-model"] if d["name"] == owner)
            device.pop(key, None)
    return request


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(drop=st.sets(st.sampled_from(DROPPABLE)))
def test_any_optional_fields_absent_give_a_schedule_or_a_named_refusal(drop: set[Any]) -> None:
    request = _without(drop)
    try:
        result = schedule(request)
    except RequestValidationError as err:
        assert err.issues and all(issue.field for issue in err.issues)
        return
    except InfeasibleError as err:
        assert err.constraint
        return
    assert result["status"] in ("finished", "time-limited")
    assert len(result["site"]["power"]["values"]) == STEPS


def test_each_optional_field_absent_alone() -> None:
    """One at a time, deterministically, so a failure names the field."""
    for owner, key in DROPPABLE:
        try:
            schedule(_without({(owner, key)}))
        except (RequestValidationError, InfeasibleError):
            pass
        except Exception as err:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"without {owner}.{key}: {type(err).__name__}: {err}") from err
