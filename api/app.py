"""The FastAPI application: routers, error handling, tracing, state.

``create_app`` is plain FastAPI (tests can use it without Ray); :mod:`api.serve` wraps it in
a Ray Serve deployment for ``vpp serve``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response

from api import problems
from api.routes import accounts, charts, jobs, resources
from store import make_engine, session_factory, upgrade
from store.jobs import PortfolioRunner, execute_job
from vpp.telemetry import tracer

logger = logging.getLogger(__name__)


class Dispatcher(Protocol):
    def kick(self) -> None:
        """A job was queued."""


class InlineDispatcher:
    """Runs queued jobs in a thread of this process (tests, no Ray): single-site jobs, and
    portfolio jobs when given a ``portfolio_runner`` (see :func:`store.jobs.execute_job`)."""

    def __init__(self, sessions: Any, portfolio_runner: PortfolioRunner | None = None) -> None:
        self.sessions = sessions
        self.portfolio_runner = portfolio_runner
        self._lock = threading.Lock()

    def kick(self) -> None:
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        from store import repository as repo

        with self._lock:
            while True:
                with self.sessions.begin() as session:
                    job = repo.claim_next_job(session)
                    job_id = job.id if job is not None else None
                if job_id is None:
                    return
                execute_job(self.sessions, job_id, self.portfolio_runner)


def create_app(database_url: str, dispatcher: Dispatcher | None = None) -> FastAPI:
    engine = make_engine(database_url)
    upgrade(engine)
    app = FastAPI(
        title="vpp",
        version="0.1.0",
        description="Virtual power plant scheduling: sites, portfolios, scheduling jobs.",
        docs_url="/docs",
    )
    app.state.sessions = session_factory(engine)
    app.state.dispatcher = dispatcher or InlineDispatcher(app.state.sessions)
    problems.install(app)
    app.include_router(jobs.router)
    app.include_router(resources.router)
    app.include_router(accounts.router)
    app.include_router(charts.router)
    spans = tracer(__name__)

    @app.middleware("http")
    async def trace_requests(request: Request, call_next: Any) -> Response:
        with spans.start_as_current_span(f"{request.method} {request.url.path}") as span:
            response: Response = await call_next(request)
            span.set_attribute("http.status_code", response.status_code)
            return response

    @app.get("/api/v1/health", tags=["operations"])
    def health() -> dict[str, str]:
        """Liveness: the API answers."""
        return {"status": "ok"}

    return app
