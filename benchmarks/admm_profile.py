"""Profiling for the portfolio ADMM benchmark (``portfolio_admm.py``): where one shard's
x-update spends its time per site, measured in the driver process without Ray.

``profile_shard`` builds the first shard of the sharded layout with ``actors.site.SiteShard``
and runs its real ``x_update`` (``SiteProblem.prox`` -> ``vpp.qp.OsqpProx``, with Clarabel's
``ProxSolver`` as the fallback) with thin timers around the calls that do the work: OSQP's
``setup``, ``update`` (by what it changes: ``q``, ``Px`` = a new rho, a numeric
refactorisation; ``l``/``u`` = columns held at 0), ``update_settings`` (a new accuracy) and
``solve`` (OSQP's own ``solve_time`` splits its native solve from its Python wrapper), the
Clarabel fallback, ``OsqpProx``'s construction, ``SiteProblem.prox`` and
``schedule_of_last``. What is not inside a timer is Python overhead (vpp's and the shard
loop's: span, metric, ``call_site``, result arrays).

Phases: the first x-update (builds), a *repeat* toward the same targets (the warm start is
already the answer: a lower bound), *steady* x-updates toward targets moved between calls as
much as the job's last iteration moved them (from its residuals), one after a rho change,
then the steady x-update at each accuracy ``vpp.admm.x_accuracy`` can pick, against
Clarabel's exact solution; and a cProfile of one steady x-update."""

from __future__ import annotations

import cProfile
import io
import math
import os
import pstats
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ACCURACIES = (1e-3, 1e-4, 1e-5, 1e-6)
"""The x-update accuracies (kW) measured: ``vpp.admm.x_accuracy``'s range."""
NO_STATE_MOVE = 0.1
"""kW per element the targets move between steady x-updates when there is no ADMM state."""


class Clock:
    """Seconds and calls per timed name, OSQP's iterations and statuses: one phase's."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)
        self.iterations: list[int] = []
        self.statuses: defaultdict[str, int] = defaultdict(int)
        self.rho_updates = 0  # OSQP's own (adaptive) rho updates: refactorisations in solve

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with its wall time added to ``name``."""

        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return call

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.iterations.clear()
        self.statuses.clear()
        self.rho_updates = 0


class TimedOsqp:
    """An ``osqp.OSQP`` whose calls are timed in a :class:`Clock` (the rest passes through)."""

    def __init__(self, solver: Any, clock: Clock) -> None:
        self._solver, self._clock = solver, clock

    def setup(self, **kwargs: Any) -> Any:
        return self._clock.timed("osqp.setup", self._solver.setup)(**kwargs)

    def update(self, **kwargs: Any) -> Any:
        name = f"osqp.update({','.join(sorted(kwargs))})"
        return self._clock.timed(name, self._solver.update)(**kwargs)

    def update_settings(self, **kwargs: Any) -> Any:
        return self._clock.timed("osqp.update_settings", self._solver.update_settings)(**kwargs)

    def solve(self, *args: Any, **kwargs: Any) -> Any:
        result = self._clock.timed("osqp.solve", self._solver.solve)(*args, **kwargs)
        info = result.info
        self._clock.seconds["osqp.solve native"] += float(info.solve_time)
        self._clock.iterations.append(int(info.iter))
        self._clock.statuses[str(info.status)] += 1
        self._clock.rho_updates += int(info.rho_updates)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._solver, name)


@contextmanager
def instrumented(clock: Clock, sites: list[Any]) -> Iterator[None]:
    """Timers around OSQP, the Clarabel fallback, ``OsqpProx`` and the sites' ``prox`` and
    ``schedule_of_last`` while inside; solvers built inside stay timed."""
    import osqp

    import vpp.qp
    import vpp.site

    # the modules whose names OsqpProx, SiteProblem.prox and OsqpProx.solve look up
    mod_osqp: Any = osqp
    mod_qp: Any = vpp.qp
    mod_site: Any = vpp.site
    real_osqp, real_prox, real_exact = mod_osqp.OSQP, mod_site.OsqpProx, mod_qp.ProxSolver

    class TimedProx(real_prox):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            clock.timed("OsqpProx build", super().__init__)(*args, **kwargs)

        def solve(self, *args: Any, **kwargs: Any) -> Any:
            return clock.timed("OsqpProx.solve", super().solve)(*args, **kwargs)

    class TimedExact(real_exact):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            clock.timed("clarabel.build", super().__init__)(*args, **kwargs)

        def solve(self, *args: Any, **kwargs: Any) -> Any:
            return clock.timed("clarabel.solve", super().solve)(*args, **kwargs)

    mod_osqp.OSQP = lambda: TimedOsqp(real_osqp(), clock)
    mod_site.OsqpProx, mod_qp.ProxSolver = TimedProx, TimedExact
    for site in sites:
        site.prox = clock.timed("prox", site.prox)
        site.schedule_of_last = clock.timed("schedule_of_last", site.schedule_of_last)
    try:
        yield
    finally:
        mod_osqp.OSQP, mod_site.OsqpProx, mod_qp.ProxSolver = real_osqp, real_prox, real_exact
        for site in sites:
            del site.prox, site.schedule_of_last


def parts(clock: Clock, whole: float, per: int) -> dict[str, float]:
    """A phase's seconds per site and x-update: the timed calls, and the Python between them
    (each row excludes the rows nested in it, so the rows add up to ``whole``)."""
    s = {k: v / per for k, v in clock.seconds.items()}
    osqp_calls = sum(v for k, v in s.items() if k.startswith("osqp.") and k != "osqp.solve native")
    clarabel = s.get("clarabel.build", 0.0) + s.get("clarabel.solve", 0.0)
    out = {
        "osqp solve (native)": s.get("osqp.solve native", 0.0),
        "osqp solve (Python wrapper)": s.get("osqp.solve", 0.0) - s.get("osqp.solve native", 0.0),
        "osqp setup": s.get("osqp.setup", 0.0),
    }
    out |= {k: v for k, v in sorted(s.items()) if k.startswith(("osqp.update",))}
    out["clarabel fallback"] = clarabel
    out["OsqpProx build"] = s.get("OsqpProx build", 0.0)
    out["OsqpProx.solve Python"] = s.get("OsqpProx.solve", 0.0) - osqp_calls - clarabel
    out["SiteProblem.prox Python"] = (
        s.get("prox", 0.0) - s.get("OsqpProx.solve", 0.0) - s.get("OsqpProx build", 0.0)
    )
    out["schedule_of_last"] = s.get("schedule_of_last", 0.0)
    out["shard loop"] = whole - s.get("prox", 0.0) - s.get("schedule_of_last", 0.0)
    return out


def profile_shard(
    request: dict[str, Any],
    n_shards: int,
    state_path: Path | None,
    rounds: int = 3,
    variant_sites: int = 100,
) -> dict[str, Any]:
    """One shard's x-update, in this process: where the time per site goes.

    Uses the final ADMM state of the sharded job (rho, targets, the accuracy
    ``vpp.admm.x_accuracy`` gives it and how far its last iteration moved) when available,
    else the sites' own optimum and rho from the prices."""
    prof = _ShardProfile(request, n_shards, rounds)
    prof.set_point(state_path)
    with instrumented(prof.clock, prof.sites):
        prof.phases()
        prof.shapes()
        prof.accuracies(variant_sites)
        prof.timer_overhead()
    prof.cprofile()
    return prof.out


class _ShardProfile:
    """The first shard (as ``actors.pool._groups`` makes it) and the measurements so far in
    ``out``; the methods run in the order ``profile_shard`` calls them."""

    def __init__(self, request: dict[str, Any], n_shards: int, rounds: int) -> None:
        from actors.site import SiteShard
        from vpp.portfolio import parse_portfolio

        self.portfolio = parse_portfolio(request)
        self.rounds = rounds
        n = len(self.portfolio.sites)
        size = math.ceil(n / n_shards)
        self.rows = list(range(size))  # the first shard, as actors.pool._groups makes it
        self.ids = [self.portfolio.sites[i].id for i in self.rows]
        self.out: dict[str, Any] = {"sites": len(self.rows), "n": n, "shards": n_shards}
        c = time.perf_counter()
        self.shard = SiteShard(self.ids, [self.portfolio.site_request(i) for i in self.rows])
        self.out["build"] = (time.perf_counter() - c) / len(self.rows)
        c = time.perf_counter()
        self.x0, _, _ = self.shard.solve_alone()
        self.out["solve_alone"] = (time.perf_counter() - c) / len(self.rows)
        self.sites: list[Any] = list(self.shard.sites)  # read-only: ``_prox``, ``last_x``
        self.clock = Clock()
        self.rng = np.random.default_rng(0)
        self.rho = self.accuracy = self.move = math.nan
        self.targets = self.base = np.zeros(0)

    def set_point(self, state_path: Path | None) -> None:
        """rho, targets, accuracy and the targets' move per iteration: the job's final ADMM
        state, else the own optimum."""
        from vpp.admm import AdmmState, initial_rho, x_accuracy
        from vpp.portfolio import price_scale

        out = self.out
        if state_path is not None and state_path.exists():
            state = AdmmState.load(state_path)
            x, zbar, u = state.x, state.zbar, state.u
            self.rho, self.accuracy = state.rho, x_accuracy(state)
            self.targets = x - x.mean(axis=0) + zbar - u
            last = state.history[-1] if state.history else {}
            r, s = last.get("primal_residual") or 0.0, last.get("dual_residual") or 0.0
            # per element: u moves by the primal residual, x - xbar + zbar by s / rho
            self.move = math.hypot(r, s / self.rho) / math.sqrt(x.size)
            out["state"] = f"the final state of that job (iteration {state.iteration})"
        else:
            self.rho, self.accuracy = initial_rho(price_scale(self.portfolio), self.x0), 1e-3
            self.targets = np.zeros((out["n"], self.x0.shape[1]))
            self.targets[self.rows] = self.x0
            self.move = NO_STATE_MOVE
            out["state"] = "the sites' own optimum (no ADMM state)"
        self.base = self.targets
        out |= {"rho": self.rho, "accuracy": self.accuracy, "move": self.move}
        out["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2

    def _moved(self) -> np.ndarray:
        """New targets: the set point's plus independent noise, ``move`` kW per element (RMS)
        from the last ones (no drift over the calls)."""
        noise = self.rng.standard_normal(self.base.shape)
        self.targets = self.base + self.move / math.sqrt(2.0) * noise
        return self.targets

    def _run(self, rho: float, accuracy: float, move: bool, times: int) -> dict[str, Any]:
        """``times`` shard x-updates, timed: seconds per site (whole and parts), OSQP's
        solves and iterations per site, statuses, Clarabel fallbacks."""
        self.clock.reset()
        whole = 0.0
        for _ in range(times):
            targets = self._moved() if move else self.targets
            c = time.perf_counter()
            self.shard.x_update(rho, targets, accuracy, self.rows)
            whole += time.perf_counter() - c
        per = times * len(self.rows)
        its = self.clock.iterations or [0]
        return {
            "whole": whole / per,
            "parts": parts(self.clock, whole / per, per),
            "osqp_solves": len(self.clock.iterations) / per,
            "osqp_iters": float(np.mean(its)),
            "osqp_iters_max": int(np.max(its)),
            "statuses": dict(self.clock.statuses),
            "osqp_rho_updates": self.clock.rho_updates / per,
            "fallbacks": self.clock.calls.get("clarabel.solve", 0) / per,
        }

    def phases(self) -> None:
        """The first x-update, a repeat, steady ones and one after a rho change."""
        rho, acc = self.rho, self.accuracy
        phases = {
            "first": self._run(rho, acc, move=False, times=1),
            "repeat": self._run(rho, acc, move=False, times=self.rounds),
            "steady": self._run(rho, acc, move=True, times=self.rounds),
            "rho change": self._run(2.0 * rho, acc, move=True, times=1),
        }
        self._run(rho, acc, move=True, times=1)  # back to rho (another refactorisation)
        self.out["phases"] = phases
        self.out["steady"] = phases["steady"]["whole"]
        self.out["first"] = phases["first"]["whole"]
        self.out["rho_change"] = phases["rho change"]["whole"]

    def shapes(self) -> None:
        """The OSQP QPs' mean size: variables, constraint rows (of which variable bounds),
        nonzeros of A."""
        proxes = [s._prox for s in self.sites]
        self.out["qp"] = (
            float(np.mean([p._a.shape[1] for p in proxes])),
            float(np.mean([p._a.shape[0] for p in proxes])),
            float(np.mean([p._a.nnz for p in proxes])),
            float(np.mean([p._a.shape[0] - p.r.a.shape[0] for p in proxes])),
        )

    def accuracies(self, variant_sites: int) -> None:
        """Steady x-updates at each of ``ACCURACIES`` (after one untimed to switch), and the
        largest deviation of the site power from Clarabel's exact solution of the same QP
        (first ``variant_sites`` sites; the x-update's charge/discharge re-solves aside)."""
        self.out["variant_sites"] = min(variant_sites, len(self.sites))
        rows: dict[str, Any] = {}
        for eps in ACCURACIES:
            self._run(self.rho, eps, move=True, times=1)
            run = self._run(self.rho, eps, move=True, times=self.rounds)
            run["deviation"] = self._deviation(variant_sites)
            run.pop("parts")
            rows[f"{eps:g}"] = run
        self.out["accuracies"] = rows
        self._run(self.rho, self.accuracy, move=False, times=1)  # back to the job's accuracy

    def _deviation(self, variant_sites: int) -> float:
        """max |P - P_exact| (kW) of the last x-update over the first sites."""
        import vpp.qp

        exact_solver = vpp.qp.ProxSolver  # the timed one: builds count as fallbacks ...
        dev = 0.0
        for site, row in zip(self.sites[:variant_sites], self.rows, strict=False):
            exact = exact_solver(site.model, site.power, site._prox_fixed)
            x = exact.solve(site._cost(), self.rho, self.targets[row])
            dev = max(dev, float(np.max(np.abs(x[site.power] - site.last_x[site.power]))))
        self.clock.reset()  # ... so forget them
        return dev

    def timer_overhead(self) -> None:
        """Seconds per site the timers themselves add (timed calls per site x a timed no-op)."""
        self._run(self.rho, self.accuracy, move=True, times=1)
        calls = sum(self.clock.calls.values()) / len(self.rows)
        noop = self.clock.timed("noop", lambda: None)
        c = time.perf_counter()
        for _ in range(10_000):
            noop()
        self.out["timer_overhead"] = calls * (time.perf_counter() - c) / 10_000

    def cprofile(self) -> None:
        """cProfile of one steady x-update (inflates the Python side; for the shares only)."""
        self._moved()
        prof = cProfile.Profile()
        prof.enable()
        self.shard.x_update(self.rho, self.targets, self.accuracy, self.rows)
        prof.disable()
        stats = pstats.Stats(prof)
        self.out["cprofile_share"] = cprofile_shares(stats)
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
        self.out["cprofile_text"] = buf.getvalue()


def cprofile_shares(stats: pstats.Stats) -> dict[str, float]:
    """Shares of the profiled time: OSQP's and Clarabel's native calls (own time), OSQP's
    Python wrapper (own time), ``SiteProblem.prox`` and ``schedule_of_last`` (cumulative)."""
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = max(float(stats.total_tt), 1e-12)  # type: ignore[attr-defined]

    def own(match: Callable[[str, str], bool]) -> float:
        return sum(v[2] for k, v in raw.items() if match(k[0], k[2])) / total

    def cum(file: str, name: str) -> float:
        return sum(v[3] for k, v in raw.items() if k[0].endswith(file) and k[2] == name) / total

    return {
        "OSQP native": own(lambda f, n: f == "~" and "osqp" in n),
        "OSQP Python wrapper": own(lambda f, n: "osqp" in Path(f).parts),
        "Clarabel native (fallback)": own(lambda f, n: f == "~" and "clarabel" in n.lower()),
        "SiteProblem.prox (cumulative)": cum(str(Path("vpp", "site.py")), "prox"),
        "SiteProblem.schedule_of_last (cumulative)": cum(
            str(Path("vpp", "site.py")), "schedule_of_last"
        ),
        "this profiler's timers": own(lambda f, n: f.endswith("admm_profile.py")),
    }
