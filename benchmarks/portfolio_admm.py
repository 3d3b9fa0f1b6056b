"""Portfolio ADMM benchmark (issue 3): ADMM on Ray against the centralised HiGHS model.

Run from the repository root::

    python benchmarks/portfolio_admm.py [--sizes 10,100,1000] [--max-iterations K]
                                        [--write docs/benchmarks.md] [--profile]

Portfolios: ``vpp.examples.mixed_portfolio(N, seed=SEED, shiftable_share=0.1)``, N mixed homes
x 96 quarter-hours with a binding congestion limit (``max-consumption`` at 70 % of the homes'
unconstrained peak). For every N, side by side in one run:

``centralised``
    ``vpp.portfolio.CentralisedPortfolio(request).solve()``: wall time including the build,
    the cost and the limit violation. It runs in a fresh (spawned) process after an untimed
    warm-up on a 2-home portfolio (pint's unit registry, HiGHS' banner), so the number is the
    solve, not the process' one-off costs, and its peak RSS is its own (``ru_maxrss``). When
    HiGHS stops at the benchmark's 60 s MIP time limit the MIP gap it reports is recorded: the
    reference is then an incumbent, and ``cost * (1 - mip_gap)`` a lower bound on the optimum.
``admm``
    ``actors.run.run_portfolio(request, settings=..., pool_options=...)``, the request with
    ``method: admm`` (``auto`` solves fewer than 400 sites centralised), on a local Ray
    (``ray.init(num_cpus=2)``, started once before anything is timed, plus one untimed 2-home
    warm-up job that pays Ray's one-off costs of exporting the actor classes). Wall time
    covers starting the coordinator actor, the site actors (their processes, imports and
    models), ``solve_alone``, the iterations, the feasibility step and the result's return.
    Each job gets a fresh, empty checkpoint directory, so no job warm-starts from an earlier
    one (the result's ``warm-start`` flag is asserted False). Layouts: one actor per site
    (``{"one_per_site_max": N}``, only for N <= ``--one-per-site-max``) and sharded
    (``{"one_per_site_max": 0, "shards": S}`` for every S in ``--shards``).

Peak memory: a background thread samples, every 0.2 s, the RSS of the driver and of every
process below it (psutil); Ray's workers (``ray::SiteShard``, ``ray::Coordinator``,
``ray::IDLE``) are summed with the driver, Ray's own daemons (raylet, GCS, ...) are reported
separately. RSS counts shared pages (libraries, the plasma store) once per process, so the sum
overstates the physical memory; it is the number a container limit sees per process.

Targets (issue 3): gap = (ADMM cost - centralised cost) / centralised cost at most 0.1 %; the
limit kept exactly (violation at most 1e-6 kW per site); ADMM wall time at most 3x the
centralised at N = 1,000. At the largest N
the run adds jobs with the other caps of ``--caps`` (the gap/time trade-off) and profiles
one shard's x-update in this process when it misses the time target (``--profile`` forces
the profile).

``--write`` replaces (or appends) the "## Portfolio ADMM (issue 3)" section of the given
markdown file, leaving every other section as it is.

The code: ``admm_measure.py`` (the sampler, the centralised reference, one ADMM job),
``admm_profile.py`` (the x-update profile), ``admm_report.py`` (the markdown section); this
file is the command line and the order of the jobs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

# benchmarks/*.py import each other by module name: run as python benchmarks/<script>.py
from admm_measure import SEED, SHIFTABLE_SHARE, Run, machine, run_admm, run_centralised
from admm_profile import profile_shard
from admm_report import SECTION, TARGET_RATIO, fmt_gap, report
from report import write_section

log = logging.getLogger("bench")


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sizes", type=ints, default=[10, 100, 1000], help="N (10,100,1000)")
    ap.add_argument("--max-iterations", type=int, default=50, help="ADMM cap (50, vpp's default)")
    ap.add_argument("--shards", type=ints, default=[2, 4], help="sharded layouts (2,4)")
    ap.add_argument(
        "--one-per-site-max", type=int, default=100, help="one actor per site up to this N"
    )
    ap.add_argument(
        "--more-shards-max", type=int, default=100, help="shards beyond the first up to this N"
    )
    ap.add_argument("--caps", type=ints, default=[30, 100], help="other caps at the largest N")
    ap.add_argument(
        "--fallback-limit", type=float, default=300.0, help="HiGHS limit if 60 s finds nothing"
    )
    ap.add_argument("--write", type=Path, help="markdown file whose section to replace")
    ap.add_argument("--profile", action="store_true", help="always profile the x-update")
    ap.add_argument("--raw", type=Path, help="also save the raw measurements (JSON) here")
    ap.add_argument("--from-raw", type=Path, help="only re-render the report from --raw output")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.from_raw:
        return from_raw(args.from_raw, args.write)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    command = shlex.join(command_line(args))
    started = time.perf_counter()
    import ray

    warmup = start_ray()
    bench = Bench(args, command, started, warmup)
    for n in args.sizes:
        bench.measure(n)
    bench.state_path.unlink(missing_ok=True)
    ray.shutdown()
    elapsed = time.perf_counter() - started
    bench.save()
    text = report(
        bench.central, bench.runs, bench.prof, command, bench.info, args.max_iterations, elapsed
    )
    emit(text, args.write)
    return 0


def from_raw(raw: Path, write: Path | None) -> int:
    """``--from-raw``: the report of an earlier run's ``--raw`` file, measuring nothing."""
    saved = json.loads(raw.read_text())
    text = report(
        {int(k): v for k, v in saved["central"].items()},
        [Run(**r) for r in saved["runs"]],
        saved["profile"],
        saved["command"],
        saved["machine"],
        saved["cap"],
        saved["elapsed"],
    )
    emit(text, write)
    return 0


def emit(text: str, write: Path | None) -> None:
    """Print the section; with ``--write``, also into that markdown file."""
    print(text)
    if write:
        write_section(write, SECTION, text)
        print(f"wrote section {SECTION!r} to {write}")


def command_line(args: argparse.Namespace) -> list[str]:
    """The command the report quotes (the flags that change the measured jobs' output)."""
    cmd = ["python", "benchmarks/portfolio_admm.py", "--sizes", ",".join(map(str, args.sizes))]
    if args.max_iterations != 100:
        cmd += ["--max-iterations", str(args.max_iterations)]
    if args.write:
        cmd += ["--write", str(args.write)]
    if args.profile:
        cmd += ["--profile"]
    if args.raw:
        cmd += ["--raw", str(args.raw)]
    return cmd


def start_ray() -> dict[str, Any]:
    """A local Ray with 2 CPUs and one untimed 2-home ADMM job (Ray's one-off costs of
    exporting the actor classes); the 2-home portfolio, also the centralised warm-up."""
    import ray

    from vpp.examples import mixed_portfolio

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    from actors.run import run_portfolio

    warmup = mixed_portfolio(2, seed=99)
    # method "admm": ``auto`` would solve the 2 homes centralised and start no actor
    run_portfolio(
        {**warmup, "method": "admm"},
        settings={"max_iterations": 2},
        pool_options={"one_per_site_max": 2},
    )
    return warmup


class Bench:
    """The measurements of one run, in the order the jobs run; ``save`` writes them to
    ``--raw`` after every job, so that a failed run keeps what it measured."""

    def __init__(
        self, args: argparse.Namespace, command: str, started: float, warmup: dict[str, Any]
    ) -> None:
        self.args = args
        self.command = command
        self.started = started
        self.warmup = warmup
        self.settings: dict[str, Any] = {"max_iterations": args.max_iterations}
        self.central: dict[int, dict[str, Any]] = {}
        self.runs: list[Run] = []
        self.prof: dict[str, Any] | None = None
        self.state_path = Path(tempfile.gettempdir()) / f"vpp-bench-state-{os.getpid()}.npz"
        self.info = machine()

    def save(self) -> None:
        if self.args.raw:
            self.args.raw.write_text(
                json.dumps(
                    {
                        "central": self.central,
                        "runs": [asdict(r) for r in self.runs],
                        "profile": self.prof,
                        "command": self.command,
                        "machine": self.info,
                        "cap": self.args.max_iterations,
                        "elapsed": time.perf_counter() - self.started,
                    },
                    indent=1,
                )
            )

    def measure(self, n: int) -> None:
        """Everything at one N: the centralised reference, the layouts, and at the largest N
        the other caps and the profile."""
        from vpp.examples import mixed_portfolio

        c = time.perf_counter()
        request = mixed_portfolio(n, seed=SEED, shiftable_share=SHIFTABLE_SHARE)
        log.info(
            "N=%d: request generated in %.1f s (%s)",
            n,
            time.perf_counter() - c,
            request["target"]["max-consumption"],
        )
        self.central[n] = run_centralised(request, self.warmup, self.args.fallback_limit)
        self.save()
        log.info("N=%d centralised: %s", n, {k: v for k, v in self.central[n].items()})
        for name, options in self.layouts(n):
            self.admm(request, n, name, options)
        if n == max(self.args.sizes):
            self.largest(request, n)

    def layouts(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        """One actor per site (small N), then the sharded layouts."""
        args = self.args
        layouts: list[tuple[str, dict[str, Any]]] = []
        if n <= args.one_per_site_max:
            layouts.append(("one per site", {"one_per_site_max": n}))
        layouts += [
            (f"{s} shards", {"one_per_site_max": 0, "shards": s})
            for k, s in enumerate(args.shards)
            if k == 0 or n <= args.more_shards_max
        ]
        return layouts

    def admm(self, request: dict[str, Any], n: int, name: str, options: dict[str, Any]) -> None:
        """One ADMM job at the default cap; at the largest N the first sharded layout keeps
        its final state for the profile."""
        profiled = n == max(self.args.sizes) and name == f"{self.args.shards[0]} shards"
        keep = self.state_path if profiled else None
        run = run_admm(request, n, name, options, self.settings, keep_state=keep)
        self.runs.append(run)
        self.save()
        log.info(
            "N=%d ADMM %s: wall %.2f s, %d it, converged %s, cost %.4f, gap %s, "
            "violation %.2g, peak %.0f MiB",
            n,
            name,
            run.wall,
            run.iterations,
            run.converged,
            run.cost,
            fmt_gap((run.cost - self.central[n]["cost"]) / self.central[n]["cost"]),
            run.violation,
            run.peak_workers_mib,
        )

    def largest(self, request: dict[str, Any], n: int) -> None:
        """At the largest N: the other caps on the fastest sharded layout (the gap/time
        trade-off), then the x-update profile if ADMM missed the time target or
        ``--profile``."""
        fastest = min(
            (r for r in self.runs if r.n == n and "shards" in r.layout),
            key=lambda r: r.wall,
            default=None,
        )
        slow = fastest is not None and fastest.wall > TARGET_RATIO * self.central[n]["wall"]
        if fastest is not None:
            self.trade_off(request, n, fastest)
        if slow or self.args.profile:
            shards = self.args.shards[0]
            log.info("profiling one shard's x-update (shard 1 of %d at N=%d)", shards, n)
            self.prof = profile_shard(request, shards, self.state_path)
            print(self.prof.pop("cprofile_text"), file=sys.stderr)
            log.info("profile: %s", self.prof)
            self.save()

    def trade_off(self, request: dict[str, Any], n: int, fastest: Run) -> None:
        """The fastest sharded layout again with each other cap of ``--caps``."""
        options = {"one_per_site_max": 0, "shards": fastest.actors}
        for cap in sorted(c for c in self.args.caps if c != self.args.max_iterations):
            run = run_admm(
                request, n, fastest.layout, options, {**self.settings, "max_iterations": cap}
            )
            self.runs.append(run)
            self.save()
            log.info(
                "N=%d ADMM %s cap %d: wall %.2f s, gap %s",
                n,
                fastest.layout,
                cap,
                run.wall,
                fmt_gap((run.cost - self.central[n]["cost"]) / self.central[n]["cost"]),
            )


if __name__ == "__main__":
    sys.exit(main())
