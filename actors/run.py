"""Run a portfolio job on Ray from a driver (the CLI, the API, a notebook).

``run_portfolio`` joins the Ray cluster at ``address`` (or ``RAY_ADDRESS``; a local Ray is
started when neither is set), starts a coordinator actor, and polls its progress while the
job runs, handing every new iteration to ``on_progress``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayTaskError

from actors.coordinator import Coordinator
from vpp.errors import VppError
from vpp.portfolio import validate_portfolio
from vpp.settings import get_settings

logger = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, **init_kwargs: Any) -> None:
    """Connect to Ray once per process (``address`` or ``RAY_ADDRESS``, else local)."""
    if not ray.is_initialized():
        # Without an address Ray would join the newest cluster `ray start` left on this
        # machine; only RAY_ADDRESS or an explicit address should do that.
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, **init_kwargs)


def start_coordinator(checkpoint_dir: str | None = None) -> Any:
    remote: Any = ray.remote(Coordinator)
    directory = checkpoint_dir or str(get_settings().data_dir / "checkpoints")
    return remote.options(max_restarts=1, max_task_retries=1, max_concurrency=4, num_cpus=0).remote(
        directory
    )


def run_portfolio(
    request: dict[str, Any],
    *,
    job_id: str | None = None,
    address: str | None = None,
    settings: dict[str, Any] | None = None,
    pool_options: dict[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    poll_seconds: float = 0.25,
    coordinator: Any = None,
    shard_class: Any = None,
) -> dict[str, Any]:
    """Schedule a portfolio with ADMM on Ray; the result JSON."""
    validate_portfolio(request)  # field errors before any actor starts
    ensure_ray(address)
    job_id = job_id or uuid.uuid4().hex
    owned = coordinator is None
    coordinator = coordinator or start_coordinator()
    ref = coordinator.run.remote(job_id, request, settings, pool_options, shard_class)
    seen = 0
    try:
        while True:
            ready, _ = ray.wait([ref], timeout=poll_seconds)
            if on_progress is not None:
                history = ray.get(coordinator.progress.remote(job_id)).get("history", [])
                for entry in history[seen:]:
                    on_progress(entry)
                seen = len(history)
            if ready:
                try:
                    return dict(ray.get(ref))
                except RayTaskError as err:  # the coordinator's own VppError, unwrapped
                    if isinstance(err.cause, VppError):
                        raise err.cause from None
                    raise
    finally:
        if owned:
            ray.kill(coordinator)
