"""The sites of a portfolio as Ray actors, behind the :class:`vpp.admm.SitePool` protocol.

Sites are grouped into shards: one actor per site while the portfolio has at most
``one_per_site_max`` sites (default 16), otherwise ``shards`` actors (default: one per
CPU of the cluster) of about equal size. Each call launches every shard's ``.remote()`` first,
then gathers the answers (``ray.wait``) until a deadline:

* a shard that misses the deadline is *degraded* for that call: its sites keep their last
  power (x-update) or their own schedule (final step) and are named in the result;
* a shard whose actor died (its process, or its node) is degraded likewise in an x-update
  (the iterations do not stall on it); Ray restarts it (``max_restarts``, on any live node:
  shards need no custom resource unless ``resources`` says so) and the restarted actor
  rebuilds its sites from their requests, so a later call reaches it again. The calls the
  result depends on (first solve, power ranges, final step) call a dead shard again until
  their deadline, so its sites are re-run rather than left at their first schedule; after
  ``restart_grace`` seconds down a shard is no longer waited for (one attempt per call).

Shards are spread over the cluster's nodes (``SPREAD`` with a token CPU share each, which
Ray balances evenly; zero-CPU shards and soft node affinities were split unevenly in trials on
Ray 2.60, and hard affinities would stop a restart elsewhere). A restart after a node loss lands
on a live node. Their constructor arguments are put in the object store by
the pool, which holds the references for the pool's lifetime: Ray re-reads them to restart
an actor, and would otherwise have released them after the first start
(ray-project/ray#53727), so a restart after a node loss would fail.

The coordinator therefore never waits longer than the deadline for any call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from actors.site import SiteShard
from vpp.admm import Degraded
from vpp.errors import VppError
from vpp.request import ScheduleRequest
from vpp.site import SiteSchedule
from vpp.telemetry import inject

__all__ = ["RETRY_PAUSE", "SHARD_CPUS", "PoolOptions", "RayPool"]


logger = logging.getLogger(__name__)


@dataclass
class PoolOptions:
    one_per_site_max: int = 16
    shards: int | None = None  # None: one per CPU of the cluster (more only add processes)
    deadline: float = 60.0  # seconds one call may take
    first_deadline: float = 600.0  # the first call builds every model
    max_restarts: int = 2
    resources: dict[str, float] | None = None  # custom resources each shard asks for
    # how long a failed shard is waited for (called again within each call's deadline):
    # node-death detection (~15 s) plus a restart that rebuilds the models
    restart_grace: float = 120.0


RETRY_PAUSE = 0.5  # seconds between calls to a shard that is down
SHARD_CPUS = 0.01  # what a shard reserves (see RayPool.__init__)


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
        # held for the pool's lifetime: a restarted actor is built from them again
        self._args = [
            (ray.put([ids[i] for i in group]), ray.put([requests[i] for i in group]))
            for group in self.groups
        ]
        self._down_since: dict[int, float] = {}  # shard -> when it first failed
        self.actors: list[Any] = [
            remote_class.options(
                max_restarts=self.options.max_restarts,
                max_task_retries=0,
                # a token CPU share: shards share the CPUs (Ray must not serialise them by CPU
                # count), yet SPREAD balances by resources: with num_cpus=0 it put 3 of 4
                # shards on one of two nodes in 2 of 3 trials, with 0.01 always 2/2
                num_cpus=SHARD_CPUS,
                resources=self.options.resources or {},
                scheduling_strategy="SPREAD",
            ).remote(*args)
            for args in self._args
        ]
        self.steps = requests[0].horizon.steps if requests else 0
        self.x = np.zeros((len(ids), self.steps))
        self.costs = np.zeros(len(ids))
        self.fallback: list[SiteSchedule | None] = [None] * len(ids)

    # -- protocol --------------------------------------------------------------------
    def solve_alone(self) -> tuple[np.ndarray, np.ndarray]:
        results, missing = self._call("solve_alone", self.options.first_deadline, wait=True)
        if missing:
            raise VppError(
                f"sites {self._ids_of(list(missing))[:10]} did not build or solve within "
                f"{self.options.first_deadline:g} s ({next(iter(missing.values()))})"
            )
        for group, (x, costs, schedules) in zip(self.groups, results, strict=True):
            self.x[group], self.costs[group] = x, costs
            for i, schedule in zip(group, schedules, strict=True):
                self.fallback[i] = schedule
        return self.x.copy(), self.costs.copy()

    def x_update(
        self, rho: float, targets: np.ndarray, accuracy: float
    ) -> tuple[np.ndarray, np.ndarray, Degraded]:
        shared = ray.put(targets)  # once in the object store; every shard reads its rows
        results, missing = self._call("x_update", self.options.deadline, rho, shared, accuracy)
        for group, result in zip(self.groups, results, strict=True):
            if result is not None:
                self.x[group], self.costs[group] = result
        return self.x.copy(), self.costs.copy(), self._degraded(missing)

    def solve_within(
        self, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[list[SiteSchedule | None], Degraded]:
        bounds = ray.put(lower), ray.put(upper)
        results, missing = self._call("solve_within", self.options.deadline, *bounds, wait=True)
        out: list[SiteSchedule | None] = list(self.fallback)
        for group, result in zip(self.groups, results, strict=True):
            if result is not None:
                for i, schedule in zip(group, result, strict=True):
                    out[i] = schedule
        return out, self._degraded(missing)

    def dual_values(self, price: np.ndarray) -> tuple[np.ndarray, Degraded]:
        results, missing = self._call("dual_values", self.options.deadline, price)
        values = np.full(len(self.site_ids), np.nan)
        for group, result in zip(self.groups, results, strict=True):
            if result is not None:
                values[group] = result
        return values, self._degraded(missing)

    def power_ranges(self) -> list[tuple[np.ndarray, np.ndarray]]:
        results, missing = self._call("power_ranges", self.options.first_deadline, wait=True)
        if missing:
            raise VppError(
                f"sites {self._ids_of(list(missing))[:10]} did not answer "
                f"({next(iter(missing.values()))})"
            )
        out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0))] * len(self.site_ids)
        for group, ranges in zip(self.groups, results, strict=True):
            for i, pair in zip(group, ranges, strict=True):
                out[i] = pair
        return out

    def node_ids(self) -> list[str]:
        """The Ray node each shard runs on, ``""`` for a shard that did not answer within
        ``first_deadline`` (its constructor builds the models) or died."""
        refs = [a.node_id.remote() for a in self.actors]
        ready = set(ray.wait(refs, num_returns=len(refs), timeout=self.options.first_deadline)[0])
        out = []
        for ref in refs:
            try:
                out.append(str(ray.get(ref, timeout=1.0)) if ref in ready else "")
            except (RayError, GetTimeoutError):
                out.append("")
        return out

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)

    # -- internals -------------------------------------------------------------------
    def _call(
        self, method: str, deadline: float, *args: Any, wait: bool = False
    ) -> tuple[list[Any], dict[int, str]]:
        """Call ``method`` on every shard (``rows`` appended) and gather the answers until
        ``deadline``; results in shard order (``None`` where missing) and the missing shards
        with the reason. With ``wait``, a shard whose actor is down is called again (see the
        module docstring). Through :meth:`SiteShard.call`, so the shards' spans are children of the
        current span.

        Three kinds of trouble: *slow* (the deadline passed) and *gone* (the actor or its
        node died; Ray restarts it) make the shard's sites degraded for this call; *raised*
        (an exception from vpp's own code in the shard) fails the call: it is a bug or input
        the model cannot take, never a degraded site."""
        carrier = inject()

        def submit(k: int) -> Any:
            extra = (*args, self.groups[k]) if args else ()
            return (
                self.actors[k]
                .call.options(name=f"SiteShard.{method}")
                .remote(method, carrier, *extra)
            )

        started = time.monotonic()
        end = started + deadline
        pending = {submit(k): k for k in range(len(self.actors))}  # launch all, then gather
        results: list[Any] = [None] * len(self.actors)
        failed: dict[int, str] = {}
        while pending and (left := end - time.monotonic()) > 0:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=left)
            for ref in ready:
                k = pending.pop(ref)
                try:
                    results[k] = ray.get(ref, timeout=max(1.0, left))
                    self._down_since.pop(k, None)
                except RayTaskError as err:
                    raise _raised(err, self._ids_of([k])) from None
                except RayActorError as err:
                    again = self._worth_waiting(k, err) and wait  # notes when it went down
                    if again and end - time.monotonic() > RETRY_PAUSE:
                        time.sleep(RETRY_PAUSE)
                        pending[submit(k)] = k
                    else:
                        logger.warning("shard %d is gone: %s", k, type(err).__name__)
                        failed[k] = f"its actor died ({type(err).__name__})"
                except GetTimeoutError:
                    failed[k] = f"missed the {deadline:g} s deadline"
                except RayError as err:  # Ray's own trouble (a node, an object, memory): gone
                    logger.warning("shard %d is gone: %s", k, type(err).__name__)
                    failed[k] = f"Ray lost it ({type(err).__name__})"
        late = {k: f"missed the {deadline:g} s deadline" for k in pending.values()}
        missing = dict(sorted((late | failed).items()))
        if missing:
            logger.warning(
                "%s: %d of %d shards missed the %.0f s deadline or are gone (waited %.1f s)",
                method,
                len(missing),
                len(self.actors),
                deadline,
                time.monotonic() - started,
            )
        return results, missing

    def _worth_waiting(self, k: int, err: RayActorError) -> bool:
        """Whether shard ``k`` may come back: Ray can still restart it and it has been down
        for less than ``restart_grace``."""
        now = time.monotonic()
        since = self._down_since.setdefault(k, now)
        if getattr(err, "actor_init_failed", False):  # its restart failed: it stays dead
            return False
        return now - since < self.options.restart_grace

    def _ids_of(self, shards: list[int]) -> list[str]:
        return [self.site_ids[i] for k in shards for i in self.groups[k]]

    def _degraded(self, missing: dict[int, str]) -> Degraded:
        """The sites of the missing shards, each with its shard's reason."""
        return {self.site_ids[i]: reason for k, reason in missing.items() for i in self.groups[k]}


def _raised(err: RayTaskError, site_ids: list[str]) -> VppError:
    """What a shard raised, as the error the job fails with: the site's own
    :class:`vpp.errors.SiteFailedError`, or for the shard's code outside any site a
    :class:`VppError` naming its sites."""
    cause = err.cause
    if isinstance(cause, VppError):
        return cause
    return VppError(f"the shard of sites {site_ids[:10]} raised {type(cause).__name__}: {cause}")


# Ray leaves cluster_resources unannotated, an untyped call to strict mypy.
_cluster_resources = cast("Callable[[], dict[str, float]]", ray.cluster_resources)


def _groups(n: int, options: PoolOptions) -> list[list[int]]:
    if n <= options.one_per_site_max:
        return [[i] for i in range(n)]
    shards = options.shards or max(1, int(_cluster_resources().get("CPU", 1)))
    size = math.ceil(n / min(shards, n))
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
