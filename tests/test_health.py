"""Liveness and readiness (``/api/v1/health``, ``/api/v1/ready``) of the real app.

The expected bodies are written out here from the route's contract; a failing database is
made real (its directory removed, or its server address pointing at a port nothing listens
on) rather than simulated inside the app.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from db_fixtures import fresh_database
from fastapi.testclient import TestClient

from api.app import create_app
from store import make_engine, session_factory

pytest_plugins = ["db_fixtures"]

READY = {"status": "ready", "checks": {"database": "ok", "ray": "not used", "runner": "ok"}}


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def _client(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def test_liveness_and_readiness_with_a_live_database(database_url: str) -> None:
    app = create_app(database_url)
    with _client(app) as http:
        live = http.get("/api/v1/health")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        ready = http.get("/api/v1/ready")
        assert (ready.status_code, ready.json()) == (200, READY)
    app.state.sessions.kw["bind"].dispose()


def _assert_not_ready(response: Any, failing: list[str]) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == 503
    assert body["instance"] == "/api/v1/ready"
    assert body["failing"] == failing
    for name in failing:
        assert name in body["detail"]
        assert body["checks"][name].startswith("failed: ")
    return body


def test_not_ready_when_the_sqlite_file_is_gone(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    app = create_app(f"sqlite:///{directory / 'vpp.db'}")
    with _client(app) as http:
        assert http.get("/api/v1/ready").status_code == 200
        app.state.sessions.kw["bind"].dispose()  # no pooled connection may hide the loss
        shutil.rmtree(directory)
        body = _assert_not_ready(http.get("/api/v1/ready"), ["database"])
        assert body["checks"] == {
            "database": "failed: OperationalError",
            "ray": "not used",
            "runner": "ok",
        }
        # liveness does not depend on the database
        assert http.get("/api/v1/health").json() == {"status": "ok"}


def test_not_ready_when_the_postgresql_server_is_unreachable(tmp_path: Path) -> None:
    with fresh_database("postgresql", tmp_path) as url:
        app = create_app(url)
        live_engine = app.state.sessions.kw["bind"]
        live_engine.dispose()
    # the server the app talks to goes away: same database URL, a port nothing listens on
    gone = live_engine.url.set(port=_closed_port())
    engine = make_engine(gone, connect_args={"connect_timeout": 2})
    app.state.sessions = session_factory(engine)
    with _client(app) as http:
        body = _assert_not_ready(http.get("/api/v1/ready"), ["database"])
        assert body["checks"]["database"] == "failed: OperationalError"
        assert "127.0.0.1" not in str(body)  # the reason names the error kind, not the server
    engine.dispose()


def test_ready_with_the_real_job_runner_and_not_ready_once_it_is_gone(
    ray_session: None, tmp_path: Path
) -> None:
    import ray

    from actors.jobs import get_runner
    from api.serve import RayDispatcher

    url = f"sqlite:///{tmp_path / 'vpp.db'}"
    runner = get_runner(url)
    # a runner still starting is "not ready" (its first ping waits for the actor process):
    # wait until it is up, then readiness must say so
    ray.get(runner.ping.remote(), timeout=120)
    app = create_app(url, RayDispatcher(runner))
    try:
        with _client(app) as http:
            ready = http.get("/api/v1/ready")
            assert (ready.status_code, ready.json()) == (
                200,
                {"status": "ready", "checks": {"database": "ok", "ray": "ok", "runner": "ok"}},
            )
            ray.kill(runner, no_restart=True)
            body = _assert_not_ready(http.get("/api/v1/ready"), ["runner"])
            assert body["checks"]["database"] == "ok"
            assert body["checks"]["ray"] == "ok"
    finally:
        ray.kill(runner, no_restart=True)
        app.state.sessions.kw["bind"].dispose()


class _SilentRunner:
    """A dispatcher whose runner does not answer its ping (or does, with ``answers``)."""

    def __init__(self, answers: bool = False) -> None:
        self.answers = answers

    def kick(self) -> None:
        pass

    def readiness(self) -> dict[str, str]:
        return {"ray": "ok", "runner": "ok" if self.answers else "failed: no answer within 2 s"}


def test_serve_health_check_fails_with_the_database_and_names_it(tmp_path: Path) -> None:
    """Issue 12: the deployment's ``check_health`` (Serve replaces a replica that fails it)
    runs the readiness checks: it passes on a live database and raises naming the check
    once the database is gone."""
    import api.serve as serve_mod

    directory = tmp_path / "data"
    app = create_app(f"sqlite:///{directory / 'vpp.db'}")
    replica = serve_mod.VppApi.func_or_class.__new__(serve_mod.VppApi.func_or_class)
    replica.check_health()  # no app yet (Serve checks once before it sets it): nothing to check
    replica._asgi_app = app  # what Serve's ingress wrapper sets
    replica.check_health()  # healthy: returns
    # a runner that does not answer (starting, restarting) fails only checks in a row
    app.state.dispatcher = _SilentRunner()
    for _ in range(serve_mod.RUNNER_CHECKS - 1):
        replica.check_health()
    with pytest.raises(serve_mod.UnhealthyError, match=r"^runner: failed: no answer"):
        replica.check_health()
    app.state.dispatcher = _SilentRunner(answers=True)
    replica.check_health()  # back: the count starts again
    app.state.sessions.kw["bind"].dispose()
    shutil.rmtree(directory)
    with pytest.raises(serve_mod.UnhealthyError, match=r"^database: failed: OperationalError"):
        replica.check_health()
