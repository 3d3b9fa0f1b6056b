"""Export a site model to Pyomo, for inspection, extension or other solvers.

vpp hands its arrays to HiGHS directly (see docs/benchmarks.md for why: a Pyomo build plus
APPSI's first solve costs ~15x the plain-HiGHS floor on a 96-step battery, and APPSI-HiGHS
refuses the quadratic ADMM penalty). The Pyomo model is the same (MI)LP: one indexed
``Var`` per variable block and one indexed ``Constraint`` per constraint family, named after
the family (``soc_dynamics__battery``), so users can add their own constraints in Pyomo and
solve with any Pyomo solver.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vpp.linear import LinearModel

__all__ = ["to_pyomo"]


def _name(name: str, device: str | None, used: set[str]) -> str:
    base = re.sub(r"\W", "_", f"{name}__{device}" if device else name)
    candidate, k = base, 1
    while candidate in used:
        k += 1
        candidate = f"{base}_{k}"
    used.add(candidate)
    return candidate


def to_pyomo(model: LinearModel, cost: np.ndarray) -> Any:
    """A ``pyomo.environ.ConcreteModel`` equal to ``model`` with objective ``min cost @ x``."""
    import pyomo.environ as pyo

    m = pyo.ConcreteModel()
    lo, hi = model.bounds()
    integer = model.integrality()
    used: set[str] = set()
    columns: list[Any] = [None] * model.n_cols
    for block in model.var_blocks:
        idx = range(block.size)
        domain = pyo.Integers if integer[block.start] else pyo.Reals
        var = pyo.Var(idx, domain=domain)
        m.add_component(_name(block.name, block.device, used), var)
        for i in idx:
            col = block.start + i
            var[i].setlb(None if np.isinf(lo[col]) else float(lo[col]))
            var[i].setub(None if np.isinf(hi[col]) else float(hi[col]))
            columns[col] = var[i]
    a = model.matrix().tocsr()
    rlo, rhi = model.row_bounds()
    for family in model.families:
        rows = range(family.start, family.start + family.size)
        con = pyo.Constraint(range(family.size))
        m.add_component(_name(family.name, family.device, used), con)
        for i, r in enumerate(rows):
            start, stop = a.indptr[r], a.indptr[r + 1]
            body = sum(
                float(v) * columns[c]
                for c, v in zip(a.indices[start:stop], a.data[start:stop], strict=True)
            )
            lower = None if np.isinf(rlo[r]) else float(rlo[r])
            upper = None if np.isinf(rhi[r]) else float(rhi[r])
            con[i] = (lower, body, upper)
    nz = np.flatnonzero(cost)
    m.objective = pyo.Objective(expr=sum(float(cost[c]) * columns[c] for c in nz))
    return m
