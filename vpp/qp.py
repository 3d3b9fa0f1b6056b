"""The ADMM x-update of a site: ``min cost @ x + rho/2 * ||P - v||^2`` over the site's model.

Two solvers, chosen by measurement (mixed homes, this 2-core machine, docs/benchmarks.md):

==========================  ==============  ============================================
solver                      per x-update    what it gives
==========================  ==============  ============================================
OSQP, warm, eps 1e-3        ~0.6 ms         inexact (site power within ~0.01 kW), default
Clarabel, data update       ~3-4 ms         exact to 1e-8; the fallback when OSQP fails
HiGHS QP (highspy)          ~19.7 ms        exact; not used (its QP hot start is off)
==========================  ==============  ============================================

:class:`OsqpProx` keeps OSQP's KKT factorisation while ``rho`` stays (a new ``rho`` is a
numeric refactorisation) and starts from the last solution, so the small changes of the
target between ADMM iterations cost a few OSQP iterations. ADMM converges with inexact
x-updates whose errors stay small; measured on 30 mixed homes, OSQP at eps 1e-3 and Clarabel
reach the stopping rule in the same 30 iterations. The portfolio's certificate does not
depend on the x-update's accuracy: the bound and the final schedules come from exact LPs.

Both solve the same reduced model (:class:`Reduced`): integer columns (process starts,
exclusivity binaries) are fixed at given values, so the x-update is the convex QP of the
continuous rest, and every fixed column is substituted out.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import clarabel
import numpy as np
import scipy.sparse as sp

from vpp.errors import SolverError
from vpp.linear import LinearModel

__all__ = ["HUGE", "OsqpProx", "ProxSolver", "Reduced"]


logger = logging.getLogger(__name__)

HUGE = 1e20
"""A bound at least this large is no bound (HiGHS' convention): Clarabel's presolve drops such
rows and then refuses data updates, and without presolve its interior point stalls on them."""


def _unbounded(bounds: np.ndarray) -> np.ndarray:
    return np.where(np.abs(bounds) >= HUGE, np.copysign(np.inf, bounds), bounds)


@dataclass
class Reduced:
    """A model with its fixed columns substituted out: ``rlo <= a @ y <= rhi``, ``lo <= y <=
    hi`` over the free columns ``y = x[free]``; ``x0`` holds the fixed part of every ``x``."""

    n: int
    free: np.ndarray
    x0: np.ndarray
    a: Any  # scipy CSR: the rows that still have a free column
    rlo: np.ndarray
    rhi: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    quadratic: np.ndarray  # positions of the quadratic columns among the free ones, -1 if fixed

    @classmethod
    def of(
        cls, model: LinearModel, quadratic_cols: np.ndarray, fixed: dict[int, float] | None
    ) -> Reduced:
        n = model.n_cols
        lo, hi = (_unbounded(b) for b in model.bounds())
        for col, value in (fixed or {}).items():
            lo[col] = hi[col] = value
        pinned = np.isclose(lo, hi)
        free = np.flatnonzero(~pinned)
        x0 = np.where(pinned, lo, 0.0)
        whole = model.matrix().tocsc()
        shift = whole @ x0  # what the fixed columns contribute to each row
        a = whole[:, free].tocsr()
        rlo, rhi = (_unbounded(r) - shift for r in model.row_bounds())
        used = np.diff(a.indptr) > 0  # rows left with no free column are constants
        position = np.full(n, -1)
        position[free] = np.arange(len(free))
        return cls(
            n,
            free,
            x0,
            a[used],
            rlo[used],
            rhi[used],
            lo[free],
            hi[free],
            position[quadratic_cols],
        )

    def linear(
        self, cost: np.ndarray, rho: float, quadratic_cols: np.ndarray, target: np.ndarray
    ) -> np.ndarray:
        """The free columns' linear cost of ``cost @ x + rho/2 * ||x[cols] - target||^2``."""
        full = np.asarray(cost, float).copy()
        full[quadratic_cols] -= rho * target
        free_cost: np.ndarray = full[self.free]
        return free_cost

    def hessian_diagonal(self, rho: float) -> np.ndarray:
        diag = np.zeros(len(self.free))
        diag[self.quadratic[self.quadratic >= 0]] = rho
        return diag

    def full(self, y: np.ndarray) -> np.ndarray:
        x = self.x0.copy()
        x[self.free] = y
        return x


class OsqpProx:
    """The x-update by OSQP (an ADMM for QPs), warm-started from the last solution and with
    its KKT factorisation kept while ``rho`` stays: an *inexact* x-update (tolerance
    ``eps``), which ADMM tolerates; the portfolio's certificate does not depend on it (the
    bound and the final schedules come from exact LPs)."""

    def __init__(
        self,
        model: LinearModel,
        quadratic_cols: np.ndarray,
        fixed: dict[int, float] | None = None,
        eps: float = 1e-4,
    ) -> None:
        import osqp

        self.r = Reduced.of(model, quadratic_cols, fixed)
        self.quadratic_cols = quadratic_cols
        self.rho = 0.0
        self.eps = eps
        r = self.r
        bounded = np.isfinite(r.lo) | np.isfinite(r.hi)
        ident = sp.identity(len(r.free), format="csr")[bounded]
        self._a = sp.csc_matrix(sp.vstack([r.a, ident]))
        self._l = np.concatenate([r.rlo, r.lo[bounded]])
        self._u = np.concatenate([r.rhi, r.hi[bounded]])
        # the bound row of every column (-1: fixed, or free without bounds)
        self._bound_row = np.full(r.n, -1)
        self._bound_row[r.free[bounded]] = r.a.shape[0] + np.arange(int(bounded.sum()))
        self._held = np.zeros(0, dtype=int)  # bound rows held at 0 in the last solve
        self._osqp = osqp
        self._solver: Any = None
        self._quad = np.flatnonzero(r.hessian_diagonal(1.0))
        self._exact: ProxSolver | None = None  # built on OSQP's first failure
        self._model, self._fixed = model, fixed
        # charging and discharging below this at once is OSQP's tolerance, not waste
        self.waste_tolerance = 10 * eps

    def solve(
        self,
        cost: np.ndarray,
        rho: float,
        target: np.ndarray,
        zero: Collection[int] = (),
        eps: float | None = None,
    ) -> np.ndarray:
        """``argmin cost @ x + rho/2 * ||x[quadratic_cols] - target||^2`` (all columns),
        with the columns ``zero`` (nonnegative ones) held at 0 for this solve only, to
        OSQP's tolerance ``eps`` (default: the one it was made with)."""
        q = self.r.linear(cost, rho, self.quadratic_cols, target)
        if eps is not None and eps != self.eps:
            self.eps, self.waste_tolerance = eps, 10 * eps
            if self._solver is not None:
                self._solver.update_settings(eps_abs=eps, eps_rel=eps)
        if self._solver is None:
            self._solver = self._osqp.OSQP()
            p = sp.csc_matrix(sp.diags(self.r.hessian_diagonal(rho), format="csc"))
            self._solver.setup(
                P=sp.csc_matrix(sp.triu(p, format="csc")),
                q=q,
                A=self._a,
                l=self._l,
                u=self._u,
                verbose=False,
                eps_abs=self.eps,
                eps_rel=self.eps,
                polishing=False,
                warm_starting=True,
                max_iter=20_000,
                check_termination=5,
            )
            self.rho = rho
        else:
            if rho != self.rho:  # new Hessian values: a numeric refactorisation only
                self._solver.update(Px=np.full(self._quad.size, rho))
                self.rho = rho
            self._solver.update(q=q)
        self._hold(zero)
        result = self._solver.solve(raise_error=False)
        if result.info.status_val in (1, 2):  # solved, solved inaccurate
            return self.r.full(np.asarray(result.x))
        # a stated recovery: the exact interior-point solve of the same x-update
        logger.info("OSQP x-update ended %s; solved exactly by Clarabel", result.info.status)
        if zero:  # rare: an exact solver of its own for this solve
            held = (self._fixed or {}) | dict.fromkeys(map(int, zero), 0.0)
            return ProxSolver(self._model, self.quadratic_cols, held).solve(cost, rho, target)
        if self._exact is None:
            self._exact = ProxSolver(self._model, self.quadratic_cols, self._fixed)
        return self._exact.solve(cost, rho, target)

    def _hold(self, zero: Collection[int]) -> None:
        """Bound rows of ``zero`` to ``[0, 0]``, the others back to their own bounds (OSQP
        takes new bounds without a refactorisation)."""
        rows = self._bound_row[np.fromiter(zero, dtype=int, count=len(zero))]
        rows = np.sort(rows[rows >= 0])
        if rows.size == 0 and self._held.size == 0:
            return
        lower, upper = self._l.copy(), self._u.copy()
        lower[rows] = np.maximum(lower[rows], 0.0)
        upper[rows] = np.maximum(lower[rows], 0.0)
        self._solver.update(l=lower, u=upper)
        self._held = rows


class ProxSolver:
    """Clarabel built once for a model; :meth:`solve` changes only the linear cost (exact)."""

    def __init__(
        self,
        model: LinearModel,
        quadratic_cols: np.ndarray,
        fixed: dict[int, float] | None = None,
    ) -> None:
        self.r = r = Reduced.of(model, quadratic_cols, fixed)
        self.quadratic_cols = quadratic_cols
        self.rho = 0.0
        eq_rows = np.isclose(r.rlo, r.rhi)
        up = ~eq_rows & np.isfinite(r.rhi)
        down = ~eq_rows & np.isfinite(r.rlo)
        ident = sp.identity(len(r.free), format="csr")
        has_lo, has_hi = np.isfinite(r.lo), np.isfinite(r.hi)
        zero = r.a[eq_rows]
        nonneg = sp.vstack([ident[has_hi], -ident[has_lo], r.a[up], -r.a[down]])
        self._a = sp.vstack([zero, nonneg]).tocsc()
        self._b = np.concatenate(
            [r.rlo[eq_rows], r.hi[has_hi], -r.lo[has_lo], r.rhi[up], -r.rlo[down]]
        )
        self._cones = [
            clarabel.ZeroConeT(zero.shape[0]),
            clarabel.NonnegativeConeT(nonneg.shape[0]),
        ]
        self._solver: clarabel.DefaultSolver | None = None
        self.waste_tolerance = 1e-6

    def solve(self, cost: np.ndarray, rho: float, target: np.ndarray) -> np.ndarray:
        """``argmin cost @ x + rho/2 * ||x[quadratic_cols] - target||^2`` (all columns)."""
        if rho != self.rho:  # a new Hessian: a new factorisation
            self.rho, self._solver = rho, None
        q = self.r.linear(cost, rho, self.quadratic_cols, target)
        if self._solver is None:
            settings = clarabel.DefaultSettings()
            settings.verbose = False
            self._solver = clarabel.DefaultSolver(
                sp.diags(self.r.hessian_diagonal(rho), format="csc"),
                q,
                self._a,
                self._b,
                self._cones,
                settings,
            )
        else:
            self._solver.update(q=q)
        solution = self._solver.solve()
        status = str(solution.status)
        if status not in ("Solved", "AlmostSolved"):
            raise SolverError(f"Clarabel could not solve the site's x-update: {status}")
        return self.r.full(np.asarray(solution.x))
