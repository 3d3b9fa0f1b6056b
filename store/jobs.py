"""A job's progress while it runs, stored where every API replica can read it.

Running jobs and storing their outcomes is the job service's work
(:mod:`actors.job_service`); this module only writes what a running job reports: its phase and
its ADMM iterations (:class:`ProgressWriter`), and says when it was cancelled.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from vpp.errors import VppError

__all__ = ["PHASES", "JobCancelledError", "ProgressWriter"]

logger = logging.getLogger(__name__)


class JobCancelledError(VppError):
    """The job was cancelled while it ran."""

    http_status = 409
    title = "Job cancelled"


_PROGRESS_KEYS = (
    "iteration",
    "primal_residual",
    "dual_residual",
    "rho",
    "objective",
    "violation",
    "lower_bound",
    "certified_gap",
    "max_iterations",
)
PHASES = ("queued", "starting", "building", "iterating", "finalising")
"""A portfolio job's phases, in order: waiting for a runner; starting its actors; building
the site models; ADMM iterations (residuals, certified gap); the final schedules."""


class ProgressWriter:
    """Stores a portfolio job's progress: its ``phase`` (:data:`PHASES`), the server's
    iteration cap (``max-iterations``) and each ADMM iteration's residuals, bound and gap
    (kebab-case keys). Called with an iteration's entry it stores that entry (phase
    ``iterating``); :meth:`phase` moves to another phase keeping the last iteration's
    figures. Either raises :class:`JobCancelledError` once the job was cancelled."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.current: dict[str, Any] = {}

    def __call__(self, entry: dict[str, Any]) -> None:
        self._store("iterating", entry)

    def phase(self, name: str, fields: dict[str, Any] | None = None) -> None:
        if name not in PHASES:
            raise ValueError(f"unknown job phase {name!r}")
        self._store(name, fields or {})

    def _store(self, phase: str, entry: dict[str, Any]) -> None:
        fields = {key.replace("_", "-"): entry[key] for key in _PROGRESS_KEYS if key in entry}
        with self.sessions.begin() as session:
            job = repo.get_job(session, self.job_id)
            if job.status == "cancelled":
                raise JobCancelledError(f"job {self.job_id} was cancelled")
            self.current = {"phase": phase, **{k: v for k, v in self.current.items()
                                               if k != "phase"}, **fields}
            repo.set_job_status(session, self.job_id, "running", progress=dict(self.current))
