"""FlexMeasures' side of benchmarks/flexmeasures_side_by_side.py (runs in FlexMeasures' venv).

Imports only FlexMeasures, Flask, pandas and numpy (never vpp). It reads one JSON object per
line on stdin and answers one JSON line on stdout, so the caller can interleave its rounds:

``{"op": "versions"}``
    the versions of flexmeasures, pyomo, highspy and pandas.
``{"op": "run", "case": {...}, "solver": "highspy" | "appsi_highs", "tie_break": bool}``
    build FlexMeasures' inputs from the plain battery numbers (*inputs*) and call
    ``device_scheduler`` (*scheduler*), timing both; answers the two times (seconds), the
    objective and the energy cost (the "net energy" commitment's cost, EUR).

The inputs are what ``StorageScheduler._prepare`` hands ``device_scheduler`` for this
flex-model (read from FlexMeasures 1.0.1's storage.py): stocks in MW x steps relative to the
SoC at start (x 1 h / resolution), powers in MW, the energy price as a FlowCommitment with
quantity 0 and the price per MW per step (EUR/MWh x resolution / 1 h) both ways, the site
capacity as an EMS constraint, the SoC target as ``equals`` on the last step (a state at the
end of that step). ``tie_break`` adds the StockCommitment FlexMeasures adds for
``prefer-charging-sooner`` (a tiny descending price slope on not being full).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from datetime import timedelta
from importlib.metadata import version
from typing import Any

import highspy
import numpy as np
import pandas as pd
from flask import Flask
from flexmeasures.data.models.planning import FlowCommitment, StockCommitment
from flexmeasures.data.models.planning.linear_optimization import device_scheduler
from flexmeasures.data.models.planning.utils import add_tiny_price_slope

COLUMNS = [
    "equals",
    "max",
    "min",
    "efficiency",
    "derivative equals",
    "derivative max",
    "derivative min",
    "derivative down efficiency",
    "derivative up efficiency",
    "stock delta",
]  # fmt: skip  (StorageScheduler.COLUMNS)


def fm_inputs(case: dict[str, Any], tie_break: bool) -> dict[str, Any]:
    """``device_scheduler``'s keyword arguments for one battery (units as in FlexMeasures)."""
    res = timedelta(minutes=case["resolution_min"])
    per_h = timedelta(hours=1) / res  # stocks in MW x steps
    n = len(case["price"])
    index = pd.date_range(case["start"], periods=n, freq=res)
    soc0 = case["soc0"] / 1000.0  # MWh
    dc = pd.DataFrame(np.nan, index=index, columns=COLUMNS)
    dc["min"] = (case["soc_min"] / 1000.0 - soc0) * per_h
    dc["max"] = (case["soc_max"] / 1000.0 - soc0) * per_h
    dc.iloc[-1, COLUMNS.index("equals")] = (case["soc_end"] / 1000.0 - soc0) * per_h
    dc["derivative max"] = case["cap_kw"] / 1000.0
    dc["derivative min"] = -case["cap_kw"] / 1000.0
    dc["derivative up efficiency"] = case["eta"]
    dc["derivative down efficiency"] = case["eta"]
    dc["stock delta"] = 0.0
    ems = pd.DataFrame(np.nan, index=index, columns=["derivative max", "derivative min"])
    ems["derivative max"] = case["site_kw"] / 1000.0
    ems["derivative min"] = -case["site_kw"] / 1000.0
    prices = pd.DataFrame({"event_value": case["price"]}, index=index)  # EUR/MWh
    step_price = prices["event_value"] * (res / timedelta(hours=1))  # EUR per MW per step
    zero = pd.Series(0.0, index=index)
    commitments: list[Any] = [
        FlowCommitment(
            name="electricity net energy",
            quantity=zero,
            upwards_deviation_price=step_price,
            downwards_deviation_price=step_price,
            index=index,
        )
    ]
    if tie_break:  # as StorageScheduler does for prefer-charging-sooner (and curtailing later)
        slope = add_tiny_price_slope(prices, "event_value", order="desc") - prices
        commitments.append(
            StockCommitment(
                name="prefer a full storage 0 sooner",
                quantity=(case["soc_max"] / 1000.0 - soc0) * per_h,
                upwards_deviation_price=0,
                downwards_deviation_price=-slope,
                index=index,
                device=0,
            )
        )
    return {
        "device_constraints": [dc],
        "ems_constraints": [ems],
        "ems_constraint_groups": [[0]],
        "commitments": commitments,
        "initial_stock": [soc0 * per_h],
    }


HIGHS_RUNS: list[tuple[float, int]] = []  # (seconds, MIP nodes) of every Highs.run


def timed_highs_run(self: highspy.Highs) -> Any:
    """``Highs.run``, timed: both of FlexMeasures' backends (direct and through Pyomo's appsi)
    call it, so the share of HiGHS in ``device_scheduler`` can be reported."""
    t0 = time.perf_counter()
    status = highspy._core._Highs.run(self)
    HIGHS_RUNS.append((time.perf_counter() - t0, int(self.getInfo().mip_node_count)))
    return status


highspy.Highs.run = timed_highs_run  # type: ignore[method-assign]


def run(app: Flask, msg: dict[str, Any]) -> dict[str, Any]:
    """One timed round: inputs, then ``device_scheduler`` with the requested backend."""
    app.config["FLEXMEASURES_LP_SOLVER"] = msg["solver"]
    HIGHS_RUNS.clear()
    t0 = time.perf_counter()
    kwargs = fm_inputs(msg["case"], msg["tie_break"])
    t1 = time.perf_counter()
    power, objective, results, model = device_scheduler(**kwargs)
    t2 = time.perf_counter()
    tc = str(results.solver.termination_condition)
    if "optimal" not in tc:
        raise RuntimeError(f"FlexMeasures' scheduler: {tc}")
    energy = float(model.commitment_costs[0])  # the first commitment: the energy price
    return {
        "inputs": t1 - t0,
        "highs_run": sum(t for t, _ in HIGHS_RUNS),
        "mip_nodes": max((n for _, n in HIGHS_RUNS), default=0),
        "scheduler": t2 - t1,
        "objective": float(objective),
        "energy": energy,
        "power_kw": [1000.0 * float(v) for v in power[0].to_numpy()],
    }


def versions() -> dict[str, str]:
    return {p: version(p) for p in ("flexmeasures", "pyomo", "highspy", "pandas", "flask")}


def main() -> int:
    app = Flask("fm_side")  # device_scheduler reads its solver settings from current_app
    app.config.update(
        LOGGING_LEVEL="INFO", FLEXMEASURES_LP_SOLVER="highspy", FLEXMEASURES_LP_SOLVER_OPTIONS={}
    )  # LOGGING_LEVEL "INFO" is what makes FlexMeasures switch HiGHS' log off
    # answers go to the original stdout; anything printed at C level (banners) to stderr
    # Imports done: keep the collector's full passes off their heap (Flask, SQLAlchemy, Pyomo,
    # pandas), as the caller does for vpp's; unfrozen, they added 170-250 ms to some rounds.
    gc.freeze()
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    with app.app_context():
        for line in sys.stdin:
            msg = json.loads(line)
            out = versions() if msg["op"] == "versions" else run(app, msg)
            reply.write(json.dumps(out) + "\n")
            reply.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
