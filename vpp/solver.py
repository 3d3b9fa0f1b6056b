"""HiGHS through highspy: pass the model once, then re-solve warm with new costs.

A :class:`HighsSolver` owns one ``highspy.Highs`` instance per model. Changing prices (the
linear cost) or the ADMM penalty (a diagonal quadratic term) only updates those arrays in
HiGHS, which keeps its basis, so re-solves start warm. Structural changes (the model grew)
are detected through :attr:`LinearModel.version` and trigger one full ``passModel``; changed
column bounds alone (:attr:`LinearModel.bounds_version`, e.g. a site's share of a portfolio
limit) are passed with ``changeColsBounds``, which keeps the basis.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import highspy
import numpy as np

from vpp.errors import SolverError
from vpp.linear import LinearModel

__all__ = ["SMALL_LP_COLUMNS", "HighsSolver", "Solution", "new_highs"]

SMALL_LP_COLUMNS = 20_000
"""LPs up to this many columns are solved without HiGHS' presolve (:meth:`HighsSolver.solve`)."""


logger = logging.getLogger(__name__)

_INF = highspy.kHighsInf


def _highs_inf(bounds: np.ndarray) -> np.ndarray:
    """Infinite bounds as HiGHS' infinity."""
    clipped: np.ndarray = np.clip(bounds, -_INF, _INF)
    return clipped


@dataclass(frozen=True)
class Solution:
    x: np.ndarray
    objective: float
    status: str  # "optimal" | "feasible" (stopped at the time limit) | "infeasible"
    mip_gap: float = 0.0


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """HiGHS prints a banner from C++ on the first ``Highs()``; keep it out of our output."""
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (embedded interpreters): nothing to silence
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


# highspy's stub leaves Highs.__init__ unannotated, an untyped call to strict mypy.
_Highs = cast("Callable[[], highspy.Highs]", highspy.Highs)


@lru_cache(maxsize=1)
def _banner_printed() -> bool:
    with _quiet_stdout():
        _Highs()
    return True


def new_highs(options: dict[str, float | int | str | bool] | None = None) -> highspy.Highs:
    _banner_printed()
    h = _Highs()
    h.setOptionValue("output_flag", False)
    for key, value in (options or {}).items():
        h.setOptionValue(key, value)
    return h


class HighsSolver:
    """Solve a :class:`LinearModel` (LP, MILP or a QP with a diagonal Hessian)."""

    def __init__(
        self, model: LinearModel, *, mip_rel_gap: float = 1e-7, time_limit: float = 60.0
    ) -> None:
        self.model = model
        self.highs = new_highs({"mip_rel_gap": mip_rel_gap, "time_limit": time_limit})
        self._version = -1
        self._bounds_version = -1
        self._cost = np.zeros(0)
        self._hessian: np.ndarray | None = None
        self._hessian_passed = False
        self._start: np.ndarray | None = None

    def set_start(self, x: np.ndarray) -> None:
        """A start for the next solve only (e.g. the previous plan, shifted): a MIP's first
        incumbent when HiGHS finds it feasible, else ignored. LPs take none: HiGHS' simplex
        would need a basis, not a point (measured in docs/mpc.md)."""
        self._start = np.asarray(x, float)

    # -- objective -------------------------------------------------------------------
    def set_cost(self, cost: np.ndarray) -> None:
        """Linear objective coefficients for every column (minimised)."""
        self._cost = np.asarray(cost, float)
        if self._version == self.model.version:
            self.highs.changeColsCost(
                len(self._cost), np.arange(len(self._cost), dtype=np.int32), self._cost
            )

    def set_quadratic(self, diagonal: np.ndarray | None) -> None:
        """Objective gets ``0.5 * sum(diagonal[j] * x[j]**2)``; ``None`` removes it."""
        self._hessian = None if diagonal is None else np.asarray(diagonal, float)
        if self._version == self.model.version:
            self._pass_hessian()

    # -- solving ---------------------------------------------------------------------
    def solve(self) -> Solution:
        if self._version != self.model.version:
            self._pass_model()
        elif self._bounds_version != self.model.bounds_version:
            self._pass_bounds()
        self._pass_start()
        status = self.highs.run()
        model_status = self.highs.getModelStatus()
        if model_status == highspy.HighsModelStatus.kUnknown:
            # seen on warm re-solves after cost and bound changes (HiGHS 1.16, rarely): the
            # same model solved again from scratch, the recovery logged
            logger.warning("HiGHS ended warm with status Unknown; solving again from scratch")
            self.highs.clearSolver()
            status = self.highs.run()
            model_status = self.highs.getModelStatus()
        if model_status == highspy.HighsModelStatus.kOptimal:
            x = np.array(self.highs.getSolution().col_value)
            return Solution(x, float(self.highs.getInfo().objective_function_value), "optimal")
        info = self.highs.getInfo()
        if (
            model_status == highspy.HighsModelStatus.kTimeLimit
            and info.primal_solution_status == 2  # a feasible incumbent exists
        ):
            x = np.array(self.highs.getSolution().col_value)
            logger.warning("HiGHS hit its time limit; MIP gap %.2g", info.mip_gap)
            return Solution(x, float(info.objective_function_value), "feasible", info.mip_gap)
        if model_status in (
            highspy.HighsModelStatus.kInfeasible,
            highspy.HighsModelStatus.kUnboundedOrInfeasible,
        ):
            return Solution(np.zeros(self.model.n_cols), float("nan"), "infeasible")
        raise SolverError(
            f"HiGHS stopped with {self.highs.modelStatusToString(model_status)} ({status})"
        )

    def break_ties(
        self, secondary: np.ndarray, *, zero: Sequence[int] = (), tolerance: float = 1e-9
    ) -> np.ndarray | None:
        """Among the optima of the model just solved, one that minimises ``secondary @ x``.

        Lexicographic on the optimal face, so the cost cannot move: every optimum satisfies
        complementary slackness with the optimal duals, so a column with a reduced cost
        above ``tolerance`` (or a row with such a dual) stays at the bound it is at in every
        optimum. Those are fixed there, the objective becomes ``secondary`` and HiGHS
        re-solves warm; bounds, costs and integrality are restored afterwards. A MILP's
        integer columns are first fixed at the incumbent and the rest solved as an LP, for
        its duals (ties are then broken among schedules with the same integer choices).
        Columns in ``zero`` (at 0 in the optimum just solved) are held at 0 as well.

        ``None`` when there is nothing to break (no nonbasic column or row with a zero
        reduced cost: the optimum is unique) or a solve does not end optimal.
        """
        h, n = self.highs, self.model.n_cols
        everything = np.arange(n, dtype=np.int32)
        lo, hi = (_highs_inf(b) for b in self.model.bounds())
        rlo, rhi = (_highs_inf(b) for b in self.model.row_bounds())
        integer = np.flatnonzero(self.model.integrality()).astype(np.int32)
        changed_cols, changed_rows = integer, np.zeros(0, np.int32)
        try:
            if integer.size and not self._relax_integers(integer):
                return None
            face = self._optimal_face(lo, hi, rlo, rhi, tolerance)
            if face is None:
                return None
            changed_cols = np.concatenate([integer, face[0]])
            changed_rows = face[1]
            if zero:
                held = np.asarray(zero, dtype=np.int32)
                h.changeColsBounds(held.size, held, np.zeros(held.size), np.zeros(held.size))
                changed_cols = np.concatenate([changed_cols, held])
            h.changeColsCost(n, everything, np.asarray(secondary, float))
            h.setOptionValue("simplex_strategy", 4)  # primal: the basis stays primal feasible
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            return np.array(h.getSolution().col_value)
        finally:
            h.setOptionValue("simplex_strategy", 1)  # HiGHS' default, dual
            # only what was changed goes back (a full restore cost 0.1 ms of a 3 ms solve)
            cols = np.unique(changed_cols).astype(np.int32)
            h.changeColsBounds(cols.size, cols, lo[cols], hi[cols])
            rows = changed_rows.astype(np.int32)
            h.changeRowsBounds(  # type: ignore[attr-defined]  # not in highspy's stub
                rows.size, rows, rlo[rows], rhi[rows]
            )
            if integer.size:
                kind = np.full(integer.size, highspy.HighsVarType.kInteger)
                h.changeColsIntegrality(integer.size, integer, kind)
            h.changeColsCost(n, everything, self._cost)

    def _relax_integers(self, integer: np.ndarray) -> bool:
        """Fix a MILP's integer columns at the incumbent and solve the rest as an LP."""
        h = self.highs
        values = np.round(np.array(h.getSolution().col_value)[integer])
        h.changeColsBounds(integer.size, integer, values, values)
        kind = np.full(integer.size, highspy.HighsVarType.kContinuous)
        h.changeColsIntegrality(integer.size, integer, kind)
        h.run()
        return bool(h.getModelStatus() == highspy.HighsModelStatus.kOptimal)

    def _optimal_face(
        self, lo: np.ndarray, hi: np.ndarray, rlo: np.ndarray, rhi: np.ndarray, tolerance: float
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Fix what every optimum fixes (see :meth:`break_ties`); the fixed columns and
        rows, or ``None`` when no free direction is left (a unique optimum)."""
        h = self.highs
        sol = h.getSolution()
        x, d = np.array(sol.col_value), np.array(sol.col_dual)
        activity, y = np.array(sol.row_value), np.array(sol.row_dual)
        at_bound = (np.abs(x - lo) <= 1e-9) | (np.abs(x - hi) <= 1e-9)
        row_at_bound = (np.abs(activity - rlo) <= 1e-9) | (np.abs(activity - rhi) <= 1e-9)
        free_cols = (np.abs(d) <= tolerance) & at_bound & (hi > lo)
        free_rows = (np.abs(y) <= tolerance) & row_at_bound & (rhi > rlo)
        if not free_cols.any() and not free_rows.any():
            return None
        cols = np.flatnonzero(np.abs(d) > tolerance).astype(np.int32)
        h.changeColsBounds(cols.size, cols, x[cols], x[cols])
        rows = np.flatnonzero(np.abs(y) > tolerance).astype(np.int32)
        h.changeRowsBounds(  # type: ignore[attr-defined]  # not in highspy's stub
            rows.size, rows, activity[rows], activity[rows]
        )
        return cols, rows

    def irreducible_infeasible_set(self) -> tuple[list[int], list[int]]:
        """Rows and columns of an IIS of the LP relaxation (HiGHS' IIS finder)."""
        # strategy "from LP" + "irreducible": the light default finds nothing when presolve
        # already proved infeasibility
        relaxed = new_highs({"iis_strategy": 6})
        relaxed.passModel(self._lp(integer=False))
        relaxed.run()
        status, iis = relaxed.getIis()
        if status != highspy.HighsStatus.kOk or not iis.valid_:
            return [], []
        return list(iis.row_index_), list(iis.col_index_)

    # -- internals -------------------------------------------------------------------
    def _lp(self, *, integer: bool = True) -> highspy.HighsLp:
        m = self.model
        a = m.matrix()
        lo, hi = m.bounds()
        rlo, rhi = m.row_bounds()
        integrality = m.integrality()
        # HiGHS' presolve costs more than it saves on a small LP (measured: 0.2 ms of a 96-step
        # battery's 3.3 ms, none on its week); MIPs and large LPs keep it
        small_lp = not integrality.any() and m.n_cols <= SMALL_LP_COLUMNS
        self.highs.setOptionValue("presolve", "off" if small_lp else "choose")
        lp = highspy.HighsLp()
        lp.num_col_ = m.n_cols
        lp.num_row_ = m.n_rows
        lp.col_cost_ = self._cost if len(self._cost) == m.n_cols else np.zeros(m.n_cols)
        lp.col_lower_ = np.where(np.isinf(lo), -_INF, lo)
        lp.col_upper_ = np.where(np.isinf(hi), _INF, hi)
        lp.row_lower_ = np.where(np.isinf(rlo), -_INF, rlo)
        lp.row_upper_ = np.where(np.isinf(rhi), _INF, rhi)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data
        integrality = m.integrality()
        if integer and integrality.any():
            lp.integrality_ = [
                highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                for i in integrality
            ]
        return lp

    def _pass_model(self) -> None:
        if len(self._cost) != self.model.n_cols:  # new columns (e.g. binaries) cost nothing
            cost = np.zeros(self.model.n_cols)
            cost[: len(self._cost)] = self._cost[: self.model.n_cols]
            self._cost = cost
        m = self.model
        a = m.matrix()
        lo, hi = m.bounds()
        rlo, rhi = m.row_bounds()
        integrality = m.integrality()
        # HiGHS' presolve costs more than it saves on a small LP (measured: 0.2 ms of a 96-step
        # battery's 3.3 ms, none on its week); MIPs and large LPs keep it
        small_lp = not integrality.any() and m.n_cols <= SMALL_LP_COLUMNS
        self.highs.setOptionValue("presolve", "off" if small_lp else "choose")
        # the array overload reads numpy buffers; HighsLp's setters convert element-wise
        # (measured: 0.4 ms of a 96-step battery's 3 ms)
        status = self.highs.passModel(
            m.n_cols, m.n_rows, a.nnz, 1, 1, 0.0,  # column-wise, minimise, no offset
            self._cost, _highs_inf(lo), _highs_inf(hi), _highs_inf(rlo), _highs_inf(rhi),
            a.indptr.astype(np.int32), a.indices.astype(np.int32), a.data,
            integrality.astype(np.int32),
        )  # fmt: skip
        if status == highspy.HighsStatus.kError:
            raise SolverError(f"HiGHS refused the model ({m.n_cols} columns, {m.n_rows} rows)")
        self._version = self.model.version
        self._bounds_version = self.model.bounds_version
        self._pass_hessian()

    def _pass_start(self) -> None:
        start, self._start = self._start, None
        if start is None or start.size != self.model.n_cols:
            return
        if not self.model.integrality().any():
            return
        n = self.model.n_cols
        self.highs.setSolution(n, np.arange(n, dtype=np.int32), start)

    def _pass_bounds(self) -> None:
        lo, hi = self.model.bounds()
        n = self.model.n_cols
        self.highs.changeColsBounds(
            n,
            np.arange(n, dtype=np.int32),
            np.where(np.isinf(lo), -_INF, lo),
            np.where(np.isinf(hi), _INF, hi),
        )
        self._bounds_version = self.model.bounds_version

    def _pass_hessian(self) -> None:
        if self._hessian is None:
            if self._hessian_passed:
                self.highs.passHessian(highspy.HighsHessian())  # dim 0: back to an LP
                self._hessian_passed = False
            return
        n = self.model.n_cols
        diag = np.zeros(n)
        diag[: len(self._hessian)] = self._hessian
        nz = np.flatnonzero(diag)
        hessian = highspy.HighsHessian()
        hessian.dim_ = n
        hessian.format_ = highspy.HessianFormat.kTriangular
        start = np.searchsorted(nz, np.arange(n + 1)).astype(np.int32)
        hessian.start_ = start
        hessian.index_ = nz.astype(np.int32)
        hessian.value_ = diag[nz]
        self.highs.passHessian(hessian)
        # HiGHS 1.16's QP hot start can fail after the Hessian changed: start the QP afresh
        self.highs.clearSolver()
        self._hessian_passed = True
