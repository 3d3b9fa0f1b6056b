"""The REST API on a real Ray Serve deployment, over HTTP on 127.0.0.1, on SQLite and on
PostgreSQL (one Serve deployment per backend, for the whole session).

Results are compared with the scheduler run in this process (``vpp.site.schedule``), an
independent path from the API's job runner actor and database.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import wait_until_healthy
from db_fixtures import fresh_database
from sqlalchemy import create_engine, text

from vpp.site import schedule

pytestmark = pytest.mark.usefixtures("ray_session")
pytest_plugins = ["db_fixtures"]

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "battery.json"
ADMIN_TOKEN = "vpp_test-admin-token-not-a-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    """An API deployment: its base URL, database URL and an admin client."""

    def __init__(self, base: str, database_url: str) -> None:
        self.base = base
        self.database_url = database_url
        self.clients: list[httpx.Client] = []
        self.admin = self.client(ADMIN_TOKEN)

    def client(self, token: str | None) -> httpx.Client:
        """A client with ``token``, closed with the deployment (:meth:`close`)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.base, headers=headers, timeout=60)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def wait(self, client: httpx.Client, job: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = client.get(f"/api/v1/scheduling-job/{job}").json()
            if body["status"] in ("finished", "failed", "cancelled"):
                return dict(body)
            time.sleep(0.05)
        raise AssertionError(f"job {job} did not end within {timeout} s")


def _deploy(database_url: str, port: int, data_dir: Path) -> None:
    import os

    from ray import serve

    from api.serve import deploy
    from store import make_engine, session_factory, upgrade
    from store import repository as repo
    from vpp.settings import get_settings

    os.environ["VPP_DATABASE_URL"] = database_url
    os.environ["VPP_DATA_DIR"] = str(data_dir)
    get_settings.cache_clear()
    engine = make_engine(database_url)
    upgrade(engine)
    with session_factory(engine).begin() as session:
        repo.ensure_admin(session, token=ADMIN_TOKEN)
    engine.dispose()
    serve.delete("vpp", _blocking=True) if _has_app() else None
    deploy("127.0.0.1", port)


def _has_app() -> bool:
    from ray import serve

    try:
        return "vpp" in serve.status().applications
    except Exception:
        return False


@pytest.fixture(scope="session")
def serve_port() -> Iterator[int]:
    from ray import serve

    port = _free_port()
    yield port
    serve.shutdown()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, serve_port: int, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp(f"api-{request.param}")
    with fresh_database(request.param, directory) as url:
        _deploy(url, serve_port, directory)
        base = f"http://127.0.0.1:{serve_port}"
        wait_until_healthy(base, 60)
        deployment = Api(base, url)
        yield deployment
        deployment.close()
        _stop_runner(url)


def _stop_runner(url: str) -> None:
    import ray

    from actors.jobs import NAMESPACE, runner_name

    with contextlib.suppress(ValueError):  # no runner: nothing to stop
        ray.kill(ray.get_actor(runner_name(url), namespace=NAMESPACE), no_restart=True)


def _battery() -> dict[str, Any]:
    return dict(json.loads(EXAMPLE.read_text()))


def _client_account(api: Api, name: str, role: str = "operator") -> httpx.Client:
    account = api.admin.post("/api/v1/accounts", json={"name": name, "kind": "aggregator"})
    assert account.status_code == 201, account.text
    user = api.admin.post(f"/api/v1/accounts/{account.json()['id']}/users",
                          json={"name": f"{name}-user", "role": role})
    assert user.status_code == 201, user.text
    token = api.admin.post(f"/api/v1/users/{user.json()['id']}/tokens", json={"name": "t"})
    assert token.status_code == 201, token.text
    return api.client(token.json()["token"])


def test_submit_poll_result_equals_in_process(api: Api) -> None:
    request = _battery()
    response = api.admin.post("/api/v1/scheduling-job/storage", json=request)
    assert response.status_code == 202
    job = response.json()["job"]
    assert response.json()["status"] == "queued"
    assert response.headers["location"] == f"/api/v1/scheduling-job/{job}"
    body = api.wait(api.admin, job)
    assert body["status"] == "finished", body
    expected = schedule(copy.deepcopy(request))
    got = body["result"]
    assert got["cost"]["value"] == pytest.approx(expected["cost"]["value"], rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(got["site"]["power"]["values"],
                               expected["site"]["power"]["values"], atol=1e-6)
    np.testing.assert_allclose(got["devices"][0]["soc"]["values"],
                               expected["devices"][0]["soc"]["values"], atol=1e-6)
    engine = create_engine(api.database_url)
    with engine.connect() as connection:  # the job's schedules are stored too
        rows = connection.execute(
            text("SELECT device_name, \"values\" FROM schedules WHERE job_id = :j"), {"j": job}
        ).all()
    engine.dispose()
    stored = {name: json.loads(v) if isinstance(v, str) else v for name, v in rows}
    np.testing.assert_allclose(stored[None], expected["site"]["power"]["values"], atol=1e-6)
    np.testing.assert_allclose(stored["battery"], expected["devices"][0]["power"]["values"],
                               atol=1e-6)


def test_delete_semantics(api: Api) -> None:
    assert api.admin.delete("/api/v1/scheduling-job/no-such-job").status_code == 404
    finished = api.admin.post("/api/v1/scheduling-job/storage", json=_battery()).json()["job"]
    assert api.wait(api.admin, finished)["status"] == "finished"
    conflict = api.admin.delete(f"/api/v1/scheduling-job/{finished}")
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    # a portfolio job takes seconds: cancel it before it is computed
    portfolio = json.loads((EXAMPLE.parent / "portfolio.json").read_text())
    job = api.admin.post("/api/v1/scheduling-job/portfolio", json=portfolio).json()["job"]
    assert api.admin.delete(f"/api/v1/scheduling-job/{job}").status_code == 204
    assert api.admin.get(f"/api/v1/scheduling-job/{job}").json()["status"] == "cancelled"
    time.sleep(2)  # the runner notices at its next iteration; it must not overwrite it
    body = api.admin.get(f"/api/v1/scheduling-job/{job}").json()
    assert body["status"] == "cancelled" and "result" not in body


def test_accounts_see_only_their_own(api: Api) -> None:
    suffix = hashlib.sha256(api.database_url.encode()).hexdigest()[:6]
    alice = _client_account(api, f"alice-{suffix}")
    bob = _client_account(api, f"bob-{suffix}")
    viewer = _client_account(api, f"carol-{suffix}", role="viewer")
    site = alice.post("/api/v1/sites", json={
        "name": "home", "flex-model": [{"name": "battery", "soc-at-start": "1 kWh",
                                        "soc-max": "5 kWh", "power-capacity": "2 kW"}],
        "flex-context": {"consumption-price": "50 EUR/MWh"}})
    assert site.status_code == 201, site.text
    job = alice.post("/api/v1/scheduling-job/storage", json=_battery()).json()["job"]
    for path in (f"/api/v1/sites/{site.json()['id']}", f"/api/v1/scheduling-job/{job}"):
        assert alice.get(path).status_code == 200
        denied = bob.get(path)
        assert denied.status_code == 404  # not 403: others' things do not exist for bob
        assert denied.headers["content-type"].startswith("application/problem+json")
        assert api.admin.get(path).status_code == 200  # the consultancy sees its clients
    assert site.json()["id"] not in [s["id"] for s in bob.get("/api/v1/sites").json()]
    assert viewer.post("/api/v1/scheduling-job/storage", json=_battery()).status_code == 403
    assert api.client(None).get("/api/v1/sites").status_code == 401
    assert api.client("vpp_not-a-token").get("/api/v1/sites").status_code == 401
    assert bob.post("/api/v1/accounts", json={"name": f"x-{suffix}"}).status_code == 403


def test_tokens_are_stored_hashed(api: Api) -> None:
    engine = create_engine(api.database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_tokens")).all()
    engine.dispose()
    dumped = json.dumps([list(map(str, row)) for row in rows])
    assert ADMIN_TOKEN not in dumped
    assert hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest() in dumped


@pytest.mark.parametrize(("change", "field"), [
    (lambda r: r["flex-model"].pop("soc-max"), "flex-model[0].soc-max"),
    (lambda r: r["flex-model"].update({"soc-max": "40 kW"}), "flex-model[0].soc-max"),
    (lambda r: r.update({"resolution": "PT7M"}), "resolution"),
    (lambda r: r["flex-context"]["consumption-price"]["values"].pop(),
     "flex-context.consumption-price"),
    (lambda r: r["flex-model"].update({"power-capacity": "-3 kW"}), "flex-model[0].power-capacity"),
])
def test_bad_input_is_problem_json(api: Api, change: Any, field: str) -> None:
    request = _battery()
    change(request)
    response = api.admin.post("/api/v1/scheduling-job/storage", json=request)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in response.json()["errors"]]


def test_malformed_json_and_unknown_job(api: Api) -> None:
    broken = api.admin.post("/api/v1/scheduling-job/storage", content=b"{not json",
                            headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert broken.headers["content-type"].startswith("application/problem+json")
    missing = api.admin.get("/api/v1/scheduling-job/does-not-exist")
    assert missing.status_code == 404 and missing.json()["status"] == 404


def test_infeasible_job_fails_with_a_reason(api: Api) -> None:
    request = _battery()
    request["flex-model"]["soc-targets"] = [
        {"datetime": "2026-03-02T02:00:00+01:00", "value": "38 kWh"}]
    job = api.admin.post("/api/v1/scheduling-job/storage", json=request).json()["job"]
    body = api.wait(api.admin, job)
    assert body["status"] == "failed"
    assert body["error"]["constraint"] == "soc-targets"
    assert body["error"]["time"] == "2026-03-02T02:00:00+01:00"


def test_a_queued_job_survives_a_restart(api: Api, serve_port: int, tmp_path: Path) -> None:
    """The runner is gone and the deployment restarts: the accepted job still finishes."""
    _stop_runner(api.database_url)
    job = api.admin.post("/api/v1/scheduling-job/storage", json=_battery()).json()["job"]
    time.sleep(1.5)
    assert api.admin.get(f"/api/v1/scheduling-job/{job}").json()["status"] == "queued"
    _deploy(api.database_url, serve_port, tmp_path)  # a new replica starts a new runner
    body = api.wait(api.admin, job)
    assert body["status"] == "finished"
    expected = schedule(_battery())
    assert body["result"]["cost"]["value"] == pytest.approx(expected["cost"]["value"],
                                                            rel=1e-6, abs=1e-9)
