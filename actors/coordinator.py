"""The coordinator actor: runs a portfolio job's ADMM iterations over the site actors.

It keeps each job's progress (iteration, residuals, rho, objective) readable while the job
runs (:meth:`Coordinator.progress`, a threaded actor so reads do not wait for the run) and
checkpoints the iteration state after every iteration, under the job id, to a
:class:`CheckpointStore`: the database (API jobs: ``database_url``, table
``admm_checkpoints``, so a coordinator restarted on any node finds it) or a directory
(``<checkpoint_dir>/<job_id>.npz``; the ``vpp portfolio`` CLI). If the coordinator dies, Ray
restarts it and retries ``run`` (``max_task_retries``); the retried run finds the checkpoint
and resumes from the last completed iteration.

A finished job leaves its final state under the key ``warm/<portfolio key>`` (key: the
portfolio's structure, see :func:`warm_key`); the next job of the same portfolio starts its
iterations from it (warm start) unless ``warm_start=False``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from actors import metrics
from actors.pool import PoolOptions, RayPool
from vpp.admm import AdmmState, Progress, initial_rho, settings_for, solve_portfolio_admm
from vpp.portfolio import PortfolioRequest, price_scale, resolve_target, validate_portfolio
from vpp.telemetry import span_from

__all__ = ["CheckpointStore", "Coordinator", "DatabaseStore", "DirectoryStore", "warm_key"]


logger = logging.getLogger(__name__)


class CheckpointStore(Protocol):
    """Where the coordinator keeps ADMM states (``AdmmState.to_bytes()``) by key: a job id,
    or ``warm/<portfolio key>``. A save replaces the key's state atomically: a crash leaves
    the previous state or the new one, never part of one."""

    def save(self, key: str, data: bytes) -> None: ...

    def load(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...


class DirectoryStore:
    """States as files ``<directory>/<key>.npz`` (written to a temporary file, then renamed)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def save(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # per-process temporary name: two coordinators may write the same warm key at once
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def load(self, key: str) -> bytes | None:
        path = self.path(key)
        return path.read_bytes() if path.exists() else None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


class DatabaseStore:
    """States in the database's ``admm_checkpoints`` table, one transaction per call. The
    engine is made on first use, in the process that uses it (the coordinator actor's):
    engines and their connections do not survive pickling to another process."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._sessions: Any = None
        self._lock = threading.Lock()

    def _factory(self) -> Any:
        with self._lock:
            if self._sessions is None:
                from store import make_engine, session_factory

                self._sessions = session_factory(make_engine(self.database_url))
            return self._sessions

    def save(self, key: str, data: bytes) -> None:
        from store import checkpoints

        with self._factory().begin() as session:
            checkpoints.save(session, key, data)

    def load(self, key: str) -> bytes | None:
        from store import checkpoints

        with self._factory().begin() as session:
            return checkpoints.load(session, key)

    def delete(self, key: str) -> None:
        from store import checkpoints

        with self._factory().begin() as session:
            checkpoints.delete(session, key)


class Coordinator:
    def __init__(self, checkpoint_dir: str | None = None, database_url: str | None = None) -> None:
        """Checkpoints go to the database at ``database_url`` if given, else under
        ``checkpoint_dir``; with neither the coordinator keeps none (no resume, no warm start)."""
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.store: CheckpointStore | None = None
        if database_url:
            self.store = DatabaseStore(database_url)
        elif self.checkpoint_dir is not None:
            self.store = DirectoryStore(self.checkpoint_dir)
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
            # a parsed request was validated by the caller (run_portfolio); JSON is checked
            # here, so that field errors come from here and not from the site actors
            portfolio = request if isinstance(request, PortfolioRequest) else (
                validate_portfolio(request)
            )
            target = resolve_target(portfolio)
            cfg = settings_for(portfolio, settings)
            self._set(job_id, status="running", phase="starting", iteration=0, history=[],
                      max_iterations=cfg.max_iterations)
            requests = [portfolio.site_request(i) for i in range(len(portfolio.sites))]
            options = PoolOptions(**(pool_options or {}))
            kwargs = {"shard_class": shard_class} if shard_class is not None else {}
            state = self._resume(job_id)
            if state is None and warm_start:
                state = self._warm(portfolio)
                self._set(job_id, warm=state is not None)
            pool = RayPool([s.id for s in portfolio.sites], requests, options, **kwargs)
            self._set(job_id, phase="building")  # the shards build their site models
            try:
                # where the shards run (operators and the multi-node test read it)
                self._set(job_id, shard_nodes=pool.node_ids())
                result = solve_portfolio_admm(
                    portfolio,
                    pool,
                    target,
                    price_scale(portfolio),
                    cfg,
                    state=state,
                    on_progress=lambda p: self._record(job_id, p),
                    checkpoint=lambda s: self._checkpoint(job_id, s),
                )
            except Exception as err:
                self._set(job_id, status="failed", error=str(err))
                # a failed (or cancelled) job is final: nothing will resume it; only a
                # coordinator that dies mid-run leaves its checkpoint for the retry
                self._drop_checkpoint(job_id)
                raise
            else:
                self._set(job_id, phase="finalising")
            finally:
                pool.shutdown()
            self._set(job_id, status="finished")
            self._drop_checkpoint(job_id)
            if self.store is not None and result.admm_state is not None:
                self.store.save(warm_key(portfolio), result.admm_state.to_bytes())
            body = result.to_json()
            body["portfolio"]["warm-start"] = bool(self._progress[job_id].get("warm"))
            return body

    def progress(self, job_id: str) -> dict[str, Any]:
        """Status, ``phase`` (``starting``, ``building``, ``iterating``, ``finalising``),
        ``max_iterations`` (the cap), iteration, the residual history so far and
        ``shard_nodes`` (the Ray node id of each site shard, once they are up)."""
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
            entry["phase"] = "iterating"
            entry.setdefault("history", []).append(asdict(progress))

    def _checkpoint(self, job_id: str, state: AdmmState) -> None:
        if self.store is not None:
            self.store.save(job_id, state.to_bytes())

    def _resume(self, job_id: str) -> AdmmState | None:
        data = self.store.load(job_id) if self.store is not None else None
        if data is None:
            return None
        state = AdmmState.from_bytes(data)
        logger.info("job %s resumes from its checkpoint at iteration %d", job_id, state.iteration)
        return state

    def _warm(self, portfolio: PortfolioRequest) -> AdmmState | None:
        """The last finished state of the same portfolio, restarted at iteration 0."""
        key = warm_key(portfolio)
        data = self.store.load(key) if self.store is not None else None
        if data is None:
            return None
        state = AdmmState.from_bytes(data)
        if state.x.shape != (len(portfolio.sites), portfolio.horizon.steps):
            return None
        logger.info("warm start from %s", key)
        # start from yesterday's powers and prices, not its rho: residual balancing grew it
        # for yesterday's end game, which slows today's start (measured: 4x the iterations)
        rho = initial_rho(price_scale(portfolio), state.x)
        return AdmmState(0, rho, state.x, state.zbar, state.u * state.rho / rho)

    def _drop_checkpoint(self, job_id: str) -> None:
        if self.store is not None:
            self.store.delete(job_id)


def warm_key(portfolio: PortfolioRequest) -> str:
    """The warm-start key of a portfolio: a hash of its structure (steps, resolution, target
    kind, and per site its id and its devices' names and types), so two portfolios that
    share site ids but not devices never share a warm state. Values (prices, SoCs, loads)
    are left out on purpose: a re-plan of the same portfolio with new ones is what a warm
    start is for, and the state only seeds the iterations (any seed converges)."""
    target = portfolio.target.type if portfolio.target is not None else None
    sites = [[s.id, [[d.label, d.type] for d in s.flex_model]] for s in portfolio.sites]
    structure = [portfolio.horizon.steps, portfolio.resolution.total_seconds(), target, sites]
    digest = hashlib.sha256(json.dumps(structure).encode()).hexdigest()[:20]
    return f"warm/{digest}"
