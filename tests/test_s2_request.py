"""S2 devices inside a request (``{"type": "s2", "messages": [...]}``), through the JSON an S2
resource manager sends: mapped like :mod:`vpp.s2` maps s2-python's objects, scheduled
against the hand-derived optima of tests/test_s2.py, with the control type's instructions in
the schedule as S2 JSON that s2-python parses back; and refused naming the message field."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import ApiHarness, assert_problem, harness
from s2python.frbc import FRBCInstruction
from s2python.ppbc import PPBCScheduleInstruction
from test_s2 import (
    CHARGE,
    DISCHARGE,
    ELECTRIC,
    HOUR,
    IDLE,
    START,
    STATUS,
    frbc_description,
    frbc_mode,
    hours,
)

from actors.job_service import execute_job
from store import repository as repo
from vpp.errors import RequestValidationError
from vpp.site import schedule


def _request(device: dict[str, Any], prices: list[float]) -> dict[str, Any]:
    return {
        "start": START.isoformat(),
        "duration": "PT4H",
        "resolution": "PT1H",
        "flex-model": [device],
        "flex-context": {"consumption-price": {"values": prices, "unit": "EUR/MWh"}},
    }


def _frbc() -> tuple[Any, dict[str, Any]]:
    modes = [frbc_mode(*IDLE), frbc_mode(*CHARGE), frbc_mode(*DISCHARGE)]
    description = frbc_description(modes)
    device = {
        "type": "s2",
        "name": "home-battery",
        "messages": [description.to_json_dict(), STATUS.to_json_dict()],
    }
    return description, device


def _ppbc() -> tuple[Any, dict[str, Any]]:
    from s2python.common import Duration, PowerForecastValue
    from s2python.ppbc import (
        PPBCPowerProfileDefinition,
        PPBCPowerSequence,
        PPBCPowerSequenceContainer,
        PPBCPowerSequenceElement,
    )

    elements = [
        PPBCPowerSequenceElement(
            duration=hours(1),
            power_values=[PowerForecastValue(value_expected=w, commodity_quantity=ELECTRIC)],
        )
        for w in (3000.0, 1000.0)
    ]
    sequence = PPBCPowerSequence(
        id=uuid.uuid4(),
        elements=elements,
        is_interruptible=False,
        max_pause_before=Duration.from_milliseconds(0),
        abnormal_condition_only=False,
    )
    container = PPBCPowerSequenceContainer(id=uuid.uuid4(), power_sequences=[sequence])
    definition = PPBCPowerProfileDefinition(
        message_id=uuid.uuid4(),
        id=uuid.uuid4(),
        start_time=START,
        end_time=START + 4 * HOUR,
        power_sequences_containers=[container],
    )
    return definition, {"type": "s2", "messages": [definition.to_json_dict()]}


def _powers(result: dict[str, Any], i: int = 0) -> list[float]:
    return [round(v, 6) for v in result["devices"][i]["power"]["values"]]


def test_an_frbc_device_is_scheduled_and_instructed_in_s2_json() -> None:
    description, device = _frbc()
    result = schedule(_request(device, [10, 10, 100, 100]))
    entry = result["devices"][0]
    assert (entry["name"], entry["type"]) == ("home-battery", "storage")
    assert _powers(result) == [5, 5, -5, -5]  # tests/test_s2.py's hand-derived optimum
    instructions = [FRBCInstruction.model_validate(i) for i in entry["s2-instructions"]]
    modes = description.actuators[0].operation_modes
    assert [(i.operation_mode, i.execution_time) for i in instructions] == [
        (modes[1].id, START),
        (modes[2].id, START + 2 * HOUR),
    ]


def test_a_ppbc_device_next_to_an_ordinary_one() -> None:
    definition, device = _ppbc()
    battery = {"soc-at-start": "0 kWh", "soc-max": "1 kWh", "power-capacity": "1 kW"}
    result = schedule(_request(device, [100, 10, 10, 100]))
    assert _powers(result) == [0, 3, 1, 0]  # start 01:00: 3*10 + 1*10 EUR/MWh*kWh
    (instruction,) = [
        PPBCScheduleInstruction.model_validate(i) for i in result["devices"][0]["s2-instructions"]
    ]
    assert instruction.execution_time == START + HOUR
    assert instruction.power_profile_id == definition.id
    both = _request(device, [100, 10, 10, 100])
    both["flex-model"].append({"name": "battery", **battery})
    result = schedule(both)
    assert [d["name"] for d in result["devices"]] == ["ppbc", "battery"]
    assert "s2-instructions" not in result["devices"][1]


def _issues(request: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(RequestValidationError) as err:
        schedule(request)
    return [(i.field, i.message) for i in err.value.issues]


def test_bad_s2_devices_are_refused_naming_the_message_field() -> None:
    _, device = _frbc()
    unknown = copy.deepcopy(device)
    unknown["messages"][1]["message_type"] = "FRBC.Nonsense"
    [(field, message)] = _issues(_request(unknown, [1, 1, 1, 1]))
    assert field == "flex-model[0].messages[1].message_type"
    assert "not an S2 message type" in message

    missing = copy.deepcopy(device)
    missing["messages"].pop(1)
    [(field, message)] = _issues(_request(missing, [1, 1, 1, 1]))
    assert (field, message) == ("flex-model[0].messages", "FRBC needs FRBC.StorageStatus")

    _, ppbc = _ppbc()
    mixed = copy.deepcopy(device)
    mixed["messages"] += ppbc["messages"]
    [(field, message)] = _issues(_request(mixed, [1, 1, 1, 1]))
    assert field == "flex-model[0].messages" and "no one S2 control type" in message

    invalid = copy.deepcopy(device)
    del invalid["messages"][0]["storage"]
    fields = [f for f, _ in _issues(_request(invalid, [1, 1, 1, 1]))]
    assert fields == ["flex-model[0].messages[0].storage"]

    for bad, field in (
        ({**device, "messages": []}, "flex-model[0].messages"),
        ({**device, "colour": "red"}, "flex-model[0].colour"),
        ({**device, "name": 3}, "flex-model[0].name"),
    ):
        assert [f for f, _ in _issues(_request(bad, [1, 1, 1, 1]))] == [field]


def test_what_the_mapping_cannot_express_names_the_s2_field() -> None:
    request = _request({}, [1, 1, 1, 1])
    request["resolution"] = "PT15M"
    request["duration"] = "PT1H"
    _, ppbc = _ppbc()  # its 1 h elements fit a 15-min grid; its end (04:00) does not
    request["flex-model"] = [ppbc]
    [(field, message)] = _issues(request)
    assert field == "flex-model[0].messages[0].end_time"
    assert "not an instant of the schedule" in message


def test_a_bad_window_is_named_before_any_s2_mapping() -> None:
    _, device = _frbc()
    request = _request(device, [1, 1, 1, 1])
    request["duration"] = "soon"
    assert [f for f, _ in _issues(request)] == ["duration"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    with harness("sqlite", Path(tmp_path_factory.mktemp("s2-request"))) as h:
        yield h


def test_the_api_takes_an_s2_device_and_the_job_instructs_it(api: ApiHarness) -> None:
    _, device = _frbc()
    body = _request(device, [10, 10, 100, 100])
    response = api.http.post("/api/v1/scheduling-job/storage", json=body, headers=api.admin)
    assert response.status_code < 300, response.text
    job_id = response.json()["job"]
    sessions = api.app.state.sessions
    with sessions.begin() as session:
        repo.set_job_status(session, job_id, "running")
    assert execute_job(sessions, job_id) == "finished"
    with sessions.begin() as session:
        result = repo.get_job(session, job_id).result
    assert result["devices"][0]["s2-instructions"][0]["message_type"] == "FRBC.Instruction"
    bad = copy.deepcopy(body)
    bad["flex-model"][0]["messages"][0]["message_type"] = "nope"
    response = api.http.post("/api/v1/scheduling-job/storage", json=bad, headers=api.admin)
    assert_problem(response, 422, "flex-model[0].messages[0].message_type")


def test_a_portfolio_takes_s2_devices_and_instructs_them() -> None:
    """The same portfolio with the FRBC battery given as S2 messages or as the storage it maps
    onto: the same optimum, centralised and by ADMM, and the S2 site's entry instructed."""
    from vpp import s2
    from vpp.admm import AdmmSettings, LocalPool, solve_portfolio_admm
    from vpp.portfolio import (
        CentralisedPortfolio,
        build_sites,
        parse_portfolio,
        price_scale,
        resolve_target,
    )

    description, device = _frbc()
    native = s2.frbc_device(description, STATUS, s2.S2Grid(START, HOUR, 4), name="home-battery")
    house = {"name": "house", "type": "inflexible", "power": "1 kW"}

    def portfolio(battery: dict[str, Any]) -> dict[str, Any]:
        single = _request(battery, [10, 10, 100, 100])
        return {
            **{k: single[k] for k in ("start", "duration", "resolution", "flex-context")},
            "sites": [
                {"id": "a", "flex-model": [battery]},
                {"id": "b", "flex-model": [house]},
            ],
            "target": {"type": "congestion", "max-consumption": "5 kW"},
        }

    with_s2, plain = parse_portfolio(portfolio(device)), parse_portfolio(portfolio(native))
    central = CentralisedPortfolio(with_s2).solve().to_json()
    reference = CentralisedPortfolio(plain).solve().to_json()
    assert central["portfolio"]["cost"]["value"] == pytest.approx(
        reference["portfolio"]["cost"]["value"], abs=1e-9
    )
    (site_a,) = [s for s in central["sites"] if s["id"] == "a"]
    assert site_a["devices"][0]["s2-instructions"][0]["message_type"] == "FRBC.Instruction"
    pool = LocalPool([s.id for s in with_s2.sites], build_sites(with_s2))
    admm = solve_portfolio_admm(
        with_s2, pool, resolve_target(with_s2), price_scale(with_s2), AdmmSettings()
    ).to_json()
    assert admm["portfolio"]["cost"]["value"] == pytest.approx(
        reference["portfolio"]["cost"]["value"], rel=2e-3
    )
    (site_a,) = [s for s in admm["sites"] if s["id"] == "a"]
    assert "s2-instructions" in site_a["devices"][0]
    bad = portfolio({**device, "messages": []})
    with pytest.raises(RequestValidationError) as err:
        parse_portfolio(bad)
    assert [i.field for i in err.value.issues] == ["sites[0].flex-model[0].messages"]
