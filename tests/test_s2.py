"""S2 devices through s2-python: messages built with s2-python's own classes are mapped onto
a flex-model device, scheduled against hand-derived optima, and the schedule is emitted as
the control type's instructions, which must survive s2-python's own JSON round trip."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from s2python.common import (
    Commodity,
    CommodityQuantity,
    Duration,
    NumberRange,
    PowerForecast,
    PowerForecastElement,
    PowerForecastValue,
    PowerRange,
    Timer,
    Transition,
)
from s2python.ddbc import (
    DDBCActuatorDescription,
    DDBCAverageDemandRateForecast,
    DDBCAverageDemandRateForecastElement,
    DDBCOperationMode,
    DDBCSystemDescription,
)
from s2python.frbc import (
    FRBCActuatorDescription,
    FRBCFillLevelTargetProfile,
    FRBCFillLevelTargetProfileElement,
    FRBCLeakageBehaviour,
    FRBCLeakageBehaviourElement,
    FRBCOperationMode,
    FRBCOperationModeElement,
    FRBCStorageDescription,
    FRBCStorageStatus,
    FRBCSystemDescription,
    FRBCUsageForecast,
    FRBCUsageForecastElement,
)
from s2python.ombc import OMBCInstruction, OMBCOperationMode, OMBCStatus, OMBCSystemDescription
from s2python.pebc import (
    PEBCAllowedLimitRange,
    PEBCPowerConstraints,
    PEBCPowerEnvelopeConsequenceType,
    PEBCPowerEnvelopeLimitType,
)
from s2python.ppbc import (
    PPBCPowerProfileDefinition,
    PPBCPowerSequence,
    PPBCPowerSequenceContainer,
    PPBCPowerSequenceElement,
)
from test_operation_modes import Ref, brute_force

from vpp import s2
from vpp.errors import InfeasibleError, RequestValidationError
from vpp.site import SiteProblem

START = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
GRID = s2.S2Grid(START, HOUR, 4)
ELECTRIC = CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC


def solve(device: dict[str, Any], prices: list[float]) -> dict[str, Any]:
    request = {
        "start": START.isoformat(),
        "duration": "PT4H",
        "resolution": "PT1H",
        "flex-model": [device],
        "flex-context": {"consumption-price": {"values": prices, "unit": "EUR/MWh"}},
    }
    entry: dict[str, Any] = SiteProblem(request).solve().to_json()["devices"][0]
    return entry


def powers(entry: dict[str, Any]) -> list[float]:
    return [round(v, 6) for v in entry["power"]["values"]]


def round_trip(messages: list[Any]) -> None:
    """Each message survives s2-python's own JSON: serialised, parsed back by its class
    (which validates it as S2) and serialised again to the same text."""
    for message in messages:
        back = type(message).from_json(message.to_json())
        assert back.to_json() == message.to_json()
        assert back.to_json_dict()["message_type"] == message.message_type


def hours(n: float) -> Duration:
    return Duration.from_timedelta(n * HOUR)


# -- FRBC -------------------------------------------------------------------------------


def frbc_mode(power: tuple[float, float], rate: tuple[float, float]) -> FRBCOperationMode:
    element = FRBCOperationModeElement(
        fill_level_range=NumberRange(start_of_range=0, end_of_range=100),
        fill_rate=NumberRange(start_of_range=rate[0], end_of_range=rate[1]),
        power_ranges=[
            PowerRange(start_of_range=power[0], end_of_range=power[1], commodity_quantity=ELECTRIC)
        ],
    )
    return FRBCOperationMode(id=uuid.uuid4(), elements=[element], abnormal_condition_only=False)


def frbc_description(modes: list[FRBCOperationMode]) -> FRBCSystemDescription:
    transitions = [
        Transition(
            id=uuid.uuid4(),
            from_=a.id,
            to=b.id,
            start_timers=[],
            blocking_timers=[],
            abnormal_condition_only=False,
        )
        for a in modes
        for b in modes
        if a is not b
    ]
    actuator = FRBCActuatorDescription(
        id=uuid.uuid4(),
        supported_commodities=[Commodity.ELECTRICITY],
        operation_modes=modes,
        transitions=transitions,
        timers=[],
    )
    return FRBCSystemDescription(
        message_id=uuid.uuid4(),
        valid_from=START,
        actuators=[actuator],
        storage=FRBCStorageDescription(
            provides_leakage_behaviour=False,
            provides_fill_level_target_profile=True,
            provides_usage_forecast=False,
            fill_level_range=NumberRange(start_of_range=0, end_of_range=100),
        ),
    )


# a 10 kWh battery in %: 5 kW fills (or drains) 50 %/h, so 10 % is one kWh
CHARGE = (0.0, 5000.0), (0.0, 50 / 3600)
DISCHARGE = (-5000.0, 0.0), (-50 / 3600, 0.0)
IDLE = (0.0, 0.0), (0.0, 0.0)
STATUS = FRBCStorageStatus(message_id=uuid.uuid4(), present_fill_level=0.0)


def test_frbc_maps_onto_a_storage_that_charges_cheap_and_discharges_dear() -> None:
    modes = [frbc_mode(*IDLE), frbc_mode(*CHARGE), frbc_mode(*DISCHARGE)]
    description = frbc_description(modes)
    device = s2.frbc_device(description, STATUS, GRID)
    assert device["soc-max"] == "10.0 kWh"
    assert device["consumption-capacity"] == device["production-capacity"] == "5.0 kW"
    entry = solve(device, [10, 10, 100, 100])
    assert powers(entry) == [5, 5, -5, -5]
    assert [round(v, 6) for v in entry["soc"]["values"]] == [0, 5, 10, 5, 0]
    instructions = s2.frbc_instructions(description, entry, GRID)
    assert [
        (i.operation_mode, i.operation_mode_factor, i.execution_time) for i in instructions
    ] == [
        (modes[1].id, 1.0, START),
        (modes[2].id, 0.0, START + 2 * HOUR),
    ]
    assert all(i.actuator_id == description.actuators[0].id for i in instructions)
    round_trip(instructions)


def test_frbc_fill_level_target_profile_keeps_half_full_in_the_last_hour() -> None:
    modes = [frbc_mode(*IDLE), frbc_mode(*CHARGE), frbc_mode(*DISCHARGE)]
    description = frbc_description(modes)
    profile = FRBCFillLevelTargetProfile(
        message_id=uuid.uuid4(),
        start_time=START,
        elements=[
            FRBCFillLevelTargetProfileElement(
                duration=hours(3), fill_level_range=NumberRange(start_of_range=0, end_of_range=100)
            ),
            FRBCFillLevelTargetProfileElement(
                duration=hours(1), fill_level_range=NumberRange(start_of_range=50, end_of_range=100)
            ),
        ],
    )
    device = s2.frbc_device(description, STATUS, GRID, fill_level_target_profile=profile)
    entry = solve(device, [10, 10, 100, 100])
    # at least 5 kWh at 03:00 and 04:00: only one of the two dear hours may discharge; both
    # cost the same, and prefer-charging-sooner (on by default) keeps it full longer
    assert powers(entry) == [5, 5, 0, -5]
    instructions = s2.frbc_instructions(description, entry, GRID)
    assert [i.operation_mode for i in instructions] == [modes[1].id, modes[0].id, modes[2].id]
    round_trip(instructions)


def test_frbc_disjoint_power_ranges_are_refused_naming_the_field() -> None:
    # charging only between 2 and 5 kW: a gap between idle/discharge and charge
    modes = [frbc_mode((2000.0, 5000.0), (20 / 3600, 50 / 3600)), frbc_mode(*DISCHARGE)]
    with pytest.raises(s2.S2MappingError, match=r"power_ranges.*gap"):
        s2.frbc_device(frbc_description(modes), STATUS, GRID)


def test_frbc_usage_forecast_and_leakage_become_soc_usage() -> None:
    description = frbc_description([frbc_mode(*IDLE), frbc_mode(*CHARGE)])
    usage = FRBCUsageForecast(
        message_id=uuid.uuid4(),
        start_time=START - HOUR,  # one elapsed hour is dropped
        elements=[
            FRBCUsageForecastElement(duration=hours(1), usage_rate_expected=r / 3600)
            for r in (99, 10, 20, 0, 30)  # % per hour
        ],
    )
    leakage = FRBCLeakageBehaviour(
        message_id=uuid.uuid4(),
        valid_from=START,
        elements=[
            FRBCLeakageBehaviourElement(
                fill_level_range=NumberRange(start_of_range=0, end_of_range=100),
                leakage_rate=1 / 3600,
            )
        ],
    )
    device = s2.frbc_device(
        description, STATUS, GRID, usage_forecast=usage, leakage_behaviour=leakage
    )
    # 10 % is one kWh: usage 10, 20, 0, 30 %/h plus 1 %/h leakage
    assert device["soc-usage"] == {"values": [1.1, 2.1, 0.1, 3.1], "unit": "kW"}
    assert device["production-capacity"] == "0.0 kW"  # no discharging mode


def test_frbc_timers_are_refused_until_operation_modes_are_modelled() -> None:
    description = frbc_description([frbc_mode(*IDLE), frbc_mode(*CHARGE)])
    actuator = description.actuators[0]
    actuator.timers = [Timer(id=uuid.uuid4(), duration=hours(1))]
    with pytest.raises(s2.S2MappingError, match=r"actuators\[0\]\.timers.*issue 13 item 6"):
        s2.frbc_device(description, STATUS, GRID)


# -- PPBC -------------------------------------------------------------------------------


def test_ppbc_maps_onto_a_shiftable_process_started_in_the_cheap_hours() -> None:
    sequence = PPBCPowerSequence(
        id=uuid.uuid4(),
        elements=[
            PPBCPowerSequenceElement(
                duration=hours(1),
                power_values=[PowerForecastValue(value_expected=w, commodity_quantity=ELECTRIC)],
            )
            for w in (3000.0, 1000.0)
        ],
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
    device = s2.ppbc_device(definition, GRID)
    assert device["power"] == {"values": [3.0, 1.0], "unit": "kW"}
    # start 00:00 costs 3*100+10, 01:00 costs 3*10+10, 02:00 costs 3*10+100 (EUR/MWh * kWh)
    entry = solve(device, [100, 10, 10, 100])
    assert powers(entry) == [0, 3, 1, 0]
    (instruction,) = s2.ppbc_instructions(definition, entry, GRID)
    assert instruction.execution_time == START + HOUR
    assert (instruction.power_profile_id, instruction.sequence_container_id) == (
        definition.id,
        container.id,
    )
    assert instruction.power_sequence_id == sequence.id
    round_trip([instruction])

    two = definition.model_copy(update={"power_sequences_containers": [container, container]})
    with pytest.raises(s2.S2MappingError, match="power_sequences_containers"):
        s2.ppbc_device(two, GRID)


# -- PEBC -------------------------------------------------------------------------------


def test_pebc_maps_onto_curtailable_generation_cut_at_a_negative_price() -> None:
    constraints = PEBCPowerConstraints(
        message_id=uuid.uuid4(),
        id=uuid.uuid4(),
        valid_from=START,
        valid_until=None,
        consequence_type=PEBCPowerEnvelopeConsequenceType.VANISH,
        allowed_limit_ranges=[
            PEBCAllowedLimitRange(
                commodity_quantity=ELECTRIC,
                limit_type=PEBCPowerEnvelopeLimitType.LOWER_LIMIT,
                range_boundary=NumberRange(start_of_range=-4000, end_of_range=0),
                abnormal_condition_only=False,
            ),
            PEBCAllowedLimitRange(
                commodity_quantity=ELECTRIC,
                limit_type=PEBCPowerEnvelopeLimitType.UPPER_LIMIT,
                range_boundary=NumberRange(start_of_range=0, end_of_range=0),
                abnormal_condition_only=False,
            ),
        ],
    )
    forecast = PowerForecast(
        message_id=uuid.uuid4(),
        start_time=START,
        elements=[
            PowerForecastElement(
                duration=hours(4),
                power_values=[
                    PowerForecastValue(value_expected=-4000, commodity_quantity=ELECTRIC)
                ],
            )
        ],
    )
    device = s2.pebc_device(constraints, forecast, GRID)
    assert device["curtailable"] is True
    entry = solve(device, [50, -20, 50, 50])
    assert powers(entry) == [-4, 0, -4, -4]
    (instruction,) = s2.pebc_instructions(constraints, entry, GRID)
    assert instruction.power_constraints_id == constraints.id
    (envelope,) = instruction.power_envelopes
    assert [
        (e.duration.to_timedelta(), e.lower_limit, e.upper_limit)
        for e in envelope.power_envelope_elements
    ] == [(HOUR, -4000.0, 0.0), (HOUR, 0.0, 0.0), (2 * HOUR, -4000.0, 0.0)]
    round_trip([instruction])

    defer = constraints.model_copy(
        update={"consequence_type": PEBCPowerEnvelopeConsequenceType.DEFER}
    )
    with pytest.raises(s2.S2MappingError, match="consequence_type"):
        s2.pebc_device(defer, forecast, GRID)


# -- DDBC -------------------------------------------------------------------------------


def test_ddbc_maps_onto_the_power_that_meets_the_demand() -> None:
    mode_id = uuid.uuid4()  # s2-python 0.11.1 wants both its generated `Id` and its `id`
    mode = DDBCOperationMode(
        Id=str(mode_id),
        id=mode_id,
        power_ranges=[PowerRange(start_of_range=0, end_of_range=3000, commodity_quantity=ELECTRIC)],
        supply_range=[NumberRange(start_of_range=0, end_of_range=6)],
        abnormal_condition_only=False,
    )
    actuator = DDBCActuatorDescription(
        id=uuid.uuid4(),
        supported_commodites=[Commodity.ELECTRICITY],
        operation_modes=[mode],
        transitions=[],
        timers=[],
    )
    description = DDBCSystemDescription(
        message_id=uuid.uuid4(),
        valid_from=START,
        actuators=[actuator],
        present_demand_rate=NumberRange(start_of_range=2, end_of_range=2),
        provides_average_demand_rate_forecast=True,
    )
    forecast = DDBCAverageDemandRateForecast(
        message_id=uuid.uuid4(),
        start_time=START,
        elements=[
            DDBCAverageDemandRateForecastElement(duration=hours(1), demand_rate_expected=d)
            for d in (2, 4, 0, 6)
        ],
    )
    device = s2.ddbc_device(description, forecast, GRID)
    entry = solve(device, [10, 10, 10, 10])
    assert powers(entry) == [1, 2, 0, 3]  # 0.5 kW per unit of supply
    instructions = s2.ddbc_instructions(description, entry, GRID)
    assert [round(i.operation_mode_factor, 6) for i in instructions] == [
        round(1 / 3, 6),
        round(2 / 3, 6),
        0,
        1,
    ]
    assert [i.execution_time for i in instructions] == [START + k * HOUR for k in range(4)]
    round_trip(instructions)


# -- OMBC -------------------------------------------------------------------------------

# a CHP in W: off, or producing 20 to 50 kW (factor 0 at 50 kW, 1 at 20 kW) for 2 EUR/h
OMBC_OFF = OMBCOperationMode(
    id=uuid.uuid4(),
    power_ranges=[PowerRange(start_of_range=0, end_of_range=0, commodity_quantity=ELECTRIC)],
    abnormal_condition_only=False,
)
OMBC_ON = OMBCOperationMode(
    id=uuid.uuid4(),
    power_ranges=[
        PowerRange(start_of_range=-50000, end_of_range=-20000, commodity_quantity=ELECTRIC)
    ],
    running_costs=NumberRange(start_of_range=2 / 3600, end_of_range=2 / 3600),
    abnormal_condition_only=False,
)
MIN_ON = Timer(id=uuid.uuid4(), diagnostic_label="min on", duration=hours(3))
MIN_OFF = Timer(id=uuid.uuid4(), diagnostic_label="min off", duration=hours(1))
OMBC_PRICES = [10.0, 200.0, 10.0, 10.0, 200.0, 10.0]
OMBC_GRID = s2.S2Grid(START, HOUR, 6)


def ombc_description(**start_transition: Any) -> OMBCSystemDescription:
    """Starting costs 5 EUR and holds the CHP on for 3 h (the timer blocks stopping);
    stopping holds it off for 1 h, a step."""
    return OMBCSystemDescription(
        message_id=uuid.uuid4(),
        valid_from=START,
        operation_modes=[OMBC_OFF, OMBC_ON],
        transitions=[
            Transition(
                id=uuid.uuid4(),
                from_=OMBC_OFF.id,
                to=OMBC_ON.id,
                start_timers=[MIN_ON.id],
                blocking_timers=[MIN_OFF.id],
                transition_costs=5.0,
                abnormal_condition_only=False,
            ).model_copy(update=start_transition),
            Transition(
                id=uuid.uuid4(),
                from_=OMBC_ON.id,
                to=OMBC_OFF.id,
                start_timers=[MIN_OFF.id],
                blocking_timers=[MIN_ON.id],
                abnormal_condition_only=False,
            ),
        ],
        timers=[MIN_ON, MIN_OFF],
    )


def solve_ombc(device: dict[str, Any], prices: list[float]) -> dict[str, Any]:
    request = {
        "start": START.isoformat(),
        "duration": f"PT{len(prices)}H",
        "resolution": "PT1H",
        "flex-model": [device],
        "flex-context": {"consumption-price": {"values": prices, "unit": "EUR/MWh"}},
    }
    return SiteProblem(request).solve().to_json()


def test_ombc_maps_onto_modes_whose_timers_hold_the_chp_on_for_three_hours() -> None:
    """The hand-derived optimum of tests/test_operation_modes.py's CHP (min on 3 h, start
    5 EUR, 2 EUR/h): on in hours 1-4 at 50 kW for -8 EUR; instructed off, on at factor 0
    (50 kW), off."""
    description = ombc_description()
    device = s2.ombc_device(description, OMBC_GRID, name="chp")
    assert device["modes"][1] == {
        "name": str(OMBC_ON.id),
        "min-power": "-50.0 kW",
        "max-power": "-20.0 kW",
        "cost": "2.0 EUR/h",
    }
    assert device["transitions"][0]["cost"] == "5.0 EUR"
    result = solve_ombc(device, OMBC_PRICES)
    entry = result["devices"][0]
    assert powers(entry) == [0, -50, -50, -50, -50, 0]
    assert result["cost"]["value"] == pytest.approx(-8.0)
    instructions = s2.ombc_instructions(description, entry, OMBC_GRID)
    assert [(i.operation_mode_id, i.operation_mode_factor) for i in instructions] == [
        (OMBC_OFF.id, 0.0),
        (OMBC_ON.id, 0.0),
        (OMBC_OFF.id, 0.0),
    ]
    assert [i.execution_time for i in instructions] == [START, START + HOUR, START + 5 * HOUR]
    round_trip(instructions)


def test_ombc_status_keeps_the_timer_its_last_start_began() -> None:
    """Started an hour ago: the 3 h timer blocks stopping in hours 0 and 1, though every
    hour loses money (20 kW at -100 EUR/MWh pays 2 EUR, running 2 EUR); factor 1 then."""
    status = OMBCStatus(
        message_id=uuid.uuid4(),
        active_operation_mode_id=str(OMBC_ON.id),
        operation_mode_factor=0.0,
        previous_operation_mode_id=str(OMBC_OFF.id),
        transition_timestamp=START - HOUR,
    )
    description = ombc_description()
    device = s2.ombc_device(description, OMBC_GRID, status=status)
    assert device["initial-mode"] == str(OMBC_ON.id)
    result = solve_ombc(device, [-100.0] * 6)
    entry = result["devices"][0]
    assert powers(entry) == [-20, -20, 0, 0, 0, 0]
    assert result["cost"]["value"] == pytest.approx(8.0)
    instructions = s2.ombc_instructions(description, entry, OMBC_GRID)
    assert [(i.operation_mode_id, i.operation_mode_factor) for i in instructions] == [
        (OMBC_ON.id, 1.0),
        (OMBC_OFF.id, 0.0),
    ]
    round_trip(instructions)
    # without a status the CHP is off: it stays off
    assert (
        powers(solve_ombc(s2.ombc_device(description, OMBC_GRID), [-100.0] * 6)["devices"][0])
        == [0] * 6
    )


def test_ombc_in_a_request_is_scheduled_and_instructed_in_s2_json() -> None:
    description = ombc_description()
    result = solve_ombc(
        {"type": "s2", "name": "chp", "messages": [description.to_json_dict()]}, OMBC_PRICES
    )
    entry = result["devices"][0]
    assert entry["type"] == "modes"
    assert powers(entry) == [0, -50, -50, -50, -50, 0]
    messages = [OMBCInstruction.from_json(json.dumps(m)) for m in entry["s2-instructions"]]
    assert [m.operation_mode_id for m in messages] == [OMBC_OFF.id, OMBC_ON.id, OMBC_OFF.id]
    # with its status (on since an hour ago): held on through hour 1 at a loss, as above
    status = OMBCStatus(
        message_id=uuid.uuid4(),
        active_operation_mode_id=str(OMBC_ON.id),
        operation_mode_factor=1.0,
        previous_operation_mode_id=str(OMBC_OFF.id),
        transition_timestamp=START - HOUR,
    )
    messages_json = [description.to_json_dict(), status.to_json_dict()]
    result = solve_ombc({"type": "s2", "name": "chp", "messages": messages_json}, [-100.0] * 6)
    assert powers(result["devices"][0]) == [-20, -20, 0, 0, 0, 0]
    first = result["devices"][0]["s2-instructions"][0]
    assert first["message_type"] == "OMBC.Instruction"
    assert first["operation_mode_id"] == str(OMBC_ON.id)
    # what the mapping refuses is named by its place in the request
    slow = ombc_description(transition_duration=hours(0.5)).to_json_dict()
    with pytest.raises(RequestValidationError) as info:
        solve_ombc({"type": "s2", "messages": [status.to_json_dict(), slow]}, OMBC_PRICES)
    assert [i.field for i in info.value.issues] == [
        "flex-model[0].messages[1].transitions[0].transition_duration"
    ]


def test_what_ombc_cannot_express_is_refused_naming_the_field() -> None:
    slow = ombc_description(transition_duration=hours(0.5))
    with pytest.raises(s2.S2MappingError) as info:
        s2.ombc_device(slow, OMBC_GRID)
    assert info.value.field == "OMBC.SystemDescription.transitions[0].transition_duration"
    uncertain = ombc_description().model_copy(
        update={
            "operation_modes": [
                OMBC_OFF,
                OMBC_ON.model_copy(
                    update={"running_costs": NumberRange(start_of_range=0, end_of_range=1)}
                ),
            ]
        }
    )
    with pytest.raises(s2.S2MappingError) as info:
        s2.ombc_device(uncertain, OMBC_GRID)
    assert info.value.field == "OMBC.SystemDescription.operation_modes[1].running_costs"
    unknown_timer = ombc_description(start_timers=[uuid.uuid4()])
    with pytest.raises(s2.S2MappingError) as info:
        s2.ombc_device(unknown_timer, OMBC_GRID)
    assert info.value.field == "OMBC.SystemDescription.transitions[0].start_timers"
    for status, field in (
        (
            OMBCStatus(
                message_id=uuid.uuid4(),
                active_operation_mode_id=str(uuid.uuid4()),
                operation_mode_factor=0.0,
            ),
            "OMBC.Status.active_operation_mode_id",
        ),
        (
            OMBCStatus(
                message_id=uuid.uuid4(),
                active_operation_mode_id=str(OMBC_ON.id),
                operation_mode_factor=0.0,
                previous_operation_mode_id=str(OMBC_OFF.id),
            ),
            "OMBC.Status.transition_timestamp",
        ),
        (
            OMBCStatus(
                message_id=uuid.uuid4(),
                active_operation_mode_id=str(OMBC_ON.id),
                operation_mode_factor=0.0,
                previous_operation_mode_id=str(OMBC_ON.id),
                transition_timestamp=START,
            ),
            "OMBC.Status.previous_operation_mode_id",
        ),
    ):
        with pytest.raises(s2.S2MappingError) as info:
            s2.ombc_device(ombc_description(), OMBC_GRID, status=status)
        assert info.value.field == field


@st.composite
def ombc_cases(draw: st.DrawFn) -> tuple[OMBCSystemDescription, OMBCStatus | None, Ref]:
    """A random OMBC device and the same device in the brute force's terms
    (tests/test_operation_modes.py's ``Ref``)."""
    count = draw(st.integers(2, 3))
    ranges = [(0.0, 0.0) if draw(st.booleans()) else (1.0, 1.0)]
    for _ in range(count - 1):
        a = draw(st.sampled_from([-6.0, -3.0, 2.0, 4.0]))
        ranges.append((a, a + draw(st.sampled_from([0.0, 2.0]))))
    run = [draw(st.sampled_from([0.0, 1.0, 0.5])) for _ in range(count)]
    modes = [
        OMBCOperationMode(
            id=uuid.uuid4(),
            power_ranges=[
                PowerRange(
                    start_of_range=a * 1000, end_of_range=b * 1000, commodity_quantity=ELECTRIC
                )
            ],
            running_costs=NumberRange(start_of_range=r / 3600, end_of_range=r / 3600)
            if r
            else None,
            abnormal_condition_only=False,
        )
        for (a, b), r in zip(ranges, run, strict=True)
    ]
    arcs = [(a, b) for a in range(count) for b in range(count) if a != b]
    kept = draw(st.lists(st.sampled_from(arcs), unique=True, min_size=1))
    costs = {arc: draw(st.sampled_from([0.0, 0.5, 2.0])) for arc in kept}
    timer = Timer(id=uuid.uuid4(), duration=hours(draw(st.integers(1, 3))))
    starts = draw(st.lists(st.sampled_from(kept), unique=True, max_size=2))
    blocks = draw(st.lists(st.sampled_from(kept), unique=True, max_size=2))
    transitions = [
        Transition(
            id=uuid.uuid4(),
            from_=modes[a].id,
            to=modes[b].id,
            start_timers=[timer.id] if (a, b) in starts else [],
            blocking_timers=[timer.id] if (a, b) in blocks else [],
            transition_costs=costs[(a, b)] or None,
            abnormal_condition_only=False,
        )
        for a, b in kept
    ]
    description = OMBCSystemDescription(
        message_id=uuid.uuid4(),
        valid_from=START,
        operation_modes=modes,
        transitions=transitions,
        timers=[timer],
    )
    steps = round(timer.duration.to_timedelta() / HOUR)
    ref = Ref([a for a, _ in ranges], [b for _, b in ranges], run, costs)
    status = None
    if draw(st.booleans()):
        previous, active = draw(st.sampled_from(kept))
        ago = draw(st.integers(0, 3))
        status = OMBCStatus(
            message_id=uuid.uuid4(),
            active_operation_mode_id=str(modes[active].id),
            operation_mode_factor=0.0,
            previous_operation_mode_id=str(modes[previous].id),
            transition_timestamp=START - ago * HOUR,
        )
        ref.initial = active
        running = max(0, steps - ago) if (previous, active) in starts else 0
        ref.timers = [(steps, starts, blocks, running)]
    else:
        ref.timers = [(steps, starts, blocks, 0)]
    return description, status, ref


@settings(max_examples=40, deadline=None)
@given(
    case=ombc_cases(),
    prices=st.lists(st.sampled_from([-300.0, 0.0, 80.0, 400.0]), min_size=4, max_size=4),
)
def test_ombc_devices_cost_the_brute_force_optimum(case: Any, prices: list[float]) -> None:
    """Random OMBC devices (modes, transitions with costs, a timer, a status or none): the
    mapped device's optimum is the brute force's over every mode sequence, and the emitted
    instructions replay the schedule's modes."""
    description, status, ref = case
    best = brute_force(ref, prices)
    device = s2.ombc_device(description, GRID, status=status)
    if math.isinf(best):
        with pytest.raises(InfeasibleError):
            solve(device, prices)
        return
    request = {
        "start": START.isoformat(),
        "duration": "PT4H",
        "resolution": "PT1H",
        "flex-model": [device],
        "flex-context": {"consumption-price": {"values": prices, "unit": "EUR/MWh"}},
    }
    result = SiteProblem(request).solve().to_json()
    assert result["cost"]["value"] == pytest.approx(best, abs=1e-6)
    entry = result["devices"][0]
    instructions = s2.ombc_instructions(description, entry, GRID)
    ids = [m.id for m in description.operation_modes]
    modes = [ids[round(k)] for k in entry["operation-mode"]["values"]]
    replay = []
    for t in range(4):
        replay.append(next(i for i in reversed(instructions) if i.execution_time <= GRID.at(t)))
    assert [i.operation_mode_id for i in replay] == modes
    round_trip(instructions)
