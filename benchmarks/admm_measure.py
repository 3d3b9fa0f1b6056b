"""Measurement for the portfolio ADMM benchmark (``portfolio_admm.py``): the memory and
machine-load sampler, the centralised reference (in a spawned process) and one ADMM job on
Ray, each recorded as a ``Run``."""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import platform
import re
import resource
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

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


CENTRAL_LIMIT_S = 60.0
"""The centralised solve's time limit in this benchmark's first try (a request's
``time-limit``; vpp sets none by default)."""


def centralised_job(
    request: dict[str, Any], warmup: dict[str, Any], time_limit: float | None = None
) -> dict[str, Any]:
    """Runs in a fresh process: warm-up, then the timed build+solve. ``time_limit`` replaces
    this benchmark's 60 s HiGHS limit (only for the fallback reference, see
    ``run_centralised``)."""
    from vpp.errors import SolverError
    from vpp.portfolio import CentralisedPortfolio

    # vpp itself has no default limit (a request's time-limit); this benchmark's first try
    # keeps the 60 s it always used, so its rows stay comparable
    limit = CENTRAL_LIMIT_S if time_limit is None else time_limit
    CentralisedPortfolio(warmup).solve()
    capture = _Capture()
    logging.getLogger("vpp.solver").addHandler(capture)
    t0 = time.perf_counter()
    problem = CentralisedPortfolio(request)
    built = time.perf_counter() - t0
    model = problem.model
    size = {"cols": model.n_cols, "rows": model.n_rows, "ints": int(model.integrality().sum())}
    try:
        result = problem.solve(limit)
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
        "limit_s": limit,
        **size,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def run_centralised(
    request: dict[str, Any], warmup: dict[str, Any], fallback_limit: float
) -> dict[str, Any]:
    """vpp's centralised solve with a 60 s limit (:data:`CENTRAL_LIMIT_S`); if HiGHS finds no
    feasible point by then (on a loaded machine), once more with ``fallback_limit`` for a
    reference cost."""
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
    """One ADMM job on Ray in a fresh checkpoint directory: wall time from starting the
    coordinator actor to the result in the driver, memory, and the per-iteration progress."""
    # method "admm" whatever the size: ``auto`` would solve small portfolios centralised
    request = {**request, "method": "admm"}
    wait_for_actor_exit()
    job = _AdmmJob()
    with tempfile.TemporaryDirectory(prefix="vpp-bench-ckpt-") as ckpt:
        body = job.run(request, pool_options, settings, ckpt)
        if keep_state is not None:  # the final ADMM state, for the x-update profile
            warm = list(Path(ckpt, "warm").glob("*.npz"))
            if warm:
                keep_state.write_bytes(warm[0].read_bytes())
    p = body["portfolio"]
    assert p["warm-start"] is False, "a benchmark job must not warm-start"
    run = Run(n, "admm", layout, settings.get("max_iterations", 100), actor_count(n, pool_options))
    _record_result(run, p)
    run.wall = job.wall
    run.peak_workers_mib, run.peak_all_mib = job.mem.peak_workers, job.mem.peak_all
    run.extra["peak_processes"] = job.mem.peak_processes
    run.other_cores = job.mem.other_cores
    run.coordinator_up = job.coordinator_up
    if job.history:
        _record_progress(run, job.history, job.wall, job.coordinator_up)
    return run


class _AdmmJob:
    """The timed part of ``run_admm``: coordinator actor, ``run_portfolio``, memory."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.wall = math.nan
        self.coordinator_up = math.nan
        self.mem = MemorySampler()

    def run(
        self,
        request: dict[str, Any],
        pool_options: dict[str, Any],
        settings: dict[str, Any],
        ckpt: str,
    ) -> dict[str, Any]:
        import ray

        from actors.run import run_portfolio, start_coordinator

        with self.mem:
            t0 = time.perf_counter()
            coordinator = start_coordinator(ckpt)
            ray.get(coordinator.progress.remote("-"))  # its process is up (timed apart)
            self.coordinator_up = time.perf_counter() - t0
            body: dict[str, Any] = run_portfolio(
                request,
                job_id=uuid.uuid4().hex,
                settings=settings,
                pool_options=pool_options,
                on_progress=self.history.append,
                coordinator=coordinator,
            )
            self.wall = time.perf_counter() - t0
        ray.kill(coordinator)
        return body


def _record_result(run: Run, p: dict[str, Any]) -> None:
    """The result's ``portfolio`` body into ``run``."""
    run.cost = float(p["cost"]["value"])
    run.violation = float(p["target-violation-kw"])
    run.iterations = int(p["iterations"])
    run.converged = bool(p["converged"])
    run.feasibility_cost = float(p.get("feasibility-cost", math.nan))
    run.admm_objective = float(p.get("admm-objective", math.nan))
    run.degraded = len(p["degraded-sites"])


def _record_progress(
    run: Run, history: list[dict[str, float]], wall: float, coordinator_up: float
) -> None:
    """Where the time went, from the coordinator's per-iteration progress."""
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


# -- the machine ----------------------------------------------------------------------------
def machine() -> dict[str, str]:
    """What the report's "Machine:" line names."""
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
