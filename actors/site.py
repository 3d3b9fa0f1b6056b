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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from actors import metrics
from vpp.errors import InfeasibleError
from vpp.request import ScheduleRequest
from vpp.site import SiteProblem, SiteSchedule
from vpp.telemetry import span_from, tracer

logger = logging.getLogger(__name__)


CALLS = frozenset({"solve_alone", "x_update", "solve_within", "power_ranges"})
"""The methods :meth:`SiteShard.call` runs."""


class SiteShard:
    """One or more sites. Methods take and return arrays with one row per site.

    Each site solve is span ``site.solve`` (attribute ``vpp.site``) and an observation of
    metric ``vpp_site_solve_seconds`` (tag ``method``).
    """

    def __init__(self, ids: list[str], requests: list[ScheduleRequest]) -> None:
        self.ids = ids
        self.sites = [SiteProblem(r) for r in requests]
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

    def solve_alone(self) -> tuple[np.ndarray, np.ndarray, list[SiteSchedule]]:
        schedules = []
        for site_id, site in zip(self.ids, self.sites, strict=True):
            with self._spans.start_as_current_span("site.solve") as span, _timed("solve_alone"):
                span.set_attribute("vpp.site", site_id)
                schedules.append(site.solve())
        return (
            np.array([s.site_power for s in schedules]),
            np.array([s.cost for s in schedules]),
            schedules,
        )

    def x_update(
        self, rho: float, targets: np.ndarray, rows: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prox step of every site toward its row of ``targets`` (the portfolio's array)."""
        x, costs = [], []
        for site_id, site, row in zip(self.ids, self.sites, rows, strict=True):
            with self._spans.start_as_current_span("site.solve") as span, _timed("x_update"):
                span.set_attribute("vpp.site", site_id)
                x.append(site.prox(rho, targets[row]))
                costs.append(site.schedule_of_last().cost)
        return np.array(x), np.array(costs)

    def solve_within(
        self, lower: np.ndarray, upper: np.ndarray, rows: list[int]
    ) -> list[SiteSchedule | None]:
        out: list[SiteSchedule | None] = []
        for site_id, site, row in zip(self.ids, self.sites, rows, strict=True):
            with self._spans.start_as_current_span("site.solve") as span, _timed("solve_within"):
                span.set_attribute("vpp.site", site_id)
                try:
                    out.append(site.solve_within(lower[row], upper[row]))
                except InfeasibleError:
                    out.append(None)
        return out

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
