"""vpp's single-site scheduler side by side with FlexMeasures' scheduler (issue 13, benchmarks).

Run from the repository root, with FlexMeasures installed in a venv of its own (it pins its
own dependencies; never into vpp's environment)::

    python -m venv /tmp/fmvenv && /tmp/fmvenv/bin/pip install flexmeasures
    python benchmarks/flexmeasures_side_by_side.py --fm-python /tmp/fmvenv/bin/python \\
        [--repeat 15] [--write docs/benchmarks.md]

Input: cases 1 and 2 of benchmarks/site_schedule.py (``battery_request(days)``: one battery
60 kW / 190 kWh, 95 % charging and discharging efficiency, SoC 40 kWh at the start, 10 kWh
minimum, a 100 kWh target at the end, a 50 kW site connection, 15-min day-ahead prices; 96
and 672 steps). vpp gets the request dict; FlexMeasures' side (benchmarks/fm_side.py, in
FlexMeasures' venv, fed JSON lines on stdin) gets the same plain numbers and builds what
``StorageScheduler`` hands ``device_scheduler`` for them.

Timed, per round: vpp ``SiteProblem(request).solve()`` in process (validation, build, solve,
tie-break); FlexMeasures *inputs* (DataFrames and commitments from the numbers) and
``device_scheduler(...)`` (its model build, HiGHS, reading the result), each measured inside
its process. The ratio uses ``device_scheduler`` alone, so it leaves out FlexMeasures' flex-
model parsing and database reads (in its favour). Rounds interleave vpp and FlexMeasures;
median and p90 over ``--repeat`` rounds after one untimed warm-up. Each run asserts that
FlexMeasures' energy cost equals vpp's cost to 1e-6 relative.
"""

from __future__ import annotations

import argparse
import gc
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from report import write_section  # benchmarks/report.py: run as python benchmarks/<script>.py
from site_schedule import battery_lp, battery_request, close, machine, ms

from vpp.site import SiteProblem

SECTION = "## vpp against FlexMeasures' scheduler"
HERE = Path(__file__).resolve().parent
TARGET = 10.0  # FlexMeasures' scheduler / vpp, at least (issue 13)
# (label, FlexMeasures' FLEXMEASURES_LP_SOLVER)
ROUTES = [
    ("FlexMeasures, direct highspy (its default)", "highspy"),
    ("FlexMeasures, Pyomo + appsi_highs", "appsi_highs"),
]


@dataclass
class Timings:
    """Seconds per round of one route of one case."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def med(self, name: str) -> float:
        return float(np.median(self.samples[name]))

    def p90(self, name: str) -> float:
        return float(np.percentile(self.samples[name], 90))


class FlexMeasuresSide:
    """benchmarks/fm_side.py in FlexMeasures' venv, one JSON line per request and answer."""

    def __init__(self, python: str) -> None:
        self.proc = subprocess.Popen(
            [python, str(HERE / "fm_side.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def ask(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fm_side.py ended (exit {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def fm_case(raw: dict[str, Any]) -> dict[str, Any]:
    """The request's plain numbers (kW, kWh, EUR/MWh), as fm_side.py reads them."""
    p = battery_lp(raw)
    return {
        "start": raw["start"],
        "resolution_min": 15,
        "price": raw["flex-context"]["consumption-price"]["values"],
        "cap_kw": p.cap,
        "site_kw": p.site_cap,
        "soc0": p.soc0,
        "soc_min": p.soc_min,
        "soc_max": p.soc_max,
        "soc_end": p.soc_end,
        "eta": p.eta,
    }


def without_tie_break(raw: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(raw))
    out["flex-model"][0]["prefer-charging-sooner"] = False
    return out


def vpp_round(raw: dict[str, Any], t: Timings, record: bool) -> float:
    t0 = time.perf_counter()
    cost = SiteProblem(raw).solve().cost
    if record:
        t.add("vpp", time.perf_counter() - t0)
    return cost


def fm_round(fm: FlexMeasuresSide, msg: dict[str, Any], cost: float, t: Timings) -> None:
    out = fm.ask(msg)
    close(out["energy"], cost, f"FlexMeasures' energy cost ({msg['solver']}) against vpp's")
    t.add("inputs", out["inputs"])
    t.add("scheduler", out["scheduler"])
    t.add("highs_run", out["highs_run"])
    t.add("mip_nodes", float(out["mip_nodes"]))


def measure_case(fm: FlexMeasuresSide, days: int, repeat: int) -> dict[str, Any]:
    """One untimed warm-up round, then ``repeat`` rounds, each running vpp and every
    FlexMeasures backend, with the tie-break on (both sides' default) and off."""
    raws = {True: battery_request(days), False: without_tie_break(battery_request(days))}
    case = fm_case(raws[True])
    vpp = {tb: Timings() for tb in raws}
    fms = {(backend, tb): Timings() for _, backend in ROUTES for tb in raws}
    costs: dict[bool, float] = {}
    for r in range(repeat + 1):
        for tb, raw in raws.items():
            cost = vpp_round(raw, vpp[tb], r > 0)
            close(costs.setdefault(tb, cost), cost, "vpp's cost differs between runs")
            for _, backend in ROUTES:
                msg = {"op": "run", "case": case, "solver": backend, "tie_break": tb}
                fm_round(fm, msg, cost, fms[(backend, tb)] if r > 0 else Timings())
    close(costs[True], costs[False], "vpp's cost with and without the tie-break")
    return {"vpp": vpp, "fm": fms, "cost": costs[True], "n": len(case["price"])}


def table(results: dict[int, dict[str, Any]]) -> str:
    """One row per case, route and tie-break setting; the ratio is against vpp's row."""
    head = (
        "| case | route | tie-break | inputs median | **scheduler median** | scheduler p90 "
        "| of which `Highs.run` (median) | FlexMeasures / vpp (median) |\n"
        "|---|---|---|--:|--:|--:|--:|--:|\n"
    )
    lines = []
    for days, res in results.items():
        name = f"{1 if days == 1 else 2} battery x {res['n']}"
        for tb in (True, False):
            v = res["vpp"][tb]
            on = "on" if tb else "off"
            lines.append(
                f"| {name} | vpp `SiteProblem(request).solve()` | {on} | – "
                f"| **{ms(v.med('vpp'))}** | {ms(v.p90('vpp'))} | – | 1 |"
            )
            for label, backend in ROUTES:
                f = res["fm"][(backend, tb)]
                ratio = f.med("scheduler") / v.med("vpp")
                lines.append(
                    f"| {name} | {label} | {on} | {ms(f.med('inputs'))} "
                    f"| **{ms(f.med('scheduler'))}** | {ms(f.p90('scheduler'))} "
                    f"| {ms(f.med('highs_run'))} | {ratio:.1f}x |"
                )
    return head + "\n".join(lines)


def ratio(res: dict[str, Any], backend: str, tb: bool = True) -> float:
    return res["fm"][(backend, tb)].med("scheduler") / res["vpp"][tb].med("vpp")


def targets(results: dict[int, dict[str, Any]]) -> str:
    lines = ["| target | measured | result |", "|---|---|---|"]
    for days, res in results.items():
        r = ratio(res, "highspy")
        lines.append(
            f"| {'case 1 (a day)' if days == 1 else 'case 2 (a week)'}: FlexMeasures' default "
            f"scheduler / vpp ≥ {TARGET:.0f}x | {r:.1f}x median "
            f"| **{'met' if r >= TARGET else 'not met'}** |"
        )
    return "\n".join(lines)


def reading(results: dict[int, dict[str, Any]]) -> str:
    """Where FlexMeasures' time goes, from the medians (default backend)."""
    out = []
    for days, res in results.items():
        for tb in (False, True):
            f, v = res["fm"][("highspy", tb)], res["vpp"][tb].med("vpp")
            run, total = f.med("highs_run"), f.med("scheduler")
            out.append(
                f"case {1 if days == 1 else 2}, tie-break {'on' if tb else 'off'}: HiGHS "
                f"{ms(run)} ({run / v:.1f}x vpp's whole call), FlexMeasures' Python around it "
                f"{ms(total - run)}"
            )
    return (
        "Where FlexMeasures' time goes (direct highspy, medians, ms): "
        + "; ".join(out)
        + ". Its HiGHS time alone exceeds vpp's whole call mostly because its model is a MIP: "
        "with the sign binaries relaxed to continuous (a one-off check by hand on case 1, "
        "tie-break off, not part of this script) the same HiGHS run took about 3.3 ms instead "
        "of 18 ms, at the same optimum. The rest is its problem preparation (per-step "
        "sub-commitment frames, parameter lookups) and result extraction in pandas."
    )


INPUTS = (
    "How the inputs match. vpp gets `battery_request(days)` of benchmarks/site_schedule.py as "
    "a dict. FlexMeasures' side gets the same numbers and builds what FlexMeasures' "
    "`StorageScheduler._prepare` hands `device_scheduler` for that flex-model: one device "
    "whose stock bounds are `(soc-min - soc-at-start)` and `(soc-max - soc-at-start)` in MW x "
    "steps (x 1 h / 15 min), the target as `equals` on the last step (the state at the end of "
    "that step, as FlexMeasures shifts targets by one resolution), `derivative min/max` = "
    "∓0.06 MW, up and down efficiencies 0.95, `initial_stock` = the SoC at start in MW x steps; "
    "the site connection as one EMS constraint (∓0.05 MW) over that device; the price as a "
    "`FlowCommitment` with quantity 0 and both deviation prices EUR/MWh x 0.25 h (production "
    "price = consumption price, as vpp defaults it). With the tie-break on, FlexMeasures gets "
    "the `StockCommitment` its `prefer-charging-sooner` adds (a tiny descending price on "
    "falling short of a full battery, via its own `add_tiny_price_slope`); vpp keeps its cost "
    "and re-solves lexicographically instead. With it off, vpp's request says "
    '`"prefer-charging-sooner": false` and FlexMeasures gets no such commitment.'
)


def timed_parts(nodes: int) -> str:
    return (
        "What is timed. vpp: `SiteProblem(request).solve()` in this process, from the JSON "
        "dict (validation, model build, HiGHS, with the tie-break its second solve, the "
        "schedule). FlexMeasures, in its own process (benchmarks/fm_side.py, same machine, "
        "timed there with `perf_counter`): *inputs* = building the DataFrames and commitments "
        "above from plain numbers; *scheduler* = `device_scheduler(...)` (its problem "
        "preparation, the model build, HiGHS with FlexMeasures' options: tolerances 1e-9, MIP "
        "gap 0, log off; the result series and costs), inside a bare Flask app context (it "
        "reads its solver settings from `current_app.config`; no database). The ratio is "
        "*scheduler* alone against vpp's whole call, so it leaves out FlexMeasures' flex-model "
        "parsing, database reads and *inputs*, all in FlexMeasures' favour. FlexMeasures "
        "formulates the battery with a sign binary per step (no simultaneous charging and "
        "discharging), so HiGHS solves its model as a MIP (96 or 672 binaries; at most "
        f"{nodes} branch-and-bound node(s) seen); vpp solves an LP here (positive prices: it "
        "adds no binaries). *of which `Highs.run`* is the time inside HiGHS' `run` during "
        "`device_scheduler` (fm_side.py wraps `highspy.Highs.run`, which both backends call). "
        "FlexMeasures' default `FLEXMEASURES_LP_SOLVER` in 1.0.1 is `highspy` (a direct HiGHS "
        "build, bypassing Pyomo); `appsi_highs` is its Pyomo route, same solver."
    )


def report(
    results: dict[int, dict[str, Any]], repeat: int, command: str, fm_v: dict[str, str]
) -> str:
    m = machine()
    costs = ", ".join(
        f"case {1 if d == 1 else 2}: {res['cost']:.6f} EUR" for d, res in results.items()
    )
    parts = [
        SECTION,
        f"Wall time of vpp's single-site scheduler and of FlexMeasures' scheduler on the same "
        f"input (cases 1 and 2 of the site benchmark). Times in **ms**: median over {repeat} "
        "interleaved rounds after one untimed warm-up, p90 alongside.",
        f"Command (from the repository root):\n\n```\n{command}\n```",
        f"Machine: nproc = {m['nproc']}, {m['cpu']}, {m['os']}; vpp side: Python "
        f"{m['python']}, highspy {m['highspy']}, numpy {m['numpy']}. FlexMeasures side (its own "
        f"venv): flexmeasures {fm_v['flexmeasures']}, pyomo {fm_v['pyomo']}, highspy "
        f"{fm_v['highspy']} (HiGHS on both sides), pandas {fm_v['pandas']}, "
        f"flask {fm_v['flask']}.",
        table(results),
        targets(results),
        reading(results),
        f"Checks, asserted on every round: FlexMeasures' energy cost (its price commitment's "
        f"cost, without the tie-break commitment's tiny penalty) equals vpp's cost to 1e-6 "
        f"relative on every route and tie-break setting ({costs}); vpp's cost is the same with "
        "and without its tie-break.",
        INPUTS,
        timed_parts(
            max(
                int(max(t.samples["mip_nodes"])) for r in results.values() for t in r["fm"].values()
            )
        ),
        "Method: each round runs vpp and then asks FlexMeasures' process for the same case, so "
        "drift in the shared machine's speed (2 vCPUs) hits both alike. The garbage collector "
        "stays on in both processes, but each calls `gc.freeze()` once its imports are done, "
        "so full collections don't rescan the import-time heap: FlexMeasures' process holds "
        "Flask, SQLAlchemy, Pyomo and pandas, and without the freeze such passes added "
        "170-250 ms to some of its rounds (its 96-step median with the tie-break was 270 ms "
        "instead of about 95 ms). The freeze favours FlexMeasures.",
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fm-python", default="/tmp/fmvenv/bin/python", help="FlexMeasures' venv")
    ap.add_argument("--repeat", type=int, default=15, help="timed rounds per case")
    ap.add_argument("--days", type=int, nargs="+", default=[1, 7], help="cases, in days")
    ap.add_argument("--write", type=Path, help="markdown file whose section to replace")
    args = ap.parse_args(argv)
    fm = FlexMeasuresSide(args.fm_python)
    gc.freeze()  # imports done; fm_side.py does the same (see the report's "Method")
    try:
        fm_v = fm.ask({"op": "versions"})
        results = {d: measure_case(fm, d, args.repeat) for d in args.days}
    finally:
        fm.close()
    command = "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    text = report(results, args.repeat, command, fm_v)
    print(text)
    if args.write:
        write_section(args.write, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
