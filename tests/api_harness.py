"""The FastAPI app in this process (no Ray) on a fresh database, for the API tests that
check answers rather than scheduling: error mapping, account isolation, limits.

``harness(backend, directory)`` yields an :class:`ApiHarness` on SQLite or PostgreSQL
(``db_fixtures.fresh_database``); jobs are queued but not run (no dispatcher thread).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db_fixtures import fresh_database
from fastapi.testclient import TestClient

from api.app import create_app
from store import repository as repo

PROBLEM = "application/problem+json"


class NoDispatcher:
    """Queued jobs stay queued: these tests look at what is accepted, not at results."""

    def kick(self) -> None:
        pass

    def readiness(self) -> dict[str, str]:
        return {"ray": "not used", "runner": "not used"}


@dataclass
class ApiHarness:
    http: TestClient
    admin: dict[str, str]
    url: str
    app: Any

    def account(self, name: str, role: str = "admin", kind: str = "aggregator") -> dict[str, str]:
        """A new client account of the platform with one user of ``role``: its headers."""
        account = self.http.post(
            "/api/v1/accounts", json={"name": name, "kind": kind}, headers=self.admin
        )
        assert account.status_code == 201, account.text
        user = self.http.post(
            f"/api/v1/accounts/{account.json()['id']}/users",
            json={"name": f"{name}-user", "role": role},
            headers=self.admin,
        )
        assert user.status_code == 201, user.text
        token = self.http.post(
            f"/api/v1/users/{user.json()['id']}/tokens", json={"name": "t"}, headers=self.admin
        )
        assert token.status_code == 201, token.text
        return {"Authorization": f"Bearer {token.json()['token']}"}


@contextmanager
def harness(backend: str, directory: Path) -> Iterator[ApiHarness]:
    with fresh_database(backend, directory) as url:
        app = create_app(url, NoDispatcher())
        with app.state.sessions.begin() as session:
            _, token = repo.ensure_admin(session)
        assert token is not None
        try:
            with TestClient(app, raise_server_exceptions=False) as http:
                yield ApiHarness(http, {"Authorization": f"Bearer {token}"}, url, app)
        finally:
            app.state.uftp_worker.stop()
            app.state.sessions.kw["bind"].dispose()


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """``response`` is a problem+json of ``status`` (naming ``field`` when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body
