"""The FastAPI application: routers, error handling, tracing, state.

``create_app`` is plain FastAPI (tests can use it without Ray); :mod:`api.serve` wraps it in
a Ray Serve deployment for ``vpp serve``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response
from opentelemetry import trace

from actors.job_service import PortfolioRunner, execute_job
from api import docs, problems
from api.routes import accounts, charts, health, jobs, markets, reports, resources
from api.routes import annotations as annotation_routes
from api.routes import forecasting as forecasting_routes
from api.routes import gopacs as gopacs_routes
from api.routes import uftp as uftp_routes
from store import make_engine, session_factory, upgrade
from vpp.telemetry import span_from

__all__ = ["Dispatcher", "InlineDispatcher", "create_app"]


logger = logging.getLogger(__name__)


class Dispatcher(Protocol):
    def kick(self) -> None:
        """A job was queued."""

    def readiness(self) -> dict[str, str]:
        """The ``ray`` and ``runner`` checks of ``/api/v1/ready``: ``ok``, ``not used`` or
        ``failed: <why>`` each."""


class InlineDispatcher:
    """Runs queued jobs in a thread of this process (tests, no Ray): single-site jobs, and
    portfolio jobs when given a ``portfolio_runner``
    (see :func:`actors.job_service.execute_job`)."""

    def __init__(self, sessions: Any, portfolio_runner: PortfolioRunner | None = None) -> None:
        self.sessions = sessions
        self.portfolio_runner = portfolio_runner
        self._lock = threading.Lock()

    def kick(self) -> None:
        threading.Thread(target=self._drain, daemon=True).start()

    def readiness(self) -> dict[str, str]:
        # jobs run in threads of this process: no Ray, and the runner lives while we answer
        return {"ray": "not used", "runner": "ok"}

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
        # our own /docs and /redoc (api/docs.py): vendored assets, strict CSP, no CDN
        docs_url=None,
        redoc_url=None,
    )
    app.state.sessions = session_factory(engine)
    app.state.dispatcher = dispatcher or InlineDispatcher(app.state.sessions)
    problems.install(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(resources.router)
    app.include_router(annotation_routes.router)
    app.include_router(accounts.router)
    app.include_router(charts.router)
    app.include_router(reports.router)
    app.include_router(markets.router)
    app.include_router(forecasting_routes.router)
    app.include_router(docs.router)
    app.include_router(gopacs_routes.router)
    uftp_routes.install(app)  # the UFTP endpoint, its admin API and its worker thread
    problems.document(app)  # the spec: bearer scheme, problem+json error responses

    @app.middleware("http")
    async def trace_requests(request: Request, call_next: Any) -> Response:
        """The request's span: FastAPI's own (recent FastAPI makes a server span, from the
        caller's W3C ``traceparent`` header), else one made here the same way."""
        if trace.get_current_span().is_recording():
            response: Response = await call_next(request)
            return response
        with span_from(request.headers, f"{request.method} {request.url.path}") as span:
            response = await call_next(request)
            span.set_attribute("http.status_code", response.status_code)
            return response

    return app
