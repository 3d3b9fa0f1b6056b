"""Site actors: each holds the flex-models of one site (or a shard of sites), their models
built once, and their latest schedules; it answers the coordinator's ADMM calls.

The actor's constructor arguments are the sites' validated requests, so when Ray restarts a
crashed actor (``max_restarts``) it rebuilds the same sites from them: re-seeded from the
stored flex-models, only its warm-start state is lost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np

from actors import metrics
from vpp.admm import call_site
from vpp.errors import InfeasibleError
from vpp.request import ScheduleRequest
from vpp.site import SiteProblem, SiteSchedule
from vpp.telemetry import span_from, tracer

__all__ = ["CALLS", "SiteShard"]


logger = logging.getLogger(__name__)


CALLS = frozenset({"solve_alone", "x_update", "solve_within", "dual_values", "power_ranges"})
"""The methods :meth:`SiteShard.call` runs."""


class SiteShard:
    """One or more sites. Methods take and return arrays with one row per site.

    Each site solve is span ``site.solve`` (attribute ``vpp.site``) and an observation of
    metric ``vpp_site_solve_seconds`` (tag ``method``).
    """

    def __init__(self, ids: list[str], requests: list[ScheduleRequest]) -> None:
        self.ids = ids
        self.sites = [SiteProblem(r, break_ties=False) for r in requests]
        self._spans = tracer(__name__)
        logger.info("shard of %d sites ready in pid %d", len(ids), os.getpid())

    def call(self, method: str, trace_context: dict[str, str] | None, *args: Any) -> Any:
        """``method(*args)`` within span ``shard.<method>``, a child of ``trace_context`` (the
        caller's span in another process): how :class:`actors.pool.RayPool` calls shards, so
        subclasses override the methods themselves."""
        if method not in CALLS:
            raise ValueError(f"a shard has no call {method!r}; one of {sorted(CALLS)}")
        with span_from(trace_context, f"shard.{method}", sites=len(self.ids)):
            return getattr(self, method)(*args)

    def _each(self, method: str, fn: Callable[[SiteProblem, int], Any]) -> list[Any]:
        """``fn(site, row)`` for every site, each in span ``site.solve`` and timed; what a
        site's own code raises fails the call naming the site (:func:`vpp.admm.call_site`)."""
        out = []
        for k, (site_id, site) in enumerate(zip(self.ids, self.sites, strict=True)):
            with self._spans.start_as_current_span("site.solve") as span, _timed(method):
                span.set_attribute("vpp.site", site_id)
                out.append(call_site(site_id, method, partial(fn, site, k)))
        return out

    def solve_alone(self) -> tuple[np.ndarray, np.ndarray, list[SiteSchedule]]:
        schedules = self._each("solve_alone", lambda site, _k: site.solve())
        return (
            np.array([s.site_power for s in schedules]),
            np.array([s.cost for s in schedules]),
            schedules,
        )

    def x_update(
        self, rho: float, targets: np.ndarray, accuracy: float, rows: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prox step of every site toward its row of ``targets`` (the portfolio's array)."""

        def step(site: SiteProblem, k: int) -> tuple[np.ndarray, float]:
            x = site.prox(rho, targets[rows[k]], accuracy=accuracy)
            return x, site.schedule_of_last().cost

        x, costs = zip(*self._each("x_update", step), strict=True)
        return np.array(x), np.array(costs)

    def solve_within(
        self, lower: np.ndarray, upper: np.ndarray, rows: list[int]
    ) -> list[SiteSchedule | None]:
        def within(site: SiteProblem, k: int) -> SiteSchedule | None:
            try:
                return site.solve_within(lower[rows[k]], upper[rows[k]])
            except InfeasibleError:  # this share cannot be kept: the final step reallocates
                return None

        return self._each("solve_within", within)

    def dual_values(self, price: np.ndarray, rows: list[int]) -> np.ndarray:
        """Every site's :meth:`SiteProblem.dual_value` at ``price`` (the bound's LPs)."""
        return np.array(self._each("dual_value", lambda site, _k: site.dual_value(price)))

    def power_ranges(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [site.power_range() for site in self.sites]

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())


@contextmanager
def _timed(method: str) -> Iterator[None]:
    """Observe the block's wall time in ``vpp_site_solve_seconds{method}``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.site_solve(method, time.perf_counter() - started)
