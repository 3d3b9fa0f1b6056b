"""A small vectorised (MI)LP container: named variable blocks and named constraint families.

Asset modules add whole blocks at once (one column per time step, one row per time step) with
numpy arrays, the way linopy and PyPSA build models: no Python object per constraint. Every
row remembers its *family* (a stable name such as ``soc-dynamics``), its device and its time
index, so a solver's infeasibility certificate can be told back to the user in their terms.

The same model can be exported to Pyomo (:func:`vpp.pyomo_export.to_pyomo`) for inspection or
for other solvers; vpp itself hands the arrays straight to HiGHS (:mod:`vpp.solver`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = ["INF", "Block", "LinearModel", "Term"]


INF = float("inf")

Term = tuple[float, np.ndarray] | tuple[np.ndarray, np.ndarray]
"""``(coefficient, columns)``: one column per row; a negative column means no term there."""


@dataclass
class Block:
    """A contiguous group of columns (variables) or rows (constraints) with one name."""

    name: str
    device: str | None
    start: int
    size: int
    instant: bool = False  # indexed by instants 0..T (SoC) rather than steps 0..T-1
    offset: int = 0  # time index of the block's first element
    doc: str = ""

    @property
    def indices(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.size)

    def time_of(self, index: int) -> int:
        return index - self.start + self.offset


@dataclass
class LinearModel:
    """Columns with bounds, integrality and cost; rows ``lower <= A x <= upper``."""

    col_lower: list[np.ndarray] = field(default_factory=list)
    col_upper: list[np.ndarray] = field(default_factory=list)
    col_integer: list[np.ndarray] = field(default_factory=list)
    var_blocks: list[Block] = field(default_factory=list)
    row_lower: list[np.ndarray] = field(default_factory=list)
    row_upper: list[np.ndarray] = field(default_factory=list)
    families: list[Block] = field(default_factory=list)
    _rows: list[np.ndarray] = field(default_factory=list)
    _cols: list[np.ndarray] = field(default_factory=list)
    _vals: list[np.ndarray] = field(default_factory=list)
    n_cols: int = 0
    n_rows: int = 0
    version: int = 0  # bumped on every structural change, so solvers know to rebuild
    bounds_version: int = 0  # bumped when only column bounds change: solvers update them warm

    def add_vars(
        self,
        name: str,
        size: int,
        lower: float | np.ndarray = 0.0,
        upper: float | np.ndarray = INF,
        *,
        device: str | None = None,
        integer: bool = False,
        instant: bool = False,
        offset: int = 0,
    ) -> np.ndarray:
        """Add ``size`` columns; returns their indices."""
        block = Block(name, device, self.n_cols, size, instant, offset)
        self.var_blocks.append(block)
        self.col_lower.append(np.broadcast_to(np.asarray(lower, float), (size,)).copy())
        self.col_upper.append(np.broadcast_to(np.asarray(upper, float), (size,)).copy())
        self.col_integer.append(np.full(size, integer))
        self.n_cols += size
        self.version += 1
        return block.indices

    def add_rows(
        self,
        family: str,
        terms: Sequence[Term],
        lower: float | np.ndarray,
        upper: float | np.ndarray,
        *,
        device: str | None = None,
        instant: bool = False,
        offset: int = 0,
        doc: str = "",
        size: int | None = None,
    ) -> np.ndarray:
        """Add one row per element of the term arrays: ``lower <= sum(coef * x[col]) <= upper``.

        ``offset`` is the time index of the first row, so row ``i`` concerns time
        ``offset + i`` (a step, or an instant when ``instant``).
        """
        n = size if size is not None else len(terms[0][1])
        rows = np.arange(self.n_rows, self.n_rows + n)
        for coef, cols in terms:
            cols = np.asarray(cols)
            vals = np.broadcast_to(np.asarray(coef, float), cols.shape)
            keep = (cols >= 0) & (vals != 0.0)
            row_of = np.broadcast_to(rows.reshape((n,) + (1,) * (cols.ndim - 1)), cols.shape)
            self._rows.append(row_of[keep])
            self._cols.append(cols[keep])
            self._vals.append(vals[keep])
        self.row_lower.append(np.broadcast_to(np.asarray(lower, float), (n,)).copy())
        self.row_upper.append(np.broadcast_to(np.asarray(upper, float), (n,)).copy())
        self.families.append(Block(family, device, self.n_rows, n, instant, offset, doc))
        self.n_rows += n
        self.version += 1
        return rows

    def append(self, other: LinearModel, prefix: str) -> int:
        """Copy ``other`` into this model (devices renamed ``prefix/device``); its column
        offset here."""
        col0, row0 = self.n_cols, self.n_rows
        lo, hi = other.bounds()
        rlo, rhi = other.row_bounds()
        self.col_lower.append(lo)
        self.col_upper.append(hi)
        self.col_integer.append(other.integrality())
        self.row_lower.append(rlo)
        self.row_upper.append(rhi)
        a = other.matrix().tocoo()
        self._rows.append(a.row + row0)
        self._cols.append(a.col + col0)
        self._vals.append(a.data)
        for src, dst, shift in (
            (other.var_blocks, self.var_blocks, col0),
            (other.families, self.families, row0),
        ):
            for b in src:
                device = f"{prefix}/{b.device}" if b.device else prefix
                dst.append(
                    Block(b.name, device, b.start + shift, b.size, b.instant, b.offset, b.doc)
                )
        self.n_cols += other.n_cols
        self.n_rows += other.n_rows
        self.version += 1
        return col0

    # -- read access -------------------------------------------------------------------
    def matrix(self) -> sp.csc_array:
        if not self._rows:
            return sp.csc_array((self.n_rows, self.n_cols))
        return sp.csc_array(
            (np.concatenate(self._vals), (np.concatenate(self._rows), np.concatenate(self._cols))),
            shape=(self.n_rows, self.n_cols),
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return _cat(self.col_lower), _cat(self.col_upper)

    def row_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return _cat(self.row_lower), _cat(self.row_upper)

    def integrality(self) -> np.ndarray:
        return _cat(self.col_integer).astype(bool)

    def family_of_row(self, row: int) -> Block:
        return _find(self.families, row)

    def block_of_col(self, col: int) -> Block:
        return _find(self.var_blocks, col)

    def shifted_start(self, previous: LinearModel, x: np.ndarray, steps: int) -> np.ndarray:
        """A start for this model from ``previous``'s solution ``x``, ``steps`` later: each
        column takes the value of the column of the same block (name and device, in order of
        addition) at its time plus ``steps``; past the end of that block, the block's last
        value; a block ``previous`` lacks, 0. Clipped to this model's bounds and integers
        rounded. Rolling-horizon re-planning (:mod:`vpp.mpc`) hands it to HiGHS as a start:
        a hint, checked by the solver, never a constraint."""
        start = np.zeros(self.n_cols)
        seen: dict[tuple[str, str | None], int] = {}
        old: dict[tuple[str, str | None, int], Block] = {}
        for block in previous.var_blocks:
            key = (block.name, block.device)
            old[(*key, seen.get(key, 0))] = block
            seen[key] = seen.get(key, 0) + 1
        seen.clear()
        for block in self.var_blocks:
            key = (block.name, block.device)
            match = old.get((*key, seen.get(key, 0)))
            seen[key] = seen.get(key, 0) + 1
            if match is None or match.size == 0:
                continue
            if block.size == 1 and match.size == 1:  # not a time series: carried over
                start[block.start] = x[match.start]
                continue
            at = np.arange(block.size) + block.offset + steps - match.offset
            start[block.indices] = x[match.start + np.clip(at, 0, match.size - 1)]
        lo, hi = self.bounds()
        start = np.clip(start, lo, hi)
        integer = self.integrality()
        start[integer] = np.round(start[integer])
        return start

    def tighten(
        self, cols: np.ndarray, lower: float | np.ndarray, upper: float | np.ndarray
    ) -> None:
        """Intersect the bounds of ``cols`` with ``[lower, upper]``."""
        lo, hi = self.bounds()
        self.set_bounds(cols, np.maximum(lo[cols], lower), np.minimum(hi[cols], upper))

    def set_bounds(
        self, cols: np.ndarray, lower: float | np.ndarray, upper: float | np.ndarray
    ) -> None:
        lo, hi = self.bounds()
        lo[cols], hi[cols] = lower, upper
        self.col_lower, self.col_upper = [lo], [hi]
        self.bounds_version += 1


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def _find(blocks: list[Block], index: int) -> Block:
    starts = [b.start for b in blocks]
    i = int(np.searchsorted(starts, index, side="right")) - 1
    return blocks[i]
