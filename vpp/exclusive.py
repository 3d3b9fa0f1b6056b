"""Complementarity of two non-negative columns, ``a[t] * b[t] = 0``, enforced lazily.

A battery cannot charge and discharge in the same step; a site cannot import and export in
the same step. An LP optimum only does both when that pays (wasting energy at negative
prices, or selling above the buying price), so vpp solves the LP first and adds a binary
``y`` only at the steps where both are positive:

``a[t] <= M_a[t] * y[t]``, ``b[t] <= M_b[t] * (1 - y[t])``, ``M`` the columns' upper bounds.

Repeating until no step has both positive gives the optimum of the model with binaries at
every step: adding binaries only removes solutions, and the final solution is feasible for
the fully constrained model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from vpp.linear import INF, LinearModel

__all__ = ["TOLERANCE", "Exclusivity", "WarmStart", "warm_point"]


logger = logging.getLogger(__name__)

TOLERANCE = 1e-7  # kW: below this, "both positive" is solver noise

WarmStart = tuple[LinearModel, np.ndarray, int]
"""A previous model, its solution and how many steps later the new model starts."""


def warm_point(model: LinearModel, warm: WarmStart, *pairs: Exclusivity) -> np.ndarray:
    """A start for ``model`` from the previous solution ``warm``, shifted
    (:meth:`LinearModel.shifted_start`), with each binary of ``pairs`` set to what its
    continuous columns imply."""
    previous, x, steps = warm
    start = model.shifted_start(previous, x, steps)
    for exclusivity in pairs:
        exclusivity.implied(start)
    return start


@dataclass
class Exclusivity:
    """Pairs of column blocks that may not both be positive at one step."""

    family: str
    pairs: list[tuple[np.ndarray, np.ndarray, str | None]] = field(default_factory=list)
    done: set[tuple[int, int]] = field(default_factory=set)
    binaries: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (y, a) columns

    def add_binaries(
        self,
        model: LinearModel,
        a: np.ndarray,
        b: np.ndarray,
        steps: np.ndarray,
        device: str | None,
        big_m: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Binaries at ``steps``; ``big_m`` (per step of the whole horizon) overrides the
        columns' upper bounds as ``M`` where the caller knows tighter ones."""
        _, hi = model.bounds()
        y = model.add_vars(
            f"{self.family}-binary", len(steps), 0.0, 1.0, device=device, integer=True
        )
        m_a, m_b = hi[a[steps]], hi[b[steps]]
        if big_m is not None:
            m_a, m_b = np.minimum(m_a, big_m[0][steps]), np.minimum(m_b, big_m[1][steps])
        model.add_rows(
            self.family,
            [(1.0, a[steps]), (-m_a, y)],
            -INF,
            0.0,
            device=device,
            offset=int(steps[0]),
        )
        model.add_rows(
            self.family, [(1.0, b[steps]), (m_b, y)], -INF, m_b, device=device, offset=int(steps[0])
        )
        self.done.update((int(a[0]), int(s)) for s in steps)
        self.binaries.append((y, a[steps]))

    def steps_of(self, device: str | None) -> list[np.ndarray]:
        """Per pair of ``device`` (in order), the steps that have a binary."""
        return [
            np.array(sorted(s for c, s in self.done if c == int(a[0])), int)
            for a, _b, name in self.pairs
            if name == device
        ]

    def carry_over(self, model: LinearModel, previous: Exclusivity, steps: int, n: int) -> None:
        """Binaries at the times ``previous`` (the same model ``steps`` earlier, over ``n``
        steps) had them: a warm start skips the LP rounds that would find them again."""
        for name in {name for _a, _b, name in self.pairs}:
            mine = [(a, b) for a, b, label in self.pairs if label == name]
            for (a, b), then in zip(mine, previous.steps_of(name), strict=False):
                now = then - steps
                now = now[(now >= 0) & (now < n)]
                now = np.array([t for t in now if (int(a[0]), int(t)) not in self.done], int)
                if now.size:
                    self.add_binaries(model, a, b, now, name)

    def implied(self, x: np.ndarray) -> None:
        """Set each binary in ``x`` to what the continuous columns in ``x`` imply: 1 where
        the first column of its pair is positive, else 0 (a start for the solver)."""
        for y, a in self.binaries:
            x[y] = (x[a] > TOLERANCE).astype(float)

    def enforce(self, model: LinearModel, x: np.ndarray) -> bool:
        """Add binaries where a pair is both positive in ``x``; True if any were added."""
        added = False
        for a, b, device in self.pairs:
            both = np.flatnonzero(np.minimum(x[a], x[b]) > TOLERANCE)
            steps = np.array([t for t in both if (int(a[0]), int(t)) not in self.done], int)
            if steps.size:
                logger.debug("%s: %s at %d steps", device, self.family, steps.size)
                self.add_binaries(model, a, b, steps, device)
                added = True
        return added
