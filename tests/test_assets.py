"""The asset registry (vpp/assets): one table of device kinds from which the request union,
``DEVICE_TYPES`` and the site builder derive; a kind registered in-process (the worked
example of docs/design.md, run from the doc itself) is schedulable and gone afterwards.
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
from api_harness import ApiHarness, assert_problem, harness

from vpp import assets, request
from vpp.assets import generation, heat, inflexible, modes, shiftable, storage
from vpp.errors import InfeasibleError, RequestValidationError
from vpp.site import SiteProblem, schedule

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_NAMES = ("storage", "heat", "shiftable", "generation", "inflexible", "modes")


def _doc_example() -> str:
    """The python block of docs/design.md's "How to add an asset kind"."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("## How to add an asset kind", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1
    return str(blocks[0])


@pytest.fixture
def ev_module() -> Iterator[types.ModuleType]:
    """The doc's EV charger as a module (pydantic resolves its annotations there)."""
    name = "vpp_doc_ev_charger"
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(_doc_example(), "docs/design.md", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[name]


def _request(devices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "start": "2026-03-02T00:00:00+01:00",
        "duration": "PT4H",
        "resolution": "PT1H",
        "flex-model": devices,
        "flex-context": {
            "consumption-price": {"values": [0.30, 0.10, 0.20, 0.05], "unit": "EUR/kWh"}
        },
    }


EV = {"type": "ev-charger", "name": "ev", "energy": "15 kWh", "power-capacity": "10 kW"}


# --------------------------------------------------------------------------- the registry


def test_the_registry_lists_the_six_kinds_in_order() -> None:
    assert assets.names() == BUILTIN_NAMES
    assert assets.kinds() == assets.BUILTIN
    assert [k.spec for k in assets.kinds()] == [
        storage.StorageSpec,
        heat.HeatSpec,
        shiftable.ShiftableSpec,
        generation.GenerationSpec,
        inflexible.InflexibleSpec,
        modes.ModesSpec,
    ]
    assert assets.get("heat") is heat.KIND
    assert [f.key for f in assets.get("storage").result_fields] == ["soc"]
    assert [f.key for f in assets.get("heat").result_fields] == ["soc"]
    assert [k.name for k in assets.kinds() if not k.result_fields] == [
        "shiftable",
        "generation",
        "inflexible",
    ]
    with pytest.raises(assets.UnknownAssetKindError):
        assets.get("nuclear")


def test_the_request_union_and_device_types_derive_from_the_registry() -> None:
    assert assets.names() == request.DEVICE_TYPES
    union, discriminator = get_args(request.DeviceSpecs)
    assert get_args(union) == tuple(k.spec for k in assets.kinds())
    assert discriminator.discriminator == "type"
    for kind in assets.kinds():
        assert kind.spec.model_fields["type"].annotation == Literal[kind.name]


def test_an_unknown_type_names_the_device_and_the_registered_kinds() -> None:
    raw = _request([{"type": "nuclear", "name": "n"}])
    with pytest.raises(RequestValidationError) as err:
        request.parse_request(raw)
    [issue] = err.value.issues
    assert issue.field == "flex-model[0]"
    assert issue.message == (
        "Input tag 'nuclear' found using 'type' does not match any of the expected tags: "
        "'storage', 'heat', 'shiftable', 'generation', 'inflexible', 'modes'"
    )


def test_register_refuses_taken_long_or_mismatched_names(ev_module: types.ModuleType) -> None:
    kind: assets.AssetKind[Any, Any] = ev_module.KIND
    with pytest.raises(ValueError, match="registered already"):
        assets.register(storage.KIND)
    with pytest.raises(TypeError, match="Literal"):
        assets.register(
            assets.AssetKind("ev", kind.spec, kind.resolve, kind.formulate)
        )
    with pytest.raises(ValueError, match="1 to 16 characters"):
        assets.register(
            assets.AssetKind("x" * 17, kind.spec, kind.resolve, kind.formulate)
        )
    clash = assets.ResultField("power", "kW", lambda dv, x: None)
    with pytest.raises(ValueError, match="reuse the keys"):
        assets.register(
            assets.AssetKind(kind.name, kind.spec, kind.resolve, kind.formulate, None, (clash,))
        )
    with pytest.raises(assets.UnknownAssetKindError):
        assets.unregister("ev-charger")
    assert assets.names() == BUILTIN_NAMES


# --------------------------------------------------------------------------- a new kind


def test_the_doc_example_kind_is_schedulable_while_registered(
    ev_module: types.ModuleType,
) -> None:
    """15 kWh at up to 10 kW over hours priced 0.30, 0.10, 0.20, 0.05 EUR/kWh: by hand,
    10 kW in the cheapest (last) hour and the remaining 5 kW in the next cheapest (second),
    1.00 EUR."""
    raw = _request([EV])
    with assets.registered(ev_module.KIND):
        assert assets.names() == (*BUILTIN_NAMES, "ev-charger")
        assert assets.names() == request.DEVICE_TYPES
        result = schedule(raw)
        with pytest.raises(InfeasibleError) as err:
            SiteProblem(_request([EV | {"energy": "45 kWh"}]))
    [device] = result["devices"]
    assert device["name"] == "ev" and device["type"] == "ev-charger"
    assert device["power"] == {"values": [0.0, 5.0, 0.0, 10.0], "unit": "kW"}
    assert device["charged"] == {"values": [0.0, 0.0, 5.0, 5.0, 15.0], "unit": "kWh"}
    assert list(device) == ["name", "type", "power", "charged"]
    assert result["site"]["power"]["values"] == [0.0, 5.0, 0.0, 10.0]
    assert result["cost"] == {"value": 1.0, "unit": "EUR"}
    assert err.value.constraint == "ev-energy"
    assert err.value.device == "ev"
    # unregistered again: the type is unknown, to requests and to the site builder
    assert assets.names() == BUILTIN_NAMES
    assert "ev-charger" not in request.DEVICE_TYPES
    with pytest.raises(RequestValidationError) as unknown:
        schedule(raw)
    assert [i.field for i in unknown.value.issues] == ["flex-model[0]"]


def test_a_new_kind_reports_its_field_errors_by_path(ev_module: types.ModuleType) -> None:
    battery = {
        "type": "storage",
        "soc-at-start": "1 kWh",
        "soc-max": "2 kWh",
        "power-capacity": "1 kW",
    }
    raw = _request([battery, EV | {"energy": "-1 kWh", "power-capacity": "x"}])
    with assets.registered(ev_module.KIND), pytest.raises(RequestValidationError) as err:
        request.parse_request(raw)
    assert [i.field for i in err.value.issues] == ["flex-model[1].power-capacity"]
    with assets.registered(ev_module.KIND), pytest.raises(RequestValidationError) as err:
        SiteProblem(_request([battery, EV | {"energy": "-1 kWh"}]))
    assert [(i.field, i.message) for i in err.value.issues] == [
        ("flex-model[1].energy", "must not be negative")
    ]


def test_builtin_result_fields_keep_the_schedule_json() -> None:
    """A 10 kWh, 10 kW lossless battery, empty at the start and full at the end, one-hour
    steps at 0.30, 0.10, 0.20, 0.05 EUR/kWh (selling at the same price): by hand it buys in
    the second hour, sells in the third and buys in the last, 1.00 - 2.00 + 0.50 EUR."""
    battery = {
        "type": "storage",
        "name": "b",
        "soc-at-start": "0 kWh",
        "soc-max": "10 kWh",
        "power-capacity": "10 kW",
        "soc-targets": [{"datetime": "2026-03-02T04:00:00+01:00", "value": "10 kWh"}],
    }
    result = schedule(_request([battery]))
    [device] = result["devices"]
    assert list(device) == ["name", "type", "power", "soc"]
    assert device["power"] == {"values": [0.0, 10.0, -10.0, 10.0], "unit": "kW"}
    assert device["soc"] == {"values": [0.0, 0.0, 10.0, 0.0, 10.0], "unit": "kWh"}
    assert result["cost"] == {"value": -0.5, "unit": "EUR"}


# --------------------------------------------------------------------------- through the API


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    with harness("sqlite", tmp_path_factory.mktemp("assets")) as h:
        yield h


def test_the_api_refuses_an_unknown_kind_before_the_store(api: ApiHarness) -> None:
    """The store no longer knows the kinds (migration 0008): the request's validation does,
    for a stored site and for a job alike."""
    site = {"name": "reactor", "flex-model": [{"type": "nuclear", "name": "n"}]}
    body = assert_problem(
        api.http.post("/api/v1/sites", json=site, headers=api.admin), 422, "flex-model[0]"
    )
    assert "'nuclear'" in json.dumps(body)
    job = _request([{"type": "nuclear", "name": "n"}])
    assert_problem(
        api.http.post("/api/v1/scheduling-job/storage", json=job, headers=api.admin),
        422,
        "flex-model[0]",
    )
    sites = api.http.get("/api/v1/sites", headers=api.admin).json()
    assert "reactor" not in [s["name"] for s in sites]


def test_a_registered_kind_is_stored_without_a_migration(
    api: ApiHarness, ev_module: types.ModuleType
) -> None:
    site = {"name": "garage", "flex-model": [EV]}
    with assets.registered(ev_module.KIND):
        response = api.http.post("/api/v1/sites", json=site, headers=api.admin)
    assert response.status_code == 201, response.text
    [device] = response.json()["flex-model"]
    assert (device["name"], device["type"]) == ("ev", "ev-charger")
