"""Liveness and readiness, for load balancers and orchestrators (no token needed).

* ``GET /api/v1/health``: liveness, ``{"status": "ok"}`` whenever the process answers.
* ``GET /api/v1/ready``: readiness, 200 ``{"status": "ready", "checks": {...}}`` when every
  check passes, else 503 (problem+json) naming each failing check. The checks:

  - ``database``: ``SELECT 1`` through the app's sessions answers within
    :data:`CHECK_TIMEOUT_S`;
  - ``ray`` and ``runner``: what the app's dispatcher runs jobs on (see
    ``Dispatcher.readiness`` in :mod:`api.app`): ``ok``, ``not used`` (no Ray: the inline
    dispatcher of tests and embedded use) or ``failed: <why>``.

Failure reasons name the kind of error only; the full error goes to the log (the route is
public, and driver messages carry host names).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from api import problems, schemas
from api.deps import KnownQuery

__all__ = [
    "CHECK_TIMEOUT_S",
    "PASSING",
    "database_check",
    "health",
    "ready",
    "router",
]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["operations"], dependencies=[KnownQuery])

CHECK_TIMEOUT_S = 3.0
"""A check that has not answered by then fails (probes must answer, never hang)."""

PASSING = frozenset({"ok", "not used"})

# Two threads bound what stuck database connects can hold; a check queued behind them times
# out like a stuck one.
_checks = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ready-check")


@router.get("/health", response_model=schemas.Health)
def health() -> dict[str, str]:
    """Liveness: the API answers."""
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=schemas.Ready,
    responses=problems.errors(e503="a check failed; `checks` and `failing` name it"),
)
def ready(request: Request) -> Any:
    """Readiness: the database answers, Ray is connected and the job runner is alive."""
    checks = {"database": database_check(request.app.state.sessions)}
    checks |= request.app.state.dispatcher.readiness()
    failing = [name for name, state in checks.items() if state not in PASSING]
    if not failing:
        return {"status": "ready", "checks": checks}
    return problems.problem(
        503,
        "Not ready",
        "failing checks: " + ", ".join(failing),
        request,
        checks=checks,
        failing=failing,
    )


def database_check(sessions: Any) -> str:
    """``ok`` if ``SELECT 1`` answers within :data:`CHECK_TIMEOUT_S`, else ``failed: ...``."""
    future = _checks.submit(_select_one, sessions)
    try:
        future.result(timeout=CHECK_TIMEOUT_S)
    except FutureTimeout:
        return f"failed: no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # any driver error means the same thing here: not reachable
        logger.warning("readiness: database check failed: %s", exc)
        return f"failed: {type(getattr(exc, 'orig', None) or exc).__name__}"
    return "ok"


def _select_one(sessions: Any) -> None:
    with sessions() as session:
        session.execute(text("SELECT 1"))

