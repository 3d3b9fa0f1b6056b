"""The sites of a portfolio as Ray actors, behind the :class:`vpp.admm.SitePool` protocol.

Sites are grouped into shards: one actor per site while the portfolio has at most
``one_per_site_max`` sites (default 16), otherwise ``shards`` actors (default: one per
CPU of the cluster) of about equal size. Each call launches every shard's ``.remote()`` first,
then waits once (``ray.wait`` with a deadline) for all of them:

* a shard that misses the deadline is *degraded* for that call: its sites keep their last
  power (x-update) or their own schedule (final step) and are named in the result;
* a shard whose actor died is degraded likewise; Ray restarts it (``max_restarts``) and the
  restarted actor rebuilds its sites from their requests, so the next call reaches it again.

The coordinator therefore never waits longer than the deadline for any call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayError

from actors.site import SiteShard
from vpp.errors import VppError
from vpp.request import ScheduleRequest
from vpp.site import SiteSchedule

logger = logging.getLogger(__name__)


@dataclass
class PoolOptions:
    one_per_site_max: int = 16
    shards: int | None = None  # None: one per CPU of the cluster (more only add processes)
    deadline: float = 60.0  # seconds one call may take
    first_deadline: float = 600.0  # the first call builds every model
    max_restarts: int = 2
    resources: dict[str, float] | None = None  # custom resources each shard asks for


class RayPool:
    def __init__(
        self,
        ids: list[str],
        requests: Sequence[ScheduleRequest],
        options: PoolOptions | None = None,
        shard_class: type[SiteShard] = SiteShard,
    ) -> None:
        self.site_ids = ids
        self.options = options or PoolOptions()
        self.groups = _groups(len(ids), self.options)
        remote_class: Any = ray.remote(shard_class)  # Ray's stubs do not type actor classes
        self.actors: list[Any] = [
            remote_class.options(
                max_restarts=self.options.max_restarts,
                max_task_retries=0,
                num_cpus=0,  # shards share the CPUs; Ray must not serialise them by CPU count
                resources=self.options.resources or {},
            ).remote([ids[i] for i in group], [requests[i] for i in group])
            for group in self.groups
        ]
        self.steps = requests[0].horizon.steps if requests else 0
        self.x = np.zeros((len(ids), self.steps))
        self.costs = np.zeros(len(ids))
        self.fallback: list[SiteSchedule | None] = [None] * len(ids)

    # -- protocol --------------------------------------------------------------------
    def solve_alone(self) -> tuple[np.ndarray, np.ndarray]:
        results, missing = self._call("solve_alone", self.options.first_deadline)
        if missing:
            raise VppError(
                f"sites {self._ids_of(missing)[:10]} did not build or solve within "
                f"{self.options.first_deadline:g} s"
            )
        for group, (x, costs, schedules) in zip(self.groups, results, strict=True):
            self.x[group], self.costs[group] = x, costs
            for i, schedule in zip(group, schedules, strict=True):
                self.fallback[i] = schedule
        return self.x.copy(), self.costs.copy()

    def x_update(self, rho: float, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        shared = ray.put(targets)  # once in the object store; every shard reads its rows
        results, missing = self._call("x_update", self.options.deadline, rho, shared)
        for group, result in zip(self.groups, results, strict=True):
            if result is not None:
                self.x[group], self.costs[group] = result
        return self.x.copy(), self.costs.copy(), self._ids_of(missing)

    def solve_within(
        self, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[list[SiteSchedule | None], list[str]]:
        bounds = ray.put(lower), ray.put(upper)
        results, missing = self._call("solve_within", self.options.deadline, *bounds)
        out: list[SiteSchedule | None] = list(self.fallback)
        for group, result in zip(self.groups, results, strict=True):
            if result is not None:
                for i, schedule in zip(group, result, strict=True):
                    out[i] = schedule
        return out, self._ids_of(missing)

    def power_ranges(self) -> list[tuple[np.ndarray, np.ndarray]]:
        results, missing = self._call("power_ranges", self.options.first_deadline)
        if missing:
            raise VppError(f"sites {self._ids_of(missing)[:10]} did not answer")
        out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0))] * len(self.site_ids)
        for group, ranges in zip(self.groups, results, strict=True):
            for i, pair in zip(group, ranges, strict=True):
                out[i] = pair
        return out

    def node_ids(self) -> list[str]:
        """The Ray node each shard runs on (for placement checks)."""
        return [str(n) for n in ray.get([a.node_id.remote() for a in self.actors])]

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)

    # -- internals -------------------------------------------------------------------
    def _call(self, method: str, deadline: float, *args: Any) -> tuple[list[Any], list[int]]:
        """Call ``method`` on every shard (``rows`` appended), wait once; results in shard
        order (``None`` where missing) and the indices of the missing shards."""
        refs = [
            getattr(actor, method).remote(*args, group) if args else getattr(actor, method).remote()
            for actor, group in zip(self.actors, self.groups, strict=True)
        ]
        started = time.monotonic()
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=deadline)
        ready_set = set(ready)
        results: list[Any] = [None] * len(refs)
        missing = [k for k, ref in enumerate(refs) if ref not in ready_set]
        done = [k for k, ref in enumerate(refs) if ref in ready_set]
        try:
            values = ray.get([refs[k] for k in done], timeout=max(1.0, deadline))
            for k, value in zip(done, values, strict=True):
                results[k] = value
        except (RayError, GetTimeoutError):
            missing += self._get_each(refs, done, results)
        if missing:
            logger.warning(
                "%s: %d of %d shards missed the %.0f s deadline or failed (waited %.1f s)",
                method,
                len(missing),
                len(refs),
                deadline,
                time.monotonic() - started,
            )
        return results, sorted(missing)

    @staticmethod
    def _get_each(refs: list[Any], done: list[int], results: list[Any]) -> list[int]:
        """After a failed batch get: collect the ready ones that did succeed."""
        failed = []
        for k in done:
            try:
                results[k] = ray.get(refs[k], timeout=1.0)
            except (RayError, GetTimeoutError) as err:
                logger.warning("shard %d failed: %s", k, type(err).__name__)
                failed.append(k)
        return failed

    def _ids_of(self, shards: list[int]) -> list[str]:
        return [self.site_ids[i] for k in shards for i in self.groups[k]]


def _groups(n: int, options: PoolOptions) -> list[list[int]]:
    if n <= options.one_per_site_max:
        return [[i] for i in range(n)]
    shards = options.shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = math.ceil(n / min(shards, n))
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
