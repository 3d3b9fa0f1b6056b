"""Profiling for the portfolio ADMM benchmark (``portfolio_admm.py``): where one shard's
x-update spends its time per site, measured in the driver process without Ray.

``profile_shard`` builds the first shard of the sharded layout with ``actors.site.SiteShard``
and times, per site: the whole x-update (first, steady, after a rho change), its parts
(span, ``prox``, the cost vector, Clarabel's ``update`` and ``solve``, ``schedule_of_last``),
Clarabel settings variants on the same problems, a rho change by rebuilding the solver
against updating ``P`` in place, and a cProfile of one steady x-update."""

from __future__ import annotations

import cProfile
import io
import math
import os
import pstats
import time
from pathlib import Path
from typing import Any

import numpy as np

PARTS = ("span", "prox", "q", "update", "clarabel", "schedule_of_last")


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
    prof = _ShardProfile(request, n_shards, rounds)
    prof.set_point(state_path)
    prof.whole_x_updates()
    prof.components()
    prof.shapes()
    prof.variants(variant_sites)
    prof.rho_change()
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
        self.sites = self.shard.sites
        self.subset: list[tuple[Any, int]] = []
        self.rho = math.nan
        self.targets = np.zeros(0)

    def set_point(self, state_path: Path | None) -> None:
        """rho and the x-update targets: the job's final ADMM state, else the own optimum."""
        from vpp.admm import AdmmState, initial_rho
        from vpp.portfolio import price_scale

        out = self.out
        if state_path is not None and state_path.exists():
            state = AdmmState.load(state_path)
            x, zbar, u = state.x, state.zbar, state.u
            self.rho = state.rho
            self.targets = x - x.mean(axis=0) + zbar - u
            out["state"] = f"the final state of that job (iteration {state.iteration})"
        else:
            self.rho = initial_rho(price_scale(self.portfolio), self.x0)
            self.targets = np.zeros((out["n"], self.x0.shape[1]))
            self.targets[self.rows] = self.x0
            out["state"] = "the sites' own optimum (no ADMM state)"
        out["rho"] = self.rho
        out["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2

    def _whole(self, r: float) -> float:
        c = time.perf_counter()
        self.shard.x_update(r, self.targets, self.rows)
        return (time.perf_counter() - c) / len(self.rows)

    def whole_x_updates(self) -> None:
        """Seconds per site of ``SiteShard.x_update``: first, steady, after a rho change."""
        rho = self.rho
        self.out["first"] = self._whole(rho)  # ProxSolver construction + factorisation + solve
        steady = [self._whole(rho) for _ in range(self.rounds)]
        self.out["steady"] = float(np.median(steady))  # only q changes
        self.out["rho_change"] = self._whole(2.0 * rho)  # residual balancing: rebuilds all
        self._whole(rho)  # back to rho (rebuilds again)

    def components(self) -> None:
        """Per-site components, no profiler; median over rounds of the per-site means."""
        parts: dict[str, list[float]] = {k: [] for k in PARTS}
        iters: list[int] = []
        for _ in range(self.rounds):
            acc = dict.fromkeys(parts, 0.0)
            for site_id, site, row in zip(self.ids, self.sites, self.rows, strict=True):
                times, iterations = self._one_site(site_id, site, self.targets[row])
                for k, v in zip(parts, times, strict=True):
                    acc[k] += v
                iters.append(iterations)
            for k in parts:
                parts[k].append(acc[k] / len(self.rows))
        for k, per_round in parts.items():
            self.out[k] = float(np.median(per_round))
        self.out["clarabel_iters"] = float(np.mean(iters))
        self.out["clarabel_iters_max"] = int(np.max(iters))

    def _one_site(self, site_id: str, site: Any, target: Any) -> tuple[list[float], int]:
        """The seconds of each of ``PARTS`` for one site's x-update, and Clarabel's
        iterations."""
        rho, prox = self.rho, prox_of(site)
        c = time.perf_counter()
        with self.shard._spans.start_as_current_span("site.solve") as span:
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
        return [t1 - c, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5], int(sol.iterations)

    def shapes(self) -> None:
        """The x-update QPs' mean size and how many rows are variable bounds."""
        shapes = [(prox_of(s)._a.shape, prox_of(s)._a.nnz) for s in self.sites]
        self.out["kkt"] = (
            float(np.mean([a[0][1] for a in shapes])),
            float(np.mean([a[0][0] for a in shapes])),
            float(np.mean([a[1] for a in shapes])),
        )
        self.out["bound_rows"] = float(
            np.mean(
                [
                    int(
                        np.isfinite(s.model.bounds()[0]).sum()
                        + np.isfinite(s.model.bounds()[1]).sum()
                    )
                    for s in self.sites
                ]
            )
        )

    def variants(self, variant_sites: int) -> None:
        """Measured alternatives on the same problems, Clarabel driven directly."""
        self.subset = list(zip(self.sites, self.rows, strict=True))[:variant_sites]
        self.out["variant_sites"] = len(self.subset)
        for site, row in self.subset:  # last_x = the default-settings solution
            site.prox(self.rho, self.targets[row])
        self.out["variants"] = {
            "default (as vpp)": self._variant(),
            "tol_gap_abs = tol_gap_rel = tol_feas = 1e-6": self._variant(
                tol_gap_abs=1e-6, tol_gap_rel=1e-6, tol_feas=1e-6
            ),
            "equilibrate_enable = False": self._variant(equilibrate_enable=False),
            'direct_solve_method = "faer"': self._variant(direct_solve_method="faer"),
        }

    def _variant(self, **opts: Any) -> tuple[float, float, float]:
        """Mean seconds per re-solve, mean iterations, max |P - P_default| (kW)."""
        import clarabel

        secs, its, dev = [], [], []
        for site, row in self.subset:
            prox = prox_of(site)
            q = site.base_cost.copy()
            q[prox.quadratic_cols] -= self.rho * self.targets[row]
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

    def rho_change(self) -> None:
        """A rho change: rebuild the solver (vpp now) vs. update P's values in place."""
        import clarabel
        import scipy.sparse as sp

        rebuild, update, dev = [], [], []
        for site, row in self.subset:
            prox = prox_of(site)
            new_rho = 2.0 * self.rho
            q = site.base_cost.copy()
            q[prox.quadratic_cols] -= new_rho * self.targets[row]
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
        self.out["rho_rebuild"] = float(np.mean(rebuild))
        self.out["rho_update"] = float(np.mean(update)) if update else math.nan
        self.out["rho_update_dev"] = float(np.max(dev)) if dev else math.nan

    def cprofile(self) -> None:
        """cProfile of one steady x-update (inflates the Python side; for the shares only)."""
        prof = cProfile.Profile()
        prof.enable()
        self.shard.x_update(self.rho, self.targets, self.rows)
        prof.disable()
        stats = pstats.Stats(prof)
        raw = stats.stats  # type: ignore[attr-defined]
        total = max(float(stats.total_tt), 1e-12)  # type: ignore[attr-defined]
        native = sum(v[2] for k, v in raw.items() if "DefaultSolver" in k[2])
        cum = {f"{Path(k[0]).name}:{k[2]}": v[3] for k, v in raw.items()}
        self.out["cprofile_share"] = {
            "Clarabel (native solve + update)": native / total,
            "SiteProblem.prox (cumulative)": cum.get("site.py:prox", 0.0) / total,
            "SiteProblem.schedule_of_last (cumulative)": cum.get("site.py:schedule_of_last", 0.0)
            / total,
        }
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
        self.out["cprofile_text"] = buf.getvalue()
