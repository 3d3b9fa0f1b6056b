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


class ProxSolver:
    """Clarabel built once for a model; :meth:`solve` changes only the linear cost."""

    def __init__(
        self,
        model: LinearModel,
        quadratic_cols: np.ndarray,
        fixed: dict[int, float] | None = None,
    ) -> None:
        self.n = model.n_cols
        self.rho = 0.0
        self.quadratic_cols = quadratic_cols
        a = model.matrix().tocsr()
        lo, hi = model.bounds()
        lo, hi = lo.copy(), hi.copy()
        for col, value in (fixed or {}).items():
            lo[col] = hi[col] = value
        rlo, rhi = model.row_bounds()
        eq_rows = np.isclose(rlo, rhi)
        fixed_cols = np.isclose(lo, hi)
        ident = sp.identity(self.n, format="csr")
        free_lo = np.isfinite(lo) & ~fixed_cols
        free_hi = np.isfinite(hi) & ~fixed_cols
        up = ~eq_rows & np.isfinite(rhi)
        down = ~eq_rows & np.isfinite(rlo)
        zero = sp.vstack([a[eq_rows], ident[fixed_cols]])
        nonneg = sp.vstack([ident[free_hi], -ident[free_lo], a[up], -a[down]])
        self._a = sp.vstack([zero, nonneg]).tocsc()
        self._b = np.concatenate(
            [rlo[eq_rows], lo[fixed_cols], hi[free_hi], -lo[free_lo], rhi[up], -rlo[down]]
        )
        self._cones = [
            clarabel.ZeroConeT(zero.shape[0]),
            clarabel.NonnegativeConeT(nonneg.shape[0]),
        ]
        self._solver: clarabel.DefaultSolver | None = None

    def solve(self, cost: np.ndarray, rho: float, target: np.ndarray) -> np.ndarray:
        """``argmin cost @ x + rho/2 * ||x[quadratic_cols] - target||^2``."""
        if rho != self.rho:  # a new Hessian: a new factorisation
            self.rho, self._solver = rho, None
        q = np.asarray(cost, float).copy()
        q[self.quadratic_cols] -= rho * target
        if self._solver is None:
            diag = np.zeros(self.n)
            diag[self.quadratic_cols] = rho
            self._p = sp.diags(diag, format="csc")
            settings = clarabel.DefaultSettings()
            settings.verbose = False
            self._solver = clarabel.DefaultSolver(
                self._p, q, self._a, self._b, self._cones, settings
            )
        else:
            self._solver.update(q=q)
        solution = self._solver.solve()
        status = str(solution.status)
        if status not in ("Solved", "AlmostSolved"):
            raise SolverError(f"Clarabel could not solve the site's x-update: {status}")
        return np.asarray(solution.x)
