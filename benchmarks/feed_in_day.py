"""The "pathological day" of issue 13 item 9: docs/examples/home.json with a constant
200 EUR/MWh production price, above the consumption price at nearly every step, so the site
model has an import/export binary at each of those steps.

Run from the repository root::

    python benchmarks/feed_in_day.py [--time-limit SECONDS] [--repeat N]

Prints, per run, the wall time of ``SiteProblem(request).solve()`` (build+solve), the
result's status (``finished`` or ``time-limited``), its MIP gap, its cost and HiGHS' dual
bound (the best proven lower bound of the cost).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from vpp.site import SiteProblem

HOME = Path(__file__).resolve().parent.parent / "docs" / "examples" / "home.json"


def request(time_limit: float) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(HOME.read_text())
    raw["flex-context"]["production-price"] = "200 EUR/MWh"
    raw["time-limit"] = time_limit
    return raw


def run(time_limit: float) -> str:
    started = time.perf_counter()
    problem = SiteProblem(request(time_limit))
    result = problem.solve()
    seconds = time.perf_counter() - started
    bound = problem.solver.highs.getInfo().mip_dual_bound + problem.cost_constant
    ints = int(problem.model.integrality().sum())
    gap = result.extra.get("mip-gap", 0.0)
    status = "time-limited" if "mip-gap" in result.extra else "finished"
    return (
        f"{seconds:8.2f} s  {status:12}  gap {100 * gap:5.2f} %  cost {result.cost:.6f} EUR"
        f"  bound {bound:.6f} EUR  ({problem.model.n_cols} cols, {ints} integer)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.repeat):
        print(run(args.time_limit), flush=True)


if __name__ == "__main__":
    main()
