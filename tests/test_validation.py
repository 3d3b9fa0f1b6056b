"""Every invalid request raises RequestValidationError naming the offending field.

Each case mutates the valid default request of ``make_request`` (one battery, 96 steps of
15 minutes from 2026-03-02T00:00+01:00) and names the field (JSON path) it expects.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from vpp.errors import InfeasibleError, RequestValidationError
from vpp.site import SiteProblem, schedule

START = datetime.fromisoformat("2026-03-02T00:00:00+01:00")


def t(k: int, minutes: int = 15) -> str:
    """Instant ``k`` of the default schedule, as ISO text."""
    return (START + k * timedelta(minutes=minutes)).isoformat()


Mutation = Callable[[dict[str, Any]], Any]


def fm(**fields: Any) -> Mutation:
    """Set (or, with value ``None``, remove) flex-model fields of the battery."""

    def apply(r: dict[str, Any]) -> None:
        for key, value in fields.items():
            key = key.replace("_", "-")
            if value is None:
                r["flex-model"].pop(key)
            else:
                r["flex-model"][key] = value

    return apply


def ctx(**fields: Any) -> Mutation:
    def apply(r: dict[str, Any]) -> None:
        for key, value in fields.items():
            key = key.replace("_", "-")
            if value is None:
                r["flex-context"].pop(key)
            else:
                r["flex-context"][key] = value

    return apply


def top(**fields: Any) -> Mutation:
    def apply(r: dict[str, Any]) -> None:
        for key, value in fields.items():
            key = key.replace("_", "-")
            if value is None:
                r.pop(key)
            else:
                r[key] = value

    return apply


def devices(*models: dict[str, Any]) -> Mutation:
    def apply(r: dict[str, Any]) -> None:
        r["flex-model"] = [dict(m) for m in models]

    return apply


BATTERY = {"soc-at-start": "10 kWh", "soc-max": "40 kWh", "power-capacity": "10 kW"}
SHIFT = {"type": "shiftable", "name": "washer", "power": "2 kW", "duration": "PT1H"}
HEAT = {
    "type": "heat",
    "soc-at-start": "0 kWh",
    "soc-max": "5 kWh",
    "power-capacity": "1 kW",
    "cop": 3,
}

CASES: list[tuple[str, Mutation, str]] = [
    # missing fields
    ("missing-soc-max", fm(soc_max=None), "flex-model[0].soc-max"),
    ("missing-soc-at-start", fm(soc_at_start=None), "flex-model[0].soc-at-start"),
    ("missing-power-capacity", fm(power_capacity=None), "flex-model[0].power-capacity"),
    ("missing-consumption-price", ctx(consumption_price=None), "flex-context.consumption-price"),
    ("missing-start", top(start=None), "start"),
    ("missing-duration", top(duration=None), "duration"),
    ("missing-flex-model", top(flex_model=None), "flex-model"),
    ("missing-cop", devices({k: v for k, v in HEAT.items() if k != "cop"}), "flex-model[0].cop"),
    ("missing-production", devices({"type": "generation"}), "flex-model[0].production"),
    (
        "missing-shiftable-power",
        devices({"type": "shiftable", "duration": "PT1H"}),
        "flex-model[0].power",
    ),
    # bad units and values
    ("energy-as-power", fm(soc_at_start="10 kW"), "flex-model[0].soc-at-start"),
    ("unknown-unit", fm(soc_max="x"), "flex-model[0].soc-max"),
    ("number-without-unit", fm(soc_max=40), "flex-model[0].soc-max"),
    ("power-as-energy", fm(power_capacity="10 kWh"), "flex-model[0].power-capacity"),
    ("price-as-power", ctx(consumption_price="5 kW"), "flex-context.consumption-price"),
    ("price-without-energy", ctx(production_price="50 EUR"), "flex-context.production-price"),
    (
        "compact-without-unit",
        ctx(consumption_price={"values": [50.0] * 96}),
        "flex-context.consumption-price",
    ),
    (
        "compact-booleans",
        ctx(consumption_price={"values": [True] * 96, "unit": "EUR/MWh"}),
        "flex-context.consumption-price",
    ),
    ("efficiency-above-one", fm(charging_efficiency="110%"), "flex-model[0].charging-efficiency"),
    (
        "discharging-efficiency-zero",
        fm(discharging_efficiency=0),
        "flex-model[0].discharging-efficiency",
    ),
    ("roundtrip-above-one", fm(roundtrip_efficiency=1.2), "flex-model[0].roundtrip-efficiency"),
    ("storage-efficiency-zero", fm(storage_efficiency=0), "flex-model[0].storage-efficiency"),
    ("cop-zero", devices({**HEAT, "cop": 0}), "flex-model[0].cop"),
    (
        "negative-forecast",
        devices({"type": "generation", "production": "-1 kW"}),
        "flex-model[0].production",
    ),
    (
        "unknown-process-type",
        devices({**SHIFT, "process-type": "SOMETIMES"}),
        "flex-model[0].process-type",
    ),
    # negative capacities
    ("negative-power-capacity", fm(power_capacity="-1 kW"), "flex-model[0].power-capacity"),
    (
        "negative-consumption-capacity",
        fm(consumption_capacity="-1 kW"),
        "flex-model[0].consumption-capacity",
    ),
    (
        "negative-production-capacity",
        fm(power_capacity=None, consumption_capacity="3 kW", production_capacity="-1 kW"),
        "flex-model[0].production-capacity",
    ),
    (
        "negative-site-capacity",
        ctx(site_power_capacity="-5 kW"),
        "flex-context.site-power-capacity",
    ),
    (
        "negative-site-consumption-capacity",
        ctx(site_consumption_capacity="-5 kW"),
        "flex-context.site-consumption-capacity",
    ),
    (
        "negative-heat-capacity",
        devices({**HEAT, "power-capacity": "-1 kW"}),
        "flex-model[0].power-capacity",
    ),
    # SoC bounds and targets
    (
        "target-above-soc-max",
        fm(soc_targets=[{"datetime": t(8), "value": "50 kWh"}]),
        "flex-model[0].soc-targets[0]",
    ),
    (
        "second-target-below-soc-min",
        fm(
            soc_min="5 kWh",
            soc_targets=[
                {"datetime": t(4), "value": "20 kWh"},
                {"datetime": t(8), "value": "1 kWh"},
            ],
        ),
        "flex-model[0].soc-targets[1]",
    ),
    (
        "minima-above-soc-max",
        fm(soc_minima=[{"datetime": t(8), "value": "45 kWh"}]),
        "flex-model[0].soc-minima[0]",
    ),
    ("soc-min-above-soc-max", fm(soc_min="50 kWh", soc_at_start="45 kWh"), "flex-model[0].soc-min"),
    ("soc-at-start-above-soc-max", fm(soc_at_start="50 kWh"), "flex-model[0].soc-at-start"),
    (
        "target-off-step",
        fm(soc_targets=[{"datetime": "2026-03-02T01:05:00+01:00", "value": "5 kWh"}]),
        "flex-model[0].soc-targets[0]",
    ),
    (
        "target-after-horizon",
        fm(soc_targets=[{"datetime": t(97), "value": "5 kWh"}]),
        "flex-model[0].soc-targets[0]",
    ),
    (
        "target-before-horizon",
        fm(soc_targets=[{"datetime": t(-4), "value": "5 kWh"}]),
        "flex-model[0].soc-targets[0]",
    ),
    ("target-without-value", fm(soc_targets=[{"datetime": t(4)}]), "flex-model[0].soc-targets"),
    (
        "target-unknown-key",
        fm(soc_targets=[{"datetime": t(4), "value": "5 kWh", "x": 1}]),
        "flex-model[0].soc-targets",
    ),
    # time window
    ("resolution-not-dividing", top(resolution="PT7M"), "resolution"),
    ("zero-duration", top(duration="PT0H"), "duration"),
    ("naive-start", top(start="2026-03-02T00:00:00"), "start"),
    (
        "naive-target",
        fm(soc_targets=[{"datetime": "2026-03-02T02:00:00", "value": "5 kWh"}]),
        "flex-model[0].soc-targets",
    ),
    (
        "naive-availability",
        fm(availability=[{"start": "2026-03-02T01:00:00", "end": t(8)}]),
        "flex-model[0].availability[0].start",
    ),
    (
        "availability-off-step",
        fm(availability=[{"start": "2026-03-02T01:05:00+01:00", "end": t(8)}]),
        "flex-model[0].availability[0]",
    ),
    (
        "availability-without-end",
        fm(availability=[{"start": t(4)}]),
        "flex-model[0].availability[0]",
    ),
    (
        "power-fixed-value-and-min",
        fm(power_fixed=[{"start": t(0), "duration": "PT1H", "value": "1 kW", "min": "0 kW"}]),
        "flex-model[0].power-fixed[0]",
    ),
    (
        "power-fixed-min-above-max",
        fm(power_fixed=[{"start": t(0), "duration": "PT1H", "min": "3 kW", "max": "1 kW"}]),
        "flex-model[0].power-fixed[0]",
    ),
    # series of the wrong length / shape
    (
        "price-too-short",
        ctx(consumption_price={"values": [1, 2, 3], "unit": "EUR/MWh"}),
        "flex-context.consumption-price",
    ),
    (
        "price-too-long",
        ctx(production_price={"values": [1.0] * 97, "unit": "EUR/MWh"}),
        "flex-context.production-price",
    ),
    (
        "price-segments-leave-gaps",
        ctx(consumption_price=[{"start": t(0), "duration": "PT1H", "value": "50 EUR/MWh"}]),
        "flex-context.consumption-price",
    ),
    (
        "inflexible-too-short",
        ctx(inflexible_devices={"house": {"values": [1, 2], "unit": "kW"}}),
        "flex-context.inflexible-devices.house",
    ),
    (
        "usage-item-too-short",
        fm(soc_usage=["1 kW", {"values": [1, 2], "unit": "kW"}]),
        "flex-model[0].soc-usage[1]",
    ),
    (
        "efficiency-series-too-short",
        fm(charging_efficiency={"values": [0.9], "unit": ""}),
        "flex-model[0].charging-efficiency",
    ),
    (
        "own-price-too-short",
        fm(consumption_price={"values": [1.0], "unit": "EUR/MWh"}),
        "flex-model[0].consumption-price",
    ),
    (
        "segment-off-step",
        ctx(
            site_power_capacity=[
                {"start": "2026-03-02T01:05:00+01:00", "duration": "PT1H", "value": "5 kW"}
            ]
        ),
        "flex-context.site-power-capacity[0]",
    ),
    # unknown fields and types
    ("unknown-flex-model-field", fm(soc_maxx="40 kWh"), "flex-model[0].soc-maxx"),
    ("unknown-flex-context-field", ctx(site_capacity="5 kW"), "flex-context.site-capacity"),
    ("unknown-top-level-field", top(horizon="PT24H"), "horizon"),
    (
        "storage-field-on-generation",
        devices({"type": "generation", "production": "1 kW", "soc-max": "1 kWh"}),
        "flex-model[0].soc-max",
    ),
    # efficiencies given twice
    (
        "roundtrip-and-charging",
        fm(roundtrip_efficiency="90%"),
        "flex-model[0].roundtrip-efficiency",
    ),
    # shiftable processes
    (
        "shiftable-without-duration",
        devices({k: v for k, v in SHIFT.items() if k != "duration"}),
        "flex-model[0].duration",
    ),
    (
        "shiftable-duration-not-profile",
        devices({**SHIFT, "power": {"values": [1, 2], "unit": "kW"}}),
        "flex-model[0].duration",
    ),
    (
        "shiftable-duration-off-resolution",
        devices({**SHIFT, "duration": "PT20M"}),
        "flex-model[0].duration",
    ),
    (
        "shiftable-segments",
        devices({**SHIFT, "power": [{"start": t(0), "duration": "PT1H", "value": "1 kW"}]}),
        "flex-model[0].power",
    ),
    (
        "shiftable-latest-end-before-earliest",
        devices({**SHIFT, "earliest-start": t(8), "latest-end": t(4)}),
        "flex-model[0].latest-end",
    ),
    (
        "shiftable-start-off-step",
        devices({**SHIFT, "earliest-start": "2026-03-02T01:05:00+01:00"}),
        "flex-model[0].earliest-start",
    ),
    # the second device is the bad one
    (
        "second-device",
        devices(BATTERY, {**BATTERY, "name": "b2", "soc-max": "x"}),
        "flex-model[1].soc-max",
    ),
]


def issues(request: dict[str, Any]) -> list[Any]:
    with pytest.raises(RequestValidationError) as info:
        SiteProblem(request)
    return info.value.issues


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_request_names_field(make_request, mutate, field):
    request = make_request()
    mutate(request)
    found = issues(request)
    fields = [i.field for i in found]
    assert field in fields, fields
    for issue in found:
        assert issue.field, f"issue without a field: {issue}"
        assert issue.message
    # schedule() (the JSON entry point) reports the same
    with pytest.raises(RequestValidationError) as info:
        schedule(request)
    assert [i.field for i in info.value.issues] == fields


def test_unknown_device_type_names_the_device(make_request):
    request = make_request()
    request["flex-model"]["type"] = "flywheel"
    fields = [i.field for i in issues(request)]
    assert fields in (["flex-model[0]"], ["flex-model[0].type"])


def test_every_problem_is_reported_at_once(make_request):
    request = make_request(
        [{**BATTERY, "soc-max": "x"}, {**BATTERY, "name": "b2", "power-capacity": "-1 kW"}],
        {"consumption-price": {"values": [1, 2], "unit": "EUR/MWh"}},
    )
    fields = {i.field for i in issues(request)}
    assert {"flex-model[0].soc-max"} <= fields
    request = make_request(
        [BATTERY, {**BATTERY, "name": "b2", "power-capacity": "-1 kW"}],
        {"consumption-price": {"values": [1, 2], "unit": "EUR/MWh"}},
    )
    fields = {i.field for i in issues(request)}
    assert {"flex-model[1].power-capacity", "flex-context.consumption-price"} <= fields


def test_not_an_object():
    with pytest.raises(RequestValidationError) as info:
        SiteProblem([1, 2])  # type: ignore[arg-type]
    assert len(info.value.issues) == 1


def test_problem_body_lists_fields(make_request):
    request = make_request()
    request["flex-model"]["soc-max"] = "x"
    with pytest.raises(RequestValidationError) as info:
        SiteProblem(request)
    body = info.value.to_problem()
    assert body["status"] == 422
    assert body["errors"] == [
        {"field": "flex-model[0].soc-max", "message": body["errors"][0]["message"]}
    ]


def test_duplicate_device_names_name_the_flex_model(make_request):
    request = make_request([BATTERY, BATTERY])  # both default to the name "battery"
    found = issues(request)
    assert all(i.field.startswith("flex-model") for i in found), found


def test_duplicate_device_names_are_rejected(make_request):
    request = make_request([{**BATTERY, "name": "a"}, {**BATTERY, "name": "a"}])
    found = issues(request)
    assert any("unique" in i.message for i in found)


@pytest.mark.parametrize("duration", ["PT1H10M", "PT10M"])
def test_default_resolution_must_divide_duration(make_request, duration):
    request = make_request(steps=4, minutes=15)
    request.pop("resolution")
    request["duration"] = duration
    fields = [i.field for i in issues(request)]
    assert "resolution" in fields or "duration" in fields


def test_target_at_start_contradicting_soc_at_start(make_request):
    request = make_request(steps=4, minutes=60)
    request["flex-model"]["soc-targets"] = [{"datetime": t(0), "value": "30 kWh"}]
    with pytest.raises((RequestValidationError, InfeasibleError)):
        SiteProblem(request).solve()
