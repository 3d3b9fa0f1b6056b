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
    HiGHS stops at vpp's 60 s MIP time limit the MIP gap it reports is recorded: the
    reference is then an incumbent, and ``cost * (1 - mip_gap)`` a lower bound on the optimum.
``admm``
    ``actors.run.run_portfolio(request, settings=..., pool_options=...)`` on a local Ray
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
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import math
import multiprocessing
import os
import platform
import pstats
import re
import resource
import shlex
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from report import write_section  # benchmarks/report.py: run as python benchmarks/<script>.py

SECTION = "## Portfolio ADMM (issue 3)"
TARGET_GAP = 1e-3  # relative
TARGET_VIOLATION_PER_SITE = 1e-6  # kW
TARGET_RATIO = 3.0  # ADMM wall / centralised wall at N = 1,000
SEED = 1
SHIFTABLE_SHARE = 0.1

log = logging.getLogger("bench")


# -- memory sampling ---------------------------------------------------------------------
class MemorySampler:
    """Peak summed RSS of this process + Ray workers, and of Ray's daemons, every ``period``;
    also the CPU time of this process tree against the whole machine's, to tell how busy the
    (shared) machine was with other work during the measurement."""

    def __init__(self, period: float = 0.2) -> None:
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.period = period
        self.peak_workers = 0.0  # MiB: driver + ray:: worker processes
        self.peak_all = 0.0  # MiB: plus Ray's daemons
        self.peak_processes = 0
        self.other_cores = math.nan  # mean CPU cores busy outside this process tree
        self._first: dict[tuple[int, float], float] = {}
        self._last: dict[tuple[int, float], float] = {}
        self._started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[float, float, int]:
        workers, daemons, count = 0.0, 0.0, 0
        for p in [self.me, *self.me.children(recursive=True)]:
            with contextlib.suppress(self.psutil.Error):
                rss = float(p.memory_info().rss)
                cpu = p.cpu_times()
                key = (p.pid, p.create_time())
                self._first.setdefault(key, cpu.user + cpu.system if not self._started else 0.0)
                self._last[key] = cpu.user + cpu.system
                if p.pid == self.me.pid or is_ray_worker(p):
                    workers += rss
                    count += p.pid != self.me.pid
                else:
                    daemons += rss
        self._started = True
        return workers / 2**20, (workers + daemons) / 2**20, count

    def _record(self) -> None:
        w, a, c = self.sample()
        self.peak_workers = max(self.peak_workers, w)
        self.peak_all = max(self.peak_all, a)
        self.peak_processes = max(self.peak_processes, c)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._record()

    @staticmethod
    def _busy(t: Any) -> float:
        return float(sum(t)) - t.idle - getattr(t, "iowait", 0.0)

    def __enter__(self) -> MemorySampler:
        self._t0, self._busy0 = time.perf_counter(), self._busy(self.psutil.cpu_times())
        self._record()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._record()
        wall = time.perf_counter() - self._t0
        busy = self._busy(self.psutil.cpu_times()) - self._busy0
        mine = sum(self._last[k] - self._first[k] for k in self._last)
        self.other_cores = max(0.0, busy - mine) / max(wall, 1e-9)


RAY_DAEMONS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")  # per-node agents, not workers


def is_ray_worker(p: Any) -> bool:
    """Ray renames its worker processes ``ray::<Actor>[.<method>]`` / ``ray::IDLE``
    (setproctitle); its per-node agents use the prefix too and are daemons here."""
    cmd = _cmd(p)
    return cmd.startswith("ray::") and not cmd.startswith(RAY_DAEMONS)


def wait_for_actor_exit(timeout: float = 60.0) -> None:
    """Block until the killed site/coordinator actors' processes are gone (fair memory
    baselines for the next job)."""
    import psutil

    deadline = time.monotonic() + timeout
    me = psutil.Process()
    while time.monotonic() < deadline:
        alive = [
            p
            for p in me.children(recursive=True)
            if is_ray_worker(p) and not _cmd(p).startswith("ray::IDLE")
        ]
        if not alive:
            return
        time.sleep(0.2)
    log.warning("some actor processes are still alive after %.0f s", timeout)


def _cmd(p: Any) -> str:
    try:
        return " ".join(p.cmdline())
    except Exception:
        return ""


# -- centralised (in a spawned process) ----------------------------------------------------
class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def centralised_job(
    request: dict[str, Any], warmup: dict[str, Any], time_limit: float | None = None
) -> dict[str, Any]:
    """Runs in a fresh process: warm-up, then the timed build+solve. ``time_limit`` replaces
    vpp's 60 s HiGHS limit (only for the fallback reference, see ``run_centralised``)."""
    import vpp.portfolio
    from vpp.errors import SolverError
    from vpp.portfolio import CentralisedPortfolio
    from vpp.solver import HighsSolver

    if time_limit is not None:

        class LongerHighs(HighsSolver):
            def __init__(self, model: Any, **kwargs: Any) -> None:
                super().__init__(model, **{**kwargs, "time_limit": time_limit})

        vpp.portfolio.HighsSolver = LongerHighs  # type: ignore[misc]
    CentralisedPortfolio(warmup).solve()
    capture = _Capture()
    logging.getLogger("vpp.solver").addHandler(capture)
    t0 = time.perf_counter()
    problem = CentralisedPortfolio(request)
    built = time.perf_counter() - t0
    model = problem.model
    size = {"cols": model.n_cols, "rows": model.n_rows, "ints": int(model.integrality().sum())}
    try:
        result = problem.solve()
    except SolverError as err:
        return {"failed": str(err), "wall": time.perf_counter() - t0, "build": built, **size}
    wall = time.perf_counter() - t0
    body = result.to_json()["portfolio"]
    gaps = [float(r.args[0]) for r in capture.records if "time limit" in r.getMessage()]  # type: ignore[index, arg-type]
    return {
        "wall": wall,
        "build": built,
        "cost": float(body["cost"]["value"]),
        "violation": float(body["target-violation-kw"]),
        "mip_gap": gaps[-1] if gaps else 0.0,
        "time_limit": bool(gaps),
        "limit_s": time_limit or 60.0,
        **size,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def run_centralised(
    request: dict[str, Any], warmup: dict[str, Any], fallback_limit: float
) -> dict[str, Any]:
    """vpp's centralised solve as shipped; if HiGHS finds no feasible point within vpp's 60 s
    limit (on a loaded machine), once more with ``fallback_limit`` for a reference cost."""
    ctx = multiprocessing.get_context("spawn")
    out: dict[str, Any] = {}
    for limit in (None, fallback_limit):
        # the sampler only measures the machine's other load here
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool, MemorySampler() as mem:
            got = pool.submit(centralised_job, request, warmup, limit).result()
        got["other_cores"] = mem.other_cores
        if "failed" not in got:
            return {**got, **out}
        log.warning("centralised failed (%s) after %.1f s", got["failed"], got["wall"])
        out = {
            "shipped_failed": got["failed"],
            "shipped_wall": got["wall"],
            "shipped_other_cores": mem.other_cores,
        }
    raise RuntimeError(f"the centralised reference failed: {out}")


# -- ADMM on Ray ----------------------------------------------------------------------------
@dataclass
class Run:
    n: int
    method: str
    layout: str
    cap: int | None = None
    actors: int = 0
    wall: float = math.nan
    cost: float = math.nan
    violation: float = math.nan
    iterations: int = 0
    converged: bool | None = None
    feasibility_cost: float = math.nan
    admm_objective: float = math.nan
    peak_workers_mib: float = math.nan
    peak_all_mib: float = math.nan
    s_per_iter: float = math.nan
    coordinator_up: float = math.nan  # start the coordinator actor until it answers
    startup: float = math.nan  # site actors + models + solve_alone (before iteration 1)
    after: float = math.nan  # parse, pool set-up, feasibility step, result, polling
    rho_changes: int = 0
    other_cores: float = math.nan  # CPU cores busy with other work on the machine meanwhile
    degraded: int = 0
    final_residuals: tuple[float, float, float, float] = (math.nan,) * 4
    extra: dict[str, Any] = field(default_factory=dict)


def actor_count(n: int, pool_options: dict[str, Any]) -> int:
    if n <= pool_options.get("one_per_site_max", 16):
        return n
    return min(int(pool_options["shards"]), n)


def run_admm(
    request: dict[str, Any],
    n: int,
    layout: str,
    pool_options: dict[str, Any],
    settings: dict[str, Any],
    keep_state: Path | None = None,
) -> Run:
    import ray

    from actors.run import run_portfolio, start_coordinator

    wait_for_actor_exit()
    history: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="vpp-bench-ckpt-") as ckpt:
        with MemorySampler() as mem:
            t0 = time.perf_counter()
            coordinator = start_coordinator(ckpt)
            ray.get(coordinator.progress.remote("-"))  # its process is up (timed apart)
            coordinator_up = time.perf_counter() - t0
            body = run_portfolio(
                request,
                job_id=uuid.uuid4().hex,
                settings=settings,
                pool_options=pool_options,
                on_progress=history.append,
                coordinator=coordinator,
            )
            wall = time.perf_counter() - t0
        ray.kill(coordinator)
        if keep_state is not None:  # the final ADMM state, for the x-update profile
            warm = list(Path(ckpt, "warm").glob("*.npz"))
            if warm:
                keep_state.write_bytes(warm[0].read_bytes())
    p = body["portfolio"]
    assert p["warm-start"] is False, "a benchmark job must not warm-start"
    run = Run(n, "admm", layout, settings.get("max_iterations", 100), actor_count(n, pool_options))
    run.wall = wall
    run.cost = float(p["cost"]["value"])
    run.violation = float(p["target-violation-kw"])
    run.iterations = int(p["iterations"])
    run.converged = bool(p["converged"])
    run.feasibility_cost = float(p.get("feasibility-cost", math.nan))
    run.admm_objective = float(p.get("admm-objective", math.nan))
    run.degraded = len(p["degraded-sites"])
    run.peak_workers_mib, run.peak_all_mib = mem.peak_workers, mem.peak_all
    run.extra["peak_processes"] = mem.peak_processes
    run.other_cores = mem.other_cores
    run.coordinator_up = coordinator_up
    if history:
        seconds = np.array([h["seconds"] for h in history])
        per = np.diff(seconds)
        run.s_per_iter = float(np.median(per)) if per.size else float(seconds[0])
        run.startup = float(seconds[0]) - run.s_per_iter
        run.after = wall - coordinator_up - float(seconds[-1])
        rho = np.array([h["rho"] for h in history])
        run.rho_changes = int(np.count_nonzero(np.diff(rho)))
        last = history[-1]
        run.final_residuals = (
            last["primal_residual"],
            last["primal_tolerance"],
            last["dual_residual"],
            last["dual_tolerance"],
        )
        run.extra["rho_first_last"] = (float(rho[0]), float(rho[-1]))
    return run


# -- x-update profile -----------------------------------------------------------------------
def prox_of(site: Any) -> Any:
    """A site's ``ProxSolver`` (built by its first x-update), looked at read-only."""
    prox = site._prox
    assert prox is not None, "x-update first"
    return prox


def profile_shard(
    request: dict[str, Any],
    n_shards: int,
    state_path: Path | None,
    rounds: int = 2,
    variant_sites: int = 100,
) -> dict[str, Any]:
    """One shard's x-update, in this process: where the time per site goes.

    Uses the final ADMM state of the sharded job (rho and targets) when available, else the
    sites' own optimum and rho from the prices. Reads ``SiteProblem._prox`` and
    ``ProxSolver._solver`` etc. (read-only) to time the Clarabel call on its own."""
    import clarabel
    import scipy.sparse as sp

    from actors.site import SiteShard
    from vpp.admm import AdmmState, initial_rho
    from vpp.portfolio import parse_portfolio, price_scale

    portfolio = parse_portfolio(request)
    n = len(portfolio.sites)
    size = math.ceil(n / n_shards)
    rows = list(range(size))  # the first shard, as actors.pool._groups makes it
    ids = [portfolio.sites[i].id for i in rows]
    out: dict[str, Any] = {"sites": len(rows), "n": n, "shards": n_shards}
    c = time.perf_counter()
    shard = SiteShard(ids, [portfolio.site_request(i) for i in rows])
    out["build"] = (time.perf_counter() - c) / len(rows)
    c = time.perf_counter()
    x0, _, _ = shard.solve_alone()
    out["solve_alone"] = (time.perf_counter() - c) / len(rows)
    if state_path is not None and state_path.exists():
        state = AdmmState.load(state_path)
        rho, x, zbar, u = state.rho, state.x, state.zbar, state.u
        targets = x - x.mean(axis=0) + zbar - u
        out["state"] = f"the final state of that job (iteration {state.iteration})"
    else:
        rho = initial_rho(price_scale(portfolio), x0)
        targets = np.zeros((n, x0.shape[1]))
        targets[rows] = x0
        out["state"] = "the sites' own optimum (no ADMM state)"
    out["rho"] = rho
    out["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
    sites = shard.sites

    def whole(r: float) -> float:
        c = time.perf_counter()
        shard.x_update(r, targets, rows)
        return (time.perf_counter() - c) / len(rows)

    out["first"] = whole(rho)  # ProxSolver construction + factorisation + solve
    out["steady"] = float(np.median([whole(rho) for _ in range(rounds)]))  # only q changes
    out["rho_change"] = whole(2.0 * rho)  # residual balancing: every solver is rebuilt
    whole(rho)  # back to rho (rebuilds again)

    # per-site components, no profiler; median over rounds of the per-site means
    parts: dict[str, list[float]] = {
        k: [] for k in ("span", "prox", "q", "update", "clarabel", "schedule_of_last")
    }
    iters: list[int] = []
    spans = shard._spans
    for _ in range(rounds):
        acc = dict.fromkeys(parts, 0.0)
        for site_id, site, row in zip(ids, sites, rows, strict=True):
            prox = prox_of(site)
            target = targets[row]
            c = time.perf_counter()
            with spans.start_as_current_span("site.solve") as span:
                span.set_attribute("vpp.site", site_id)
            t1 = time.perf_counter()
            site.prox(rho, target)
            t2 = time.perf_counter()
            q = np.asarray(site.base_cost, float).copy()
            q[prox.quadratic_cols] -= rho * target
            q = q[prox.free]  # the solver sees the free columns only (vpp/qp.py)
            t3 = time.perf_counter()
            prox._solver.update(q=q)
            t4 = time.perf_counter()
            sol = prox._solver.solve()
            t5 = time.perf_counter()
            site.schedule_of_last()
            t6 = time.perf_counter()
            for k, v in zip(
                parts, (t1 - c, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True
            ):
                acc[k] += v
            iters.append(sol.iterations)
        for k in parts:
            parts[k].append(acc[k] / len(rows))
    for k, per_round in parts.items():
        out[k] = float(np.median(per_round))
    out["clarabel_iters"] = float(np.mean(iters))
    out["clarabel_iters_max"] = int(np.max(iters))
    shapes = [(prox_of(s)._a.shape, prox_of(s)._a.nnz) for s in sites]
    out["kkt"] = (
        float(np.mean([a[0][1] for a in shapes])),
        float(np.mean([a[0][0] for a in shapes])),
        float(np.mean([a[1] for a in shapes])),
    )
    out["bound_rows"] = float(
        np.mean(
            [
                int(np.isfinite(s.model.bounds()[0]).sum() + np.isfinite(s.model.bounds()[1]).sum())
                for s in sites
            ]
        )
    )

    # measured alternatives on the same problems, Clarabel driven directly
    def variant(**opts: Any) -> tuple[float, float, float]:
        """Mean seconds per re-solve, mean iterations, max |P - P_default| (kW)."""
        secs, its, dev = [], [], []
        for site, row in subset:
            prox = prox_of(site)
            q = site.base_cost.copy()
            q[prox.quadratic_cols] -= rho * targets[row]
            settings = clarabel.DefaultSettings()
            settings.verbose = False
            for k, v in opts.items():
                setattr(settings, k, v)
            solver = clarabel.DefaultSolver(
                prox._p,
                q,
                prox._a,
                prox._b,
                prox._cones,
                settings,
            )
            solver.solve()  # the first solve (factorisation) untimed
            c = time.perf_counter()
            sol = solver.solve()
            secs.append(time.perf_counter() - c)
            its.append(sol.iterations)
            ref: Any = site.last_x
            dev.append(float(np.max(np.abs(np.asarray(sol.x)[site.power] - ref[site.power]))))
        return float(np.mean(secs)), float(np.mean(its)), float(np.max(dev))

    subset = list(zip(sites, rows, strict=True))[:variant_sites]
    out["variant_sites"] = len(subset)
    for site, row in subset:  # last_x = the default-settings solution
        site.prox(rho, targets[row])
    out["variants"] = {
        "default (as vpp)": variant(),
        "tol_gap_abs = tol_gap_rel = tol_feas = 1e-6": variant(
            tol_gap_abs=1e-6, tol_gap_rel=1e-6, tol_feas=1e-6
        ),
        "equilibrate_enable = False": variant(equilibrate_enable=False),
        'direct_solve_method = "faer"': variant(direct_solve_method="faer"),
    }

    # a rho change: rebuild the solver (vpp now) vs. update P's values in place
    rebuild, update, dev = [], [], []
    for site, row in subset:
        prox = prox_of(site)
        new_rho = 2.0 * rho
        q = site.base_cost.copy()
        q[prox.quadratic_cols] -= new_rho * targets[row]
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        diag = np.zeros(prox.n)
        diag[prox.quadratic_cols] = new_rho
        c = time.perf_counter()
        p_new = sp.diags(diag, format="csc")
        fresh = clarabel.DefaultSolver(p_new, q, prox._a, prox._b, prox._cones, settings)
        x_fresh = np.asarray(fresh.solve().x)
        rebuild.append(time.perf_counter() - c)
        solver = clarabel.DefaultSolver(prox._p, q, prox._a, prox._b, prox._cones, settings)
        solver.solve()
        if solver.is_data_update_allowed():
            c = time.perf_counter()
            solver.update(P=p_new.data, q=q)
            x_upd = np.asarray(solver.solve().x)
            update.append(time.perf_counter() - c)
            dev.append(float(np.max(np.abs(x_upd[site.power] - x_fresh[site.power]))))
    out["rho_rebuild"] = float(np.mean(rebuild))
    out["rho_update"] = float(np.mean(update)) if update else math.nan
    out["rho_update_dev"] = float(np.max(dev)) if dev else math.nan

    # cProfile of one steady x-update (inflates the Python side; for the shares only)
    prof = cProfile.Profile()
    prof.enable()
    shard.x_update(rho, targets, rows)
    prof.disable()
    stats = pstats.Stats(prof)
    raw = stats.stats  # type: ignore[attr-defined]
    total = max(float(stats.total_tt), 1e-12)  # type: ignore[attr-defined]
    native = sum(v[2] for k, v in raw.items() if "DefaultSolver" in k[2])
    cum = {f"{Path(k[0]).name}:{k[2]}": v[3] for k, v in raw.items()}
    out["cprofile_share"] = {
        "Clarabel (native solve + update)": native / total,
        "SiteProblem.prox (cumulative)": cum.get("site.py:prox", 0.0) / total,
        "SiteProblem.schedule_of_last (cumulative)": cum.get("site.py:schedule_of_last", 0.0)
        / total,
    }
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    out["cprofile_text"] = buf.getvalue()
    return out


# -- report ---------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else cpu
    mem = "?"
    with contextlib.suppress(OSError):
        m = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        mem = f"{int(m.group(1)) / 2**20:.0f} GiB" if m else mem
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": str(nproc),
        "cpu": cpu,
        "mem": mem,
        "python": platform.python_version(),
        "ray": version("ray"),
        "highspy": version("highspy"),
        "clarabel": version("clarabel"),
        "numpy": version("numpy"),
        "os": f"{platform.system()} {platform.release()}",
    }


def fmt_s(x: float) -> str:
    if math.isnan(x):
        return "–"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def fmt_load(cores: float) -> str:
    return "?" if math.isnan(cores) else f"{cores:.2f}"


def fmt_gap(gap: float) -> str:
    return "–" if math.isnan(gap) else f"{100 * gap:+.4f} %"


def results_table(central: dict[int, dict[str, Any]], runs: list[Run]) -> str:
    head = (
        "| N | method | layout (actors) | iteration cap | **wall s** | × centralised "
        "| iterations | converged | cost EUR | **gap** | max violation kW "
        "| feasibility-step cost EUR | peak RSS MiB: driver + workers (+ Ray daemons) "
        "| other load, cores |\n"
        "|--:|---|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|\n"
    )
    lines = []
    for n in sorted(central):
        c = central[n]
        tl = ""
        if c.get("shipped_failed"):
            tl = (
                f" — as shipped: no feasible point within vpp's 60 s HiGHS limit (gave up "
                f"after {c['shipped_wall']:.0f} s); this row: the same with a "
                f"{c['limit_s']:.0f} s limit"
            )
        if c["time_limit"]:
            tl += f" (stopped at the time limit, MIP gap {100 * c['mip_gap']:.3f} %)"
        lines.append(
            f"| {n} | centralised HiGHS{tl} | 1 process | – | **{fmt_s(c['wall'])}** | 1 | – | – "
            f"| {c['cost']:.4f} | – | {c['violation']:.2g} | – | {c['rss_mib']:.0f} "
            f"| {fmt_load(c.get('other_cores', math.nan))} |"
        )
        for r in (r for r in runs if r.n == n):
            ratio = r.wall / c["wall"]
            gap = (r.cost - c["cost"]) / c["cost"]
            lines.append(
                f"| {n} | ADMM on Ray | {r.layout} ({r.actors}) | {r.cap} | **{fmt_s(r.wall)}** "
                f"| {ratio:.1f} | {r.iterations} | {'yes' if r.converged else 'no'} "
                f"| {r.cost:.4f} | **{fmt_gap(gap)}** | {r.violation:.2g} "
                f"| {r.feasibility_cost:+.4f} | {r.peak_workers_mib:.0f} "
                f"({r.peak_all_mib:.0f}) | {fmt_load(r.other_cores)} |"
            )
    return head + "\n".join(lines)


def timing_table(runs: list[Run]) -> str:
    head = (
        "| N | layout (actors) | cap | coordinator actor up s | site actors, models, solve "
        "alone s | s / iteration | iterations s | feasibility step, result, rest s "
        "| rho changes | final r / eps_pri | final s / eps_dual |\n"
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    lines = []
    for r in runs:
        pr, pt, dr, dtol = r.final_residuals
        lines.append(
            f"| {r.n} | {r.layout} ({r.actors}) | {r.cap} | {fmt_s(r.coordinator_up)} "
            f"| {fmt_s(r.startup)} "
            f"| {fmt_s(r.s_per_iter)} | {fmt_s(r.s_per_iter * r.iterations)} | {fmt_s(r.after)} "
            f"| {r.rho_changes} | {pr / pt:.1f} | {dr / dtol:.1f} |"
        )
    return head + "\n".join(lines)


def profile_paragraphs(prof: dict[str, Any], runs: list[Run]) -> list[str]:
    ms = lambda s: f"{1e3 * s:.2f}"  # noqa: E731
    steady = prof["steady"]
    native = prof["clarabel"] + prof["update"]
    prox_py = prof["prox"] - native
    pct = lambda x: f"{100 * x / steady:.0f} %"  # noqa: E731
    other = steady - prof["span"] - prof["prox"] - prof["schedule_of_last"]
    table1 = "\n".join(
        [
            "| per site and x-update | ms | share |\n|---|--:|--:|",
            f"| **`SiteShard.x_update`, steady state (same rho), per site** | **{ms(steady)}** "
            "| 100 % |",
            f"| — Clarabel `solve()` (native, incl. returning the solution) "
            f"| {ms(prof['clarabel'])} | {pct(prof['clarabel'])} |",
            f"| — Clarabel `update(q=...)` | {ms(prof['update'])} | {pct(prof['update'])} |",
            f"| — rest of `SiteProblem.prox` / `ProxSolver.solve` (cost copy, q, `np.asarray`, "
            f"indexing) | {ms(prox_py)} | {pct(prox_py)} |",
            f"| — `schedule_of_last()` (a `SiteSchedule`, only for its cost) "
            f"| {ms(prof['schedule_of_last'])} | {pct(prof['schedule_of_last'])} |",
            f"| — OpenTelemetry span `site.solve` | {ms(prof['span'])} | {pct(prof['span'])} |",
            f"| — the rest (loop, `np.array` of the results, timer noise) | {ms(other)} "
            f"| {pct(other)} |",
            "| first x-update of a site (`ProxSolver` build + factorisation) "
            f"| {ms(prof['first'])} | |",
            f"| x-update right after a rho change (vpp rebuilds every Clarabel solver) "
            f"| {ms(prof['rho_change'])} | |",
        ]
    )
    rows = [
        f"| Clarabel, same x-update problems (first {prof.get('variant_sites', '')} sites) "
        "| ms / re-solve | IPM iterations "
        "| max abs(dP) vs default, kW |",
        "|---|--:|--:|--:|",
    ]
    for name, (t, it, dev) in prof["variants"].items():
        rows.append(f"| {name} | {ms(t)} | {it:.1f} | {dev:.1e} |")
    rows.append(
        f"| rho change: new `DefaultSolver` + solve (vpp now) | {ms(prof['rho_rebuild'])} | | |"
    )
    rows.append(
        f"| rho change: `update(P=..., q=...)` + solve | {ms(prof['rho_update'])} | "
        f"| {prof['rho_update_dev']:.1e} |"
    )
    table2 = "\n".join(rows)
    shares = ", ".join(f"{k} {100 * v:.0f} %" for k, v in prof["cprofile_share"].items())
    kkt = prof["kkt"]
    iter_note = ""
    big = [r for r in runs if r.n == prof["n"] and r.layout == f"{prof['shards']} shards"]
    if big:
        cores = min(prof["shards"], int(prof.get("cpus", prof["shards"])))
        floor = steady * prof["n"] / cores
        per = [r.s_per_iter for r in big]
        loads = [r.other_cores for r in big]
        iter_note = (
            f" On {cores} cores the x-update of all {prof['n']} sites has a floor of "
            f"{fmt_s(floor)} s per iteration ({prof['n']} x {ms(steady)} ms / {cores}); the "
            f"{prof['shards']}-shard jobs at N = {prof['n']} took {fmt_s(min(per))}–"
            f"{fmt_s(max(per))} s per iteration (median), with {min(loads):.2f}–"
            f"{max(loads):.2f} cores busy with other work on the machine, so the x-update's "
            "CPU time is nearly all of an iteration; Ray calls, the object store, the z/dual "
            "update, checkpoint and progress are the small rest."
        )
    return [
        f"Profile of one shard's x-update: shard 1 of {prof['shards']} at N = {prof['n']} "
        f"({prof['sites']} sites, built in the driver process with `actors.site.SiteShard`; "
        f"rho and targets from {prof['state']}, rho = {prof['rho']:.3g}). Times without a "
        "profiler, per site, median of 2 passes. The x-update QPs have on average "
        f"{kkt[0]:.0f} variables and {kkt[1]:.0f} conic rows ({kkt[2]:.0f} nonzeros), of "
        f"which {prof['bound_rows']:.0f} are variable bounds written as rows; Clarabel takes "
        f"{prof['clarabel_iters']:.1f} interior-point iterations (max "
        f"{prof['clarabel_iters_max']}). For scale: building a site's `SiteProblem` took "
        f"{ms(prof['build'])} ms, its `solve_alone` (HiGHS) {ms(prof['solve_alone'])} ms."
        + iter_note,
        table1,
        f"Under cProfile (which inflates the Python side), one steady x-update: {shares}.",
        table2,
    ]


def report(
    central: dict[int, dict[str, Any]],
    runs: list[Run],
    prof: dict[str, Any] | None,
    command: str,
    info: dict[str, str],
    cap: int,
    elapsed: float,
) -> str:
    mark = lambda ok: "**met**" if ok else "**NOT met**"  # noqa: E731
    main_runs = [r for r in runs if r.cap == cap]
    big = max(central)
    gaps = [(r, (r.cost - central[r.n]["cost"]) / central[r.n]["cost"]) for r in main_runs]
    worst_gap = max(gaps, key=lambda g: g[1])
    viol = [(r, r.violation / r.n) for r in main_runs]
    worst_viol = max(viol, key=lambda v: v[1])
    big_runs = [r for r in main_runs if r.n == big]
    best_big = min(big_runs, key=lambda r: r.wall) if big_runs else None
    ratio_big = best_big.wall / central[big]["wall"] if best_big else math.nan
    ok_gap = worst_gap[1] <= TARGET_GAP
    ok_viol = worst_viol[1] <= TARGET_VIOLATION_PER_SITE
    ok_time = ratio_big <= TARGET_RATIO
    c_big = central[big]
    paragraphs = [
        SECTION,
        "Scheduling a portfolio of N mixed homes x 96 quarter-hours under a binding congestion "
        "limit, centralised (all sites in one HiGHS model, `vpp.portfolio.CentralisedPortfolio"
        "(request).solve()`) against ADMM over Ray actors (`actors.run.run_portfolio`, "
        "coordinator actor + site actors, Clarabel x-updates, then the feasibility step). "
        "One run per row (these jobs take seconds to minutes, so no repeats); wall times in "
        "seconds.",
        f"Command (from the repository root; the whole run took {elapsed / 60:.0f} min):",
        f"```\n{command}\n```",
        f"Machine: nproc = {info['nproc']}, {info['cpu']}, {info['mem']} RAM, {info['os']}; "
        f"Python {info['python']}, Ray {info['ray']}, highspy {info['highspy']}, clarabel "
        f"{info['clarabel']}, numpy {info['numpy']}. Ray: a local `ray.init(num_cpus=2)` "
        "(no dashboard), started before anything is timed.",
        f"Portfolios: `vpp.examples.mixed_portfolio(N, seed={SEED}, shiftable_share="
        f"{SHIFTABLE_SHARE})`: each home has at random a battery, an EV, a heat pump with a "
        "buffer, PV and (10 %) a washing machine to shift (start binaries: the centralised "
        "model is a MILP), a house load and a 17 kW connection; the limit is 70 % of the "
        "homes' unconstrained summed peak. Centralised model sizes: "
        + "; ".join(
            f"N = {n}: {c['cols']:,} columns x {c['rows']:,} rows, {c['ints']:,} integer"
            for n, c in sorted(central.items())
        )
        + ".",
        results_table(central, runs),
        "Columns: **wall s** = centralised `CentralisedPortfolio(request).solve()` incl. the "
        "build, in a warmed-up process; ADMM from starting the coordinator actor to the result "
        "in the driver (actor processes, imports, site models, `solve_alone`, iterations, "
        "feasibility step), excluding `ray.init`. **gap** = (ADMM cost - centralised cost) / "
        "centralised cost, both the settled energy cost of the final schedules. *max "
        "violation* = `portfolio.target-violation-kw` (kW over the limit, summed portfolio). "
        "*feasibility-step cost* = final cost - the ADMM iterate's objective (what splitting the "
        "limit exactly and re-solving each site's LP/MILP within its share cost or saved). "
        "*peak RSS* = sum over the driver and Ray's worker processes (the actors and Ray's idle "
        "workers), sampled every 0.2 s; in brackets including Ray's daemons (raylet, GCS, "
        "...); for the centralised, its process' `ru_maxrss`. RSS counts shared pages once per "
        "process, so the sums overstate physical memory. *other load* = CPU cores kept busy "
        "by other processes on this shared machine during the row's job (machine CPU time "
        "minus this benchmark's process tree, over the wall time; ? = not measured).",
        "Where the ADMM time goes, from the coordinator's per-iteration progress (`seconds` "
        "since `run_admm` started): *coordinator actor up* = `start_coordinator` until the "
        "actor answers; *site actors, models, solve alone* = time to iteration 1 minus one "
        "iteration (the site actors' processes, imports and `SiteProblem`s, then each site's "
        "own optimum: `solve_alone` waits for all of it); *s / iteration* = median; "
        "*feasibility step, result, rest* = wall - coordinator - time at the last iteration "
        "(parsing, the pool's set-up, the feasibility step, the warm-start file, the result "
        "JSON, the driver's 0.25 s progress polling); *final r / eps_pri*, *s / eps_dual* = "
        "last residuals over their tolerances (both <= 1 to converge):",
        timing_table(runs),
    ]
    if c_big["time_limit"]:
        lower = c_big["cost"] - c_big["mip_gap"] * abs(c_big["cost"])
        best = min((r.cost for r in runs if r.n == big), default=math.nan)
        paragraphs.append(
            f"Note on the reference at N = {big}: HiGHS stopped at its "
            f"{c_big['limit_s']:.0f} s time limit (vpp's `HighsSolver(time_limit=60)`"
            f"{'' if c_big['limit_s'] == 60 else ', raised for this reference'}) with a MIP "
            f"gap of {100 * c_big['mip_gap']:.3f} %, "
            f"so the centralised cost {c_big['cost']:.4f} EUR is an incumbent and the optimum "
            f"lies in [{lower:.4f}, {c_big['cost']:.4f}] EUR; the centralised wall time is the "
            "time limit plus the build, not a time to optimality. Measured against the lower "
            f"bound, the best ADMM cost at this N ({best:.4f} EUR) is within "
            f"{100 * (best - lower) / lower:+.3f} % of the optimum. On a more loaded machine "
            "(an earlier attempt of this run, with about 1.5 cores of other load) HiGHS found "
            "no feasible point at all within the 60 s at N = 1000 and `CentralisedPortfolio."
            "solve()` raised `SolverError`; the script then records that and re-solves with "
            "`--fallback-limit` seconds (300) for the reference."
        )
    target_rows = [
        "| target | measured | result |\n|---|---|---|",
        f"| gap ≤ {100 * TARGET_GAP:g} % (every N, cap {cap}) | worst {fmt_gap(worst_gap[1])} "
        f"(N = {worst_gap[0].n}, {worst_gap[0].layout}) | {mark(ok_gap)} |",
        f"| limit exact: violation ≤ {TARGET_VIOLATION_PER_SITE:g} kW per site | worst "
        f"{worst_viol[0].violation:.2g} kW at N = {worst_viol[0].n} | {mark(ok_viol)} |",
        f"| ADMM wall ≤ {TARGET_RATIO:g}x centralised at N = {big} (cap {cap}, fastest layout) "
        f"| {ratio_big:.1f}x ({fmt_s(best_big.wall) if best_big else '–'} s vs "
        f"{fmt_s(c_big['wall'])} s) | {mark(ok_time)} |",
    ]
    lb_big = c_big["cost"] - c_big["mip_gap"] * abs(c_big["cost"])
    for r in sorted((r for r in runs if r.n == big and r.cap != cap), key=lambda r: r.cap or 0):
        ratio = r.wall / c_big["wall"]
        gap = (r.cost - c_big["cost"]) / c_big["cost"]
        target_rows.append(
            f"| the same with the iteration cap at {r.cap} | {ratio:.1f}x ({fmt_s(r.wall)} s), "
            f"gap {fmt_gap(gap)} ({fmt_gap((r.cost - lb_big) / lb_big)} vs the MIP lower bound)"
            # the target is set at the default cap; other caps show the trade-off only
            f" | {'within' if ratio <= TARGET_RATIO and gap <= TARGET_GAP else 'outside'} "
            f"the targets (for comparison; the targets are set at cap {cap}) |"
        )
    paragraphs.append("\n".join(target_rows))
    not_conv = [r for r in main_runs if not r.converged]
    if not_conv:
        paragraphs.append(
            f"{len(not_conv)} of {len(main_runs)} ADMM jobs at cap {cap} stopped at the cap "
            "without meeting the residual tolerances (eps_abs = 1e-5 kW, eps_rel = 1e-4); "
            "their gaps are what the feasibility step makes of the capped iterate."
        )
    capped = [r for r in runs if r.cap != cap]
    if capped:
        trade = [
            "| N | layout | cap | wall s | × centralised | gap | gap vs the MIP lower bound "
            "| feasibility-step cost EUR | converged |",
            "|--:|---|--:|--:|--:|--:|--:|--:|---|",
        ]
        for r in sorted((r for r in runs if r.n == big), key=lambda r: (r.layout, r.cap or 0)):
            c = central[r.n]
            lb = c["cost"] - c["mip_gap"] * abs(c["cost"])
            trade.append(
                f"| {r.n} | {r.layout} | {r.cap} | {fmt_s(r.wall)} | {r.wall / c['wall']:.1f} "
                f"| {fmt_gap((r.cost - c['cost']) / c['cost'])} | {fmt_gap((r.cost - lb) / lb)} "
                f"| {r.feasibility_cost:+.4f} | {'yes' if r.converged else 'no'} |"
            )
        paragraphs.append(f"Gap/time trade-off at N = {big} (lower iteration caps):")
        paragraphs.append("\n".join(trade))
    if prof is not None:
        paragraphs += profile_paragraphs(prof, runs)
        paragraphs += suggestions(central, runs, prof, cap)
    return "\n\n".join(_wrap(p) for p in paragraphs) + "\n"


def suggestions(
    central: dict[int, dict[str, Any]], runs: list[Run], prof: dict[str, Any], cap: int
) -> list[str]:
    """What the measurements above say would shorten the ADMM at the largest N."""
    n = prof["n"]
    c = central[n]
    lb = c["cost"] - c["mip_gap"] * abs(c["cost"])
    at_n = [r for r in runs if r.n == n]
    main = [r for r in at_n if r.cap == cap]
    capped = sorted((r for r in at_n if r.cap != cap), key=lambda r: r.cap or 0)
    steady = prof["steady"]
    cores = min(prof["shards"], int(prof.get("cpus", prof["shards"])))
    python = (
        prof["prox"] - prof["clarabel"] - prof["update"] + prof["schedule_of_last"] + prof["span"]
    )
    items = []
    if main and capped:
        m = min(main, key=lambda r: r.wall)
        parts = ", ".join(
            f"cap {r.cap}: {r.wall / c['wall']:.1f}x, {fmt_gap((r.cost - lb) / lb)}" for r in capped
        )
        items.append(
            f"**The iteration count is the lever.** No job converged under the tolerances "
            f"(eps_abs = 1e-5 kW per element, eps_rel = 1e-4; at N = {n} the dual residual "
            f"ended {m.final_residuals[2] / m.final_residuals[3]:.1f}x its tolerance), so every "
            f"job ran to its cap and the wall time is about linear in it. Against the MIP "
            f"lower bound the cost was {fmt_gap((m.cost - lb) / lb)} at cap {cap} "
            f"({m.wall / c['wall']:.1f}x) and {parts}: every cap measured keeps the gap "
            f"target, while only the lower caps keep the {TARGET_RATIO:g}x time target. A lower "
            "default cap for large portfolios, or a stopping rule on the objective's relative "
            "change (the feasibility step makes the limit exact anyway), buys the time target "
            "for a few hundredths of a percent of cost."
        )
    items.append(
        f"**Clarabel is {100 * prof['clarabel'] / steady:.0f} % of an x-update** "
        f"({ms_(prof['clarabel'])} of {ms_(steady)} ms per site, "
        f"{prof['clarabel_iters']:.1f} interior-point iterations); the Python around it "
        "(`prox`'s cost copy and indexing, `schedule_of_last`, the span) is "
        f"{ms_(python)}"
        " ms, so trimming Python can save at most about "
        f"{100 * python / steady:.0f}"
        " % (cheapest: the cost from `P` and the prices instead of a full `SiteSchedule`, one "
        "span per shard call instead of per site). "
        f"{prof['bound_rows']:.0f} of the {prof['kkt'][1]:.0f} conic rows are variable bounds "
        "(Clarabel has no native bounds), so a QP solver with box constraints or dropping "
        "bounds that cannot bind would shrink the KKT system most; that is not measured here."
    )
    v = prof["variants"]
    d_t, _, _ = v["default (as vpp)"]
    l_t, l_it, l_dev = v["tol_gap_abs = tol_gap_rel = tol_feas = 1e-6"]
    items.append(
        f"**Looser Clarabel tolerances (1e-6) save only {100 * (1 - l_t / d_t):.0f} %** "
        f"({l_it:.1f} iterations instead of {v['default (as vpp)'][1]:.1f}) and move `P` by up "
        f"to {l_dev:.1g} kW, far above ADMM's eps_abs of 1e-5 kW: not worth it. "
        "`equilibrate_enable = False` and the `faer` direct solver are slower."
    )
    rebuild, update = prof["rho_rebuild"], prof["rho_update"]
    changes = max((r.rho_changes for r in main), default=0)
    saved = (rebuild - update) * n * changes / cores
    wall = min((r.wall for r in main), default=math.nan)
    items.append(
        f"**On a rho change, update P instead of rebuilding the solver**: "
        f"`update(P=..., q=...)` costs {ms_(update)} ms per site against {ms_(rebuild)} ms "
        f"for a new `DefaultSolver` (same solution to {prof['rho_update_dev']:.0e} kW); with "
        f"{changes} rho changes at N = {n} that saves about {saved:.1f} s of the "
        f"{fmt_s(wall)} s ({100 * saved / wall:.1f} %): correct and cheap, but small."
    )
    per_site = [r for r in runs if r.layout == "one per site" and r.n > 10]
    if per_site:
        r = max(per_site, key=lambda r: r.n)
        sh = [x for x in runs if x.n == r.n and x.layout == "2 shards" and x.cap == r.cap]
        sh_note = ""
        if sh:
            s2 = sh[0]
            sh_note = (
                f" against {fmt_s(s2.startup)} s, {fmt_s(s2.s_per_iter)} s per iteration and "
                f"{s2.peak_workers_mib:.0f} MiB with 2 shards"
            )
        four = [x for x in runs if x.layout == "4 shards" and x.n == r.n]
        four_note = ""
        if sh and four:
            four_note = (
                f"; 4 shards on {cores} cores ran {fmt_s(four[0].s_per_iter)} s per iteration "
                f"vs {fmt_s(sh[0].s_per_iter)} s with 2, and {four[0].peak_workers_mib:.0f} MiB: "
                "on a CPU-bound x-update, shards beyond the cores add processes, not speed "
                "(`PoolOptions.shards` defaults to twice the CPUs)"
            )
        items.append(
            f"**Keep one actor per site for small portfolios only.** At N = {r.n} it took "
            f"{fmt_s(r.startup)} s to start the actors and solve alone "
            f"({r.startup / r.n:.2f} s per actor), {fmt_s(r.s_per_iter)} s per iteration "
            f"({r.n} Ray calls each) and {r.peak_workers_mib:.0f} MiB of RSS "
            f"(~{(r.peak_workers_mib - (sh[0].peak_workers_mib if sh else 0)) / r.n:.0f} MiB "
            f"per actor){sh_note}{four_note}."
        )
    return ["Suggestions, from the measurements above:", "- " + "\n- ".join(items)]


def ms_(seconds: float) -> str:
    return f"{1e3 * seconds:.2f}"


def _wrap(paragraph: str) -> str:
    """Prose to 100 columns; headings, code, tables as they are; bullets one by one."""
    if paragraph.startswith(("#", "```", "|")):
        return paragraph
    if paragraph.startswith("- "):
        return "\n".join(
            textwrap.fill(
                "- " + item.strip(),
                100,
                subsequent_indent="  ",
                break_long_words=False,
                break_on_hyphens=False,
            )
            for item in paragraph[2:].split("\n- ")
        )
    return textwrap.fill(paragraph, 100, break_long_words=False, break_on_hyphens=False)


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    args = ap.parse_args(argv)
    if args.from_raw:
        saved = json.loads(args.from_raw.read_text())
        text = report(
            {int(k): v for k, v in saved["central"].items()},
            [Run(**r) for r in saved["runs"]],
            saved["profile"],
            saved["command"],
            saved["machine"],
            saved["cap"],
            saved["elapsed"],
        )
        print(text)
        if args.write:
            write_section(args.write, SECTION, text)
            print(f"wrote section {SECTION!r} to {args.write}")
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    cmd = ["python", "benchmarks/portfolio_admm.py", "--sizes", ",".join(map(str, args.sizes))]
    if args.max_iterations != 100:
        cmd += ["--max-iterations", str(args.max_iterations)]
    if args.write:
        cmd += ["--write", str(args.write)]
    if args.profile:
        cmd += ["--profile"]
    if args.raw:
        cmd += ["--raw", str(args.raw)]
    command = shlex.join(cmd)
    started = time.perf_counter()

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
    run_portfolio(warmup, settings={"max_iterations": 2}, pool_options={"one_per_site_max": 2})
    settings = {"max_iterations": args.max_iterations}
    central: dict[int, dict[str, Any]] = {}
    runs: list[Run] = []
    prof: dict[str, Any] | None = None
    state_path = Path(tempfile.gettempdir()) / f"vpp-bench-state-{os.getpid()}.npz"
    info = machine()

    def save() -> None:
        if args.raw:
            args.raw.write_text(
                json.dumps(
                    {
                        "central": central,
                        "runs": [asdict(r) for r in runs],
                        "profile": prof,
                        "command": command,
                        "machine": info,
                        "cap": args.max_iterations,
                        "elapsed": time.perf_counter() - started,
                    },
                    indent=1,
                )
            )

    for n in args.sizes:
        c = time.perf_counter()
        request = mixed_portfolio(n, seed=SEED, shiftable_share=SHIFTABLE_SHARE)
        log.info(
            "N=%d: request generated in %.1f s (%s)",
            n,
            time.perf_counter() - c,
            request["target"]["max-consumption"],
        )
        central[n] = run_centralised(request, warmup, args.fallback_limit)
        save()
        log.info("N=%d centralised: %s", n, {k: v for k, v in central[n].items()})
        layouts: list[tuple[str, dict[str, Any]]] = []
        if n <= args.one_per_site_max:
            layouts.append(("one per site", {"one_per_site_max": n}))
        layouts += [
            (f"{s} shards", {"one_per_site_max": 0, "shards": s})
            for k, s in enumerate(args.shards)
            if k == 0 or n <= args.more_shards_max
        ]
        for name, options in layouts:
            profiled = n == max(args.sizes) and name == f"{args.shards[0]} shards"
            keep = state_path if profiled else None
            run = run_admm(request, n, name, options, settings, keep_state=keep)
            runs.append(run)
            save()
            log.info(
                "N=%d ADMM %s: wall %.2f s, %d it, converged %s, cost %.4f, gap %s, "
                "violation %.2g, peak %.0f MiB",
                n,
                name,
                run.wall,
                run.iterations,
                run.converged,
                run.cost,
                fmt_gap((run.cost - central[n]["cost"]) / central[n]["cost"]),
                run.violation,
                run.peak_workers_mib,
            )
        if n == max(args.sizes):
            fastest = min(
                (r for r in runs if r.n == n and "shards" in r.layout),
                key=lambda r: r.wall,
                default=None,
            )
            slow = fastest is not None and fastest.wall > TARGET_RATIO * central[n]["wall"]
            if fastest is not None:  # the gap/time trade-off at the largest N
                options = {"one_per_site_max": 0, "shards": fastest.actors}
                for cap in sorted(c for c in args.caps if c != args.max_iterations):
                    run = run_admm(
                        request, n, fastest.layout, options, {**settings, "max_iterations": cap}
                    )
                    runs.append(run)
                    save()
                    log.info(
                        "N=%d ADMM %s cap %d: wall %.2f s, gap %s",
                        n,
                        fastest.layout,
                        cap,
                        run.wall,
                        fmt_gap((run.cost - central[n]["cost"]) / central[n]["cost"]),
                    )
            if slow or args.profile:
                shards = args.shards[0]
                log.info("profiling one shard's x-update (shard 1 of %d at N=%d)", shards, n)
                prof = profile_shard(request, shards, state_path)
                print(prof.pop("cprofile_text"), file=sys.stderr)
                log.info("profile: %s", prof)
                save()
    state_path.unlink(missing_ok=True)
    ray.shutdown()
    elapsed = time.perf_counter() - started
    save()
    text = report(central, runs, prof, command, info, args.max_iterations, elapsed)
    print(text)
    if args.write:
        write_section(args.write, SECTION, text)
        print(f"wrote section {SECTION!r} to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
