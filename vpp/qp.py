"""The ADMM x-update of a site: ``min cost @ x + rho/2 * ||P - v||^2`` over the site's model.

Solved with Clarabel (an interior-point conic solver) rather than HiGHS' active-set QP,
for measured reasons (96-step battery site, this 2-core machine, docs/benchmarks.md):

=====================  ==============  =====================================
solver                 per re-solve    objective vs. HiGHS QP (relative)
=====================  ==============  =====================================
HiGHS QP (highspy)     ~19.7 ms        reference
Clarabel, data update  ~2.9 ms         2e-8
=====================  ==============  =====================================

HiGHS' QP solver restarts its active set on every re-solve (~740 iterations here; its QP hot
start is disabled by default in HiGHS 1.16), while Clarabel converges in ~13 interior-point
iterations and reuses its symbolic factorisation when only the linear cost changes. The
model is the same arrays HiGHS solves; integer columns (process starts, exclusivity binaries)
are fixed at given values, so the x-update is the convex QP of the continuous rest.
"""

from __future__ import annotations

import clarabel
import numpy as np
import scipy.sparse as sp

from vpp.errors import SolverError
from vpp.linear import LinearModel

HUGE = 1e20
"""A bound at least this large is no bound (HiGHS' convention): Clarabel's presolve drops such
rows and then refuses data updates, and without presolve its interior point stalls on them."""


def _unbounded(bounds: np.ndarray) -> np.ndarray:
    return np.where(np.abs(bounds) >= HUGE, np.copysign(np.inf, bounds), bounds)


class ProxSolver:
    """Clarabel built once for a model; :meth:`solve` changes only the linear cost.

    Fixed columns (bounds equal: availability windows, integer decisions, the SoC at the
    start) are substituted out before Clarabel sees the problem: a smaller KKT system, and
    no zero-cone row per fixed column.
    """

    def __init__(
        self,
        model: LinearModel,
        quadratic_cols: np.ndarray,
        fixed: dict[int, float] | None = None,
    ) -> None:
        self.n = model.n_cols
        self.rho = 0.0
        lo, hi = (_unbounded(b) for b in model.bounds())
        for col, value in (fixed or {}).items():
            lo[col] = hi[col] = value
        pinned = np.isclose(lo, hi)
        self.free = np.flatnonzero(~pinned)
        self.x0 = np.where(pinned, lo, 0.0)  # the fixed part of every solution
        whole = model.matrix().tocsc()
        shift = whole @ self.x0  # what the fixed columns contribute to each row
        a = whole[:, self.free].tocsr()
        rlo, rhi = (_unbounded(r) - shift for r in model.row_bounds())
        lo, hi = lo[self.free], hi[self.free]
        position = np.full(self.n, -1)
        position[self.free] = np.arange(len(self.free))
        self.quadratic = position[quadratic_cols]  # -1 where the column is fixed
        self.quadratic_cols = quadratic_cols
        used = np.diff(a.indptr) > 0  # rows left with no free column are constants
        eq_rows = np.isclose(rlo, rhi) & used
        up = ~eq_rows & np.isfinite(rhi) & used
        down = ~eq_rows & np.isfinite(rlo) & used
        ident = sp.identity(len(self.free), format="csr")
        has_lo, has_hi = np.isfinite(lo), np.isfinite(hi)
        zero = a[eq_rows]
        nonneg = sp.vstack([ident[has_hi], -ident[has_lo], a[up], -a[down]])
        self._a = sp.vstack([zero, nonneg]).tocsc()
        self._b = np.concatenate([rlo[eq_rows], hi[has_hi], -lo[has_lo], rhi[up], -rlo[down]])
        self._cones = [
            clarabel.ZeroConeT(zero.shape[0]),
            clarabel.NonnegativeConeT(nonneg.shape[0]),
        ]
        self._solver: clarabel.DefaultSolver | None = None

    def solve(self, cost: np.ndarray, rho: float, target: np.ndarray) -> np.ndarray:
        """``argmin cost @ x + rho/2 * ||x[quadratic_cols] - target||^2`` (all columns)."""
        if rho != self.rho:  # a new Hessian: a new factorisation
            self.rho, self._solver = rho, None
        full = np.asarray(cost, float).copy()
        full[self.quadratic_cols] -= rho * target
        q = full[self.free]
        keep = self.quadratic >= 0
        if self._solver is None:
            diag = np.zeros(len(self.free))
            diag[self.quadratic[keep]] = rho
            settings = clarabel.DefaultSettings()
            settings.verbose = False
            self._solver = clarabel.DefaultSolver(
                sp.diags(diag, format="csc"), q, self._a, self._b, self._cones, settings
            )
        else:
            self._solver.update(q=q)
        solution = self._solver.solve()
        status = str(solution.status)
        if status not in ("Solved", "AlmostSolved"):
            raise SolverError(f"Clarabel could not solve the site's x-update: {status}")
        x = self.x0.copy()
        x[self.free] = np.asarray(solution.x)
        return x
