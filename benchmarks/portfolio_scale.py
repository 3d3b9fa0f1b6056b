"""ADMM against the centralised optimum at scale, with the default stopping rule (issue 10).

For each N: the LP variant of ``vpp.examples.mixed_portfolio(N)`` (no shiftable processes,
so the centralised model is an LP HiGHS solves to optimality) under a binding congestion
limit, solved in one run, side by side:

* centralised: ``CentralisedPortfolio(request).solve()`` in this process (build + solve);
* ADMM: ``actors.run.run_portfolio`` with ``method: admm`` on a local Ray (2 CPUs, started
  before anything is timed), from starting the coordinator to the result, with the default
  stopping rule (certified gap 0.1 %, or both residuals; cap 100).

Then a warm re-plan: the same portfolio with prices shifted by one step, solved once cold
and once warm-started from the first run's state (the coordinator's warm store).

    python benchmarks/portfolio_scale.py --sizes 100,1000 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_section

HEADING = "## Portfolio ADMM at scale, stopping rule and certified gap (issue 10)"


@dataclass
class Row:
    n: int
    central_s: float
    central_cost: float
    admm_s: float
    admm_cost: float
    iterations: int
    stopped_by: str
    certified_gap: float
    true_gap: float
    violation_kw: float
    busy_cores: float  # the whole machine's, this benchmark included (2 = all)


def cpu_seconds_of_machine() -> float:
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _make(n: int) -> dict[str, Any]:
    from vpp.examples import mixed_portfolio

    return {**mixed_portfolio(n, seed=1, shiftable_share=0.0), "method": "admm"}


def portfolio(n: int) -> dict[str, Any]:
    """The request, made in a child process: the congestion limit comes from solving every
    home alone (~1 MB a site model), memory this driver should not keep (at N = 10,000 it
    held 9.4 GiB, beside the shards' own models)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_make, n).result()


def measure(n: int, checkpoints: str, central: bool = True, gap: float | None = None) -> Row:
    from actors.run import run_portfolio, start_coordinator
    from vpp.portfolio import CentralisedPortfolio

    request = portfolio(n) | ({"gap-tolerance": gap} if gap else {})
    machine0, wall0 = cpu_seconds_of_machine(), time.perf_counter()
    t0 = time.perf_counter()
    central_cost, central_s = math.nan, math.nan
    if central:
        central_cost = CentralisedPortfolio(request).solve().cost
        central_s = time.perf_counter() - t0
    coordinator = start_coordinator(checkpoints)
    t0 = time.perf_counter()
    body = run_portfolio(request, coordinator=coordinator)
    admm_s = time.perf_counter() - t0
    wall = time.perf_counter() - wall0
    busy = (cpu_seconds_of_machine() - machine0) / wall
    p = body["portfolio"]
    cost = float(p["cost"]["value"])
    return Row(
        n,
        central_s,
        central_cost,
        admm_s,
        cost,
        int(p["iterations"]),
        str(p["stopped-by"]),
        float(p["certified-gap"]),
        (cost - central_cost) / abs(central_cost),
        float(p["target-violation-kw"]),
        busy,
    )


def shifted(request: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(request)
    for key in ("consumption-price", "production-price"):
        values = out["flex-context"][key]["values"]
        out["flex-context"][key]["values"] = values[1:] + values[:1]
    return out


def warm_replan(n: int) -> dict[str, Any]:
    """Iterations to the stopping rule for a re-plan with prices shifted by one step, cold
    and warm-started from the first plan's state."""
    from actors.run import run_portfolio, start_coordinator

    request = portfolio(n)
    with tempfile.TemporaryDirectory() as warm_dir, tempfile.TemporaryDirectory() as cold_dir:
        first = run_portfolio(request, coordinator=start_coordinator(warm_dir))
        again = shifted(request)
        warm = run_portfolio(again, coordinator=start_coordinator(warm_dir))
        cold = run_portfolio(again, coordinator=start_coordinator(cold_dir))
    assert warm["portfolio"]["warm-start"] and not cold["portfolio"]["warm-start"]
    return {
        "n": n,
        "first": first["portfolio"]["iterations"],
        "cold": cold["portfolio"]["iterations"],
        "warm": warm["portfolio"]["iterations"],
        "cold_gap": cold["portfolio"]["certified-gap"],
        "warm_gap": warm["portfolio"]["certified-gap"],
    }


def render(rows: list[Row], warm: dict[str, Any] | None, command: str) -> str:
    lines = [
        HEADING,
        "",
        "N mixed homes x 96 quarter-hours (`mixed_portfolio(N, seed=1, shiftable_share=0)`: "
        "the LP variant, so the centralised HiGHS solve runs to optimality) under a binding "
        "congestion limit; one run per row, both methods in the same run, wall seconds. "
        "ADMM: local Ray with 2 CPUs (started before timing), default stopping rule "
        "(certified gap 0.1 % or both residuals, cap 100), default layout (one shard per CPU "
        "from 17 sites).",
        "",
        "Command (from the repository root):",
        "",
        f"```\n{command}\n```",
        "",
        "| N | centralised s | ADMM s | ADMM / centralised | iterations | stopped by | "
        "certified gap | gap to the optimum | max violation kW | machine busy, cores (of 2) |",
        "|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for r in rows:
        if math.isnan(r.central_s):  # ADMM alone (a centralised solve out of reach)
            central, ratio, gap = "–", "–", "–"
        else:
            central, ratio = f"{r.central_s:.1f}", f"{r.admm_s / r.central_s:.2f}x"
            gap = f"{100 * r.true_gap:+.4f} %"
        lines.append(
            f"| {r.n} | {central} | {r.admm_s:.1f} | {ratio} | {r.iterations} | "
            f"{r.stopped_by} | {100 * r.certified_gap:.3f} % | {gap} | "
            f"{r.violation_kw:.2g} | {r.busy_cores:.2f} |"
        )
    if warm:
        lines += [
            "",
            f"Warm re-plan (N = {warm['n']}, prices shifted by one step): {warm['cold']} "
            f"iterations cold, {warm['warm']} warm-started from the first plan "
            f"({100 * warm['warm'] / max(warm['cold'], 1):.0f} % of cold; certified gaps "
            f"{100 * warm['cold_gap']:.3f} % and {100 * warm['warm_gap']:.3f} %). The rule "
            "is checked every 5 iterations, so 5 is the fewest a run can report.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000", help="N, comma-separated")
    ap.add_argument("--warm", type=int, default=100, help="N of the warm re-plan (0: none)")
    ap.add_argument("--write", type=Path, help="docs/benchmarks.md: replace this section")
    ap.add_argument("--raw", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--merge", type=Path, help="add the rows (and warm run) of an earlier --raw")
    ap.add_argument("--no-central", action="store_true", help="ADMM only (very large N)")
    ap.add_argument("--gap-tolerance", type=float, help="the requests' gap-tolerance")
    ap.add_argument("--from-raw", type=Path, help="only render (and --write) an earlier --raw")
    args = ap.parse_args()
    if args.from_raw:
        raw = json.loads(args.from_raw.read_text())
        section = render([Row(**r) for r in raw["rows"]], raw.get("warm"), raw["command"])
        print(section)
        if args.write:
            write_section(args.write, HEADING, section)
        return
    from actors.run import ensure_ray

    if os.environ.get("RAY_ADDRESS"):  # a cluster (deploy/local-cluster.sh): join it
        ensure_ray()
    else:
        ensure_ray(num_cpus=2, include_dashboard=False)
    rows = []
    for n in [int(v) for v in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as checkpoints:
            rows.append(measure(n, checkpoints, not args.no_central, args.gap_tolerance))
        print(json.dumps(asdict(rows[-1])), flush=True)
    warm = warm_replan(args.warm) if args.warm else None
    if warm:
        print(json.dumps(warm), flush=True)
    command = "python benchmarks/portfolio_scale.py " + " ".join(sys.argv[1:])
    if args.merge:
        earlier = json.loads(args.merge.read_text())
        rows = sorted([*rows, *(Row(**r) for r in earlier["rows"])], key=lambda r: r.n)
        warm = warm or earlier.get("warm")
        command += f"\n# merged with the rows of an earlier run: {earlier.get('command', '')}"
    section = render(rows, warm, command)
    print(section)
    if args.raw:
        args.raw.write_text(
            json.dumps({"rows": [asdict(r) for r in rows], "warm": warm, "command": command})
        )
    if args.write:
        write_section(args.write, HEADING, section)


if __name__ == "__main__":
    main()
