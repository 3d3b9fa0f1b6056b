"""The coordinator actor: runs a portfolio job's ADMM iterations over the site actors.

It keeps each job's progress (iteration, residuals, rho, objective) readable while the job
runs (:meth:`Coordinator.progress`, a threaded actor so reads do not wait for the run) and
checkpoints the iteration state to ``<checkpoint_dir>/<job_id>.npz`` after every iteration.
If the coordinator dies, Ray restarts it and retries ``run`` (``max_task_retries``); the
retried run finds the checkpoint and resumes from the last completed iteration.

A finished job leaves its final state under ``<checkpoint_dir>/warm/<portfolio key>.npz``
(key: the site ids and the number of steps); the next job of the same portfolio starts its
iterations from it (warm start) unless ``warm_start=False``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from actors import metrics
from actors.pool import PoolOptions, RayPool
from vpp.admm import AdmmSettings, AdmmState, Progress, initial_rho, solve_portfolio_admm
from vpp.portfolio import PortfolioRequest, resolve_target, validate_portfolio
from vpp.telemetry import span_from

logger = logging.getLogger(__name__)


class Coordinator:
    def __init__(self, checkpoint_dir: str | None = None) -> None:
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self._progress: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def run(
        self,
        job_id: str,
        request: dict[str, Any] | PortfolioRequest,
        settings: dict[str, Any] | None = None,
        pool_options: dict[str, Any] | None = None,
        shard_class: Any = None,
        warm_start: bool = True,
        trace_context: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Schedule the portfolio; the result JSON (see README). Span ``portfolio.job`` is a
        child of ``trace_context`` (:func:`vpp.telemetry.inject` of the caller)."""
        with span_from(trace_context, "portfolio.job", job=job_id):
            portfolio = validate_portfolio(request)  # field errors here, not in the actors
            target = resolve_target(portfolio)
            self._set(job_id, status="running", iteration=0, history=[])
            requests = [portfolio.site_request(i) for i in range(len(portfolio.sites))]
            options = PoolOptions(**(pool_options or {}))
            kwargs = {"shard_class": shard_class} if shard_class is not None else {}
            state = self._resume(job_id)
            if state is None and warm_start:
                state = self._warm(portfolio)
                self._set(job_id, warm=state is not None)
            pool = RayPool([s.id for s in portfolio.sites], requests, options, **kwargs)
            try:
                # where the shards run (operators and the multi-node test read it)
                self._set(job_id, shard_nodes=pool.node_ids())
                result = solve_portfolio_admm(
                    portfolio,
                    pool,
                    target,
                    price_scale(portfolio),
                    AdmmSettings(**(settings or {})),
                    state=state,
                    on_progress=lambda p: self._record(job_id, p),
                    checkpoint=lambda s: self._checkpoint(job_id, s),
                )
            except Exception as err:
                self._set(job_id, status="failed", error=str(err))
                raise
            finally:
                pool.shutdown()
            self._set(job_id, status="finished")
            self._drop_checkpoint(job_id)
            warm = self._warm_path(portfolio)
            if warm is not None and result.admm_state is not None:
                warm.parent.mkdir(parents=True, exist_ok=True)
                result.admm_state.save(warm)
            body = result.to_json()
            body["portfolio"]["warm-start"] = bool(self._progress[job_id].get("warm"))
            return body

    def progress(self, job_id: str) -> dict[str, Any]:
        """Status, iteration, the residual history so far and ``shard_nodes`` (the Ray node id
        of each site shard, once they are up)."""
        with self._lock:
            entry = self._progress.get(job_id, {"status": "unknown"})
            return {**entry, "history": list(entry.get("history", []))}

    # -- internals -------------------------------------------------------------------
    def _set(self, job_id: str, **fields: Any) -> None:
        with self._lock:
            self._progress.setdefault(job_id, {}).update(fields)

    def _record(self, job_id: str, progress: Progress) -> None:
        metrics.admm_iteration(progress.primal_residual, progress.dual_residual)
        with self._lock:
            entry = self._progress.setdefault(job_id, {"history": []})
            entry["iteration"] = progress.iteration
            entry.setdefault("history", []).append(asdict(progress))

    def _path(self, job_id: str) -> Path | None:
        return self.checkpoint_dir / f"{job_id}.npz" if self.checkpoint_dir else None

    def _checkpoint(self, job_id: str, state: AdmmState) -> None:
        path = self._path(job_id)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            state.save(path)

    def _resume(self, job_id: str) -> AdmmState | None:
        path = self._path(job_id)
        if path is None or not path.exists():
            return None
        state = AdmmState.load(path)
        logger.info("job %s resumes from its checkpoint at iteration %d", job_id, state.iteration)
        return state

    def _warm_path(self, portfolio: PortfolioRequest) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        key = hashlib.sha256(
            json.dumps([[s.id for s in portfolio.sites], portfolio.horizon.steps]).encode()
        ).hexdigest()[:20]
        return self.checkpoint_dir / "warm" / f"{key}.npz"

    def _warm(self, portfolio: PortfolioRequest) -> AdmmState | None:
        """The last finished state of the same portfolio, restarted at iteration 0."""
        path = self._warm_path(portfolio)
        if path is None or not path.exists():
            return None
        state = AdmmState.load(path)
        if state.x.shape != (len(portfolio.sites), portfolio.horizon.steps):
            return None
        logger.info("warm start from %s", path)
        # start from yesterday's powers and prices, not its rho: residual balancing grew it
        # for yesterday's end game, which slows today's start (measured: 4x the iterations)
        rho = initial_rho(price_scale(portfolio), state.x)
        return AdmmState(0, rho, state.x, state.zbar, state.u * state.rho / rho)

    def _drop_checkpoint(self, job_id: str) -> None:
        path = self._path(job_id)
        if path is not None:
            path.unlink(missing_ok=True)


def price_scale(portfolio: PortfolioRequest) -> float:
    """Typical EUR per kW and step of the portfolio's consumption price (for the first rho)."""
    horizon = portfolio.horizon
    price = portfolio.flex_context.consumption_price
    if price is None:
        price = next(
            (
                s.flex_context.consumption_price
                for s in portfolio.sites
                if s.flex_context and s.flex_context.consumption_price
            ),
            None,
        )
    if price is None:
        return 0.1 * horizon.dt
    values = price.resolve(horizon, "flex-context.consumption-price", 0.0)
    return float(np.mean(np.abs(np.nan_to_num(values)))) * horizon.dt
