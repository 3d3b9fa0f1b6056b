"""Scenario-robust schedules: two-stage stochastic scheduling of one site.

A request carries, next to an ordinary site request (its series the point forecast),
``scenarios``: each a ``probability`` and overrides of the flex-context (prices,
``inflexible-devices``) and of devices by name (e.g. a PV ``production`` forecast), and a
``first-stage`` duration. The devices' power over the first stage is decided now, the same in
every scenario; after it each scenario has its own schedule (recourse).

Extensive form (``s`` a scenario, ``pi_s`` its probability, ``x_s`` its copy of the site
model, ``c_s`` its cost vector)::

    min  sum_s pi_s * c_s @ x_s
    s.t. x_s feasible for scenario s                                   (each site model)
         p_d^s[t] = p_d^0[t]  for every controllable device d, t < first-stage
                                                        (family ``non-anticipativity``)

Reported, as in the stochastic-programming literature (Birge and Louveaux):

* ``expected-cost`` RP, the optimum above;
* ``wait-and-see`` WS ``= sum_s pi_s * optimum_s``: each scenario solved alone, as if it
  were known (independent problems: :func:`solve_robust` takes a ``map`` to run them on
  Ray); ``evpi = RP - WS >= 0``, the expected value of perfect information;
* ``expected-value-cost`` EEV: the request's own (point-forecast) schedule's first stage,
  fixed in each scenario, recourse solved per scenario, weighted; ``vss = EEV - RP >= 0``, the
  value of the stochastic solution. When that first stage is infeasible in a scenario, EEV
  and VSS are ``null`` and ``eev-infeasible`` names the scenario.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
from pydantic import TypeAdapter, ValidationError

from vpp.errors import FieldIssue, InfeasibleError, RequestValidationError
from vpp.exclusive import Exclusivity
from vpp.linear import LinearModel, Term
from vpp.request import parse_request
from vpp.settings import get_settings
from vpp.site import SiteProblem, SiteSchedule
from vpp.solver import HighsSolver
from vpp.timeseries import iso_duration

__all__ = ["RobustRequest", "parse_robust", "solve_robust"]

T = TypeVar("T")
R = TypeVar("R")
Mapper = Callable[[Callable[[T], R], Iterable[T]], Iterable[R]]


@dataclass(frozen=True)
class RobustRequest:
    """A validated two-stage request: the point-forecast request, the scenarios' requests
    and probabilities, and the first stage's length in steps."""

    base: dict[str, Any]
    names: list[str]
    probabilities: np.ndarray
    requests: list[dict[str, Any]]
    first_steps: int


def parse_robust(raw: Any) -> RobustRequest:
    """Validate a two-stage request; every problem names its field."""
    if not isinstance(raw, dict):
        raise RequestValidationError.single("", "the request must be a JSON object")
    base = {k: v for k, v in raw.items() if k not in ("scenarios", "first-stage")}
    parsed = parse_request(base)  # the point forecast must be a valid request itself
    horizon = parsed.horizon
    first = _first_steps(raw.get("first-stage"), horizon.resolution, horizon.steps)
    entries = raw.get("scenarios")
    if not isinstance(entries, list) or not entries:
        raise RequestValidationError.single("scenarios", "a non-empty list of scenarios")
    issues: list[FieldIssue] = []
    names, probabilities, requests = [], [], []
    for i, entry in enumerate(entries):
        try:
            name, probability, request = _scenario(base, entry, i)
        except RequestValidationError as err:
            issues += err.issues
            continue
        names.append(name)
        probabilities.append(probability)
        requests.append(request)
    if issues:
        raise RequestValidationError(issues)
    if len(set(names)) != len(names):
        raise RequestValidationError.single("scenarios", "scenario names must be unique")
    if abs(sum(probabilities) - 1.0) > 1e-9:
        message = f"the probabilities must sum to 1, not {sum(probabilities):.9g}"
        raise RequestValidationError.single("scenarios", message)
    return RobustRequest(base, names, np.array(probabilities), requests, first)


def _first_steps(raw: Any, resolution: timedelta, steps: int) -> int:
    if raw is None:
        raise RequestValidationError.single("first-stage", "required, e.g. 'PT4H'")
    try:
        duration = _DURATION.validate_python(raw)
    except ValidationError:
        raise RequestValidationError.single("first-stage", "an ISO 8601 duration") from None
    ratio: float = duration / resolution
    if abs(ratio - round(ratio)) > 1e-9 or not 1 <= round(ratio) <= steps:
        raise RequestValidationError.single(
            "first-stage",
            f"whole steps of {iso_duration(resolution)}, from one step to the horizon",
        )
    return round(ratio)


_DURATION = TypeAdapter(timedelta)


def _scenario(base: dict[str, Any], entry: Any, i: int) -> tuple[str, float, dict[str, Any]]:
    path = f"scenarios[{i}]"
    if not isinstance(entry, dict):
        raise RequestValidationError.single(path, "an object")
    unknown = set(entry) - {"name", "probability", "flex-context", "flex-model"}
    if unknown:
        raise RequestValidationError(
            [FieldIssue(f"{path}.{k}", "unknown field of a scenario") for k in sorted(unknown)]
        )
    probability = entry.get("probability")
    if (
        not isinstance(probability, int | float)
        or isinstance(probability, bool)
        or not 0 < probability <= 1
    ):
        raise RequestValidationError.single(f"{path}.probability", "a number in (0, 1]")
    name = entry.get("name", f"scenario-{i}")
    if not isinstance(name, str) or not name:
        raise RequestValidationError.single(f"{path}.name", "a non-empty string")
    request = copy.deepcopy(base)
    context = entry.get("flex-context", {})
    if not isinstance(context, dict):
        raise RequestValidationError.single(f"{path}.flex-context", "an object of overrides")
    request["flex-context"] = {**request.get("flex-context", {}), **context}
    request["flex-model"] = _merged(request["flex-model"], entry.get("flex-model", []), path)
    try:
        parse_request(request)
    except RequestValidationError as err:
        raise RequestValidationError(
            [FieldIssue(f"{path}.{x.field}", x.message) for x in err.issues]
        ) from None
    return name, float(probability), request


def _merged(devices: Any, overrides: Any, path: str) -> list[dict[str, Any]]:
    base = [devices] if isinstance(devices, dict) else list(devices)
    by_name = {d.get("name", d.get("type", "battery")): dict(d) for d in base}
    if not isinstance(overrides, list):
        raise RequestValidationError.single(f"{path}.flex-model", "a list of device overrides")
    for j, override in enumerate(overrides):
        name = override.get("name") if isinstance(override, dict) else None
        if name not in by_name:
            raise RequestValidationError.single(
                f"{path}.flex-model[{j}].name", f"names a device of the request, not {name!r}"
            )
        by_name[name] = {**by_name[name], **override}
    return list(by_name.values())


def _builtin_map(fn: Callable[[T], R], items: Iterable[T]) -> Iterable[R]:
    return map(fn, items)


def solve_robust(raw: Any, *, map: Mapper[Any, Any] = _builtin_map) -> dict[str, Any]:
    """The two-stage schedule and its RP, WS, EVPI, EEV and VSS (module docstring).
    ``map`` runs the independent per-scenario solves (the builtin by default; Ray's in
    :mod:`actors.scenarios`)."""
    robust = parse_robust(raw)
    problems = [SiteProblem(r, break_ties=False) for r in robust.requests]
    rp, x, offsets = _extensive(problems, robust)
    alone = list(map(_optimum, robust.requests))
    ws = float(robust.probabilities @ np.array(alone))
    eev, eev_note = _expected_value_cost(robust, map)
    schedules = [
        p._schedule(x[o : o + p.model.n_cols], math.nan)
        for p, o in zip(problems, offsets, strict=True)
    ]
    return _result(robust, problems[0], schedules, rp, ws, eev, eev_note)


def _optimum(request: dict[str, Any]) -> float:
    return SiteProblem(request, break_ties=False).solve().cost


def _decision_devices(problem: SiteProblem) -> list[int]:
    return [i for i, (dv, _) in enumerate(problem.devices) if dv.consumption or dv.production]


def _extensive(
    problems: Sequence[SiteProblem], robust: RobustRequest
) -> tuple[float, np.ndarray, list[int]]:
    model = LinearModel()
    offsets = [
        model.append(p.model, prefix=name) for p, name in zip(problems, robust.names, strict=True)
    ]
    first = robust.first_steps
    base = problems[0]
    for s, (problem, offset) in enumerate(zip(problems, offsets, strict=True)):
        if s == 0:
            continue
        for d in _decision_devices(base):
            dv0, dvs = base.devices[d][0], problem.devices[d][0]
            terms: list[Term] = [(c, cols[:first] + offset) for c, cols in dvs.power_terms(1.0)]
            terms += [(c, cols[:first] + offsets[0]) for c, cols in dv0.power_terms(-1.0)]
            c0 = np.zeros(first) if dv0.constant is None else dv0.constant[:first]
            cs = np.zeros(first) if dvs.constant is None else dvs.constant[:first]
            model.add_rows("non-anticipativity", terms, c0 - cs, c0 - cs, device=dv0.name)
    cost = np.concatenate(
        [pi * p._cost() for pi, p in zip(robust.probabilities, problems, strict=True)]
    )
    constant = float(
        sum(pi * p.cost_constant for pi, p in zip(robust.probabilities, problems, strict=True))
    )
    exclusive = Exclusivity("no-simultaneous-charge-discharge")
    for offset, problem in zip(offsets, problems, strict=True):
        exclusive.pairs += [
            (a + offset, b + offset, d) for a, b, d in problem.charge_discharge.pairs
        ]
    solver = HighsSolver(model, time_limit=get_settings().solve_time_limit)
    solver.set_cost(np.pad(cost, (0, model.n_cols - cost.size)))
    for _ in range(base.horizon.steps + 1):
        solution = solver.solve()
        if solution.status == "infeasible":
            raise InfeasibleError(
                "no first stage fits every scenario: the scenarios' constraints conflict over "
                f"the first {first} steps",
                constraint="non-anticipativity",
            )
        if not exclusive.enforce(model, solution.x):
            break
        solver.set_cost(np.pad(cost, (0, model.n_cols - cost.size)))
    return solution.objective + constant, solution.x, offsets


def _expected_value_cost(
    robust: RobustRequest, map: Mapper[Any, Any]
) -> tuple[float | None, str | None]:
    plan = SiteProblem(robust.base, break_ties=False)
    plan.solve()
    assert plan.last_x is not None
    first = robust.first_steps
    fixed = {d: plan.devices[d][0].power(plan.last_x)[:first] for d in _decision_devices(plan)}
    costs = list(map(lambda r: _with_first_stage(r, fixed, first), robust.requests))
    infeasible = [n for n, c in zip(robust.names, costs, strict=True) if c is None]
    if infeasible:
        return None, f"the point forecast's first stage is infeasible in {', '.join(infeasible)}"
    return float(robust.probabilities @ np.array(costs, float)), None


def _with_first_stage(
    request: dict[str, Any], fixed: dict[int, np.ndarray], first: int
) -> float | None:
    problem = SiteProblem(request, break_ties=False)
    for d, values in fixed.items():
        dv = problem.devices[d][0]
        rhs = values - (np.zeros(first) if dv.constant is None else dv.constant[:first])
        terms = [(c, cols[:first]) for c, cols in dv.power_terms(1.0)]
        problem.model.add_rows("first-stage-fixed", terms, rhs, rhs, device=dv.name)
    try:
        return problem.solve(explain=False).cost
    except InfeasibleError:
        return None


def _result(
    robust: RobustRequest,
    base: SiteProblem,
    schedules: list[SiteSchedule],
    rp: float,
    ws: float,
    eev: float | None,
    eev_note: str | None,
) -> dict[str, Any]:
    first = robust.first_steps
    horizon = base.horizon

    def money(value: float | None) -> dict[str, Any]:
        return {"value": None if value is None else round(value, 9), "unit": "EUR"}

    first_stage = [
        {"name": name, "power": {"values": [round(float(v), 9) for v in p[:first]], "unit": "kW"}}
        for name, p in schedules[0].device_power.items()
    ]
    return {
        "status": "finished",
        "start": horizon.start.isoformat(),
        "first-stage": {"end": horizon.at(first).isoformat(), "devices": first_stage},
        "expected-cost": money(rp),
        "wait-and-see": money(ws),
        "evpi": money(rp - ws),
        "expected-value-cost": money(eev),
        "vss": money(None if eev is None else eev - rp),
        **({"eev-infeasible": eev_note} if eev_note else {}),
        "scenarios": [
            {"name": n, "probability": float(pi), **s.to_json()}
            for n, pi, s in zip(robust.names, robust.probabilities, schedules, strict=True)
        ],
    }
