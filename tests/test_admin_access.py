"""The admin can always get back in, and ``vpp serve``'s start-up errors are one line.

* ``vpp admin token`` mints a working admin token straight in the database.
* A first start stores its bootstrap token only once the API is deployed: a start that fails
  before stores none, and the next start prints one.
* A revoked ``VPP_ADMIN_TOKEN`` is logged and the server starts anyway.
* ``--dashboard-port`` (0: none); a port in use is a one-line error naming the flag.

Most tests run ``api.serve.run_forever`` with Ray and Serve replaced (what is tested is the
order of things around them); one starts a real ``vpp serve`` in a subprocess.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import api.serve as serve_mod
from api.app import create_app
from store import ApiToken, User, make_engine, session_factory, upgrade
from store import repository as repo
from store.admin import REVOKED_ADMIN_TOKEN, prepare_admin, store_bootstrap_token
from vpp.settings import get_settings

REPO = Path(__file__).resolve().parents[1]
REVOKED = "vpp_revoked-admin-token-0123456789"


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite database, as ``VPP_DATABASE_URL`` of this process and subprocesses."""
    url = f"sqlite:///{tmp_path / 'vpp.db'}"
    monkeypatch.setenv("VPP_DATABASE_URL", url)
    monkeypatch.delenv("VPP_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def token_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ApiToken)) or 0)


def holder(sessions: sessionmaker[Session], token: str) -> tuple[str, str, bool] | None:
    """(user, role, platform admin) of the user ``token`` authenticates, or None."""
    with sessions.begin() as session:
        user = repo.user_for_token(session, token)
        return None if user is None else (user.name, user.role, user.platform_admin)


def revoke_configured_token(sessions: sessionmaker[Session]) -> None:
    """What an admin did through ``DELETE /api/v1/tokens/{id}`` to :data:`REVOKED`."""
    with sessions.begin() as session:
        repo.ensure_admin(session, token=REVOKED)
        row = session.scalar(select(ApiToken).where(ApiToken.name == "VPP_ADMIN_TOKEN"))
        assert row is not None
        repo.revoke_token(session, row.id)


def vpp(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=dict(os.environ),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- vpp admin token --------------------------------------------------------------------------
def test_admin_token_mints_a_working_admin_token(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    revoke_configured_token(sessions)  # the admin's only token is gone
    done = vpp("admin", "token")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("vpp_") and "\n" not in token, "the token alone on stdout"
    assert "not shown again" in done.stderr and "DELETE /api/v1/tokens/" in done.stderr
    assert holder(sessions, token) == ("admin", "admin", True)
    again = vpp("admin", "token", "--name", "laptop")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() != token and holder(sessions, again.stdout.strip())
    with sessions() as session:
        names = session.scalars(select(ApiToken.name).order_by(ApiToken.id)).all()
        assert names == ["VPP_ADMIN_TOKEN", "vpp admin token", "laptop"]
        assert session.scalar(select(func.count()).select_from(User)) == 1, "the same admin"
    # and the API takes it
    with TestClient(create_app(db_url)) as http:
        me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["platform-admin"] is True


def test_admin_token_on_an_empty_database_creates_the_admin(db_url: str) -> None:
    done = vpp("admin", "token")
    assert done.returncode == 0, done.stderr
    engine = make_engine(db_url)
    try:
        assert holder(session_factory(engine), done.stdout.strip()) == ("admin", "admin", True)
    finally:
        engine.dispose()


def test_admin_token_without_its_database_is_a_one_line_error(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPP_DATABASE_URL", "postgresql+psycopg2://vpp:hunter2@127.0.0.1:1/vpp")
    done = vpp("admin", "token")
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot use the database"), lines
    assert "127.0.0.1:1/vpp" in lines[0] and "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr


# -- vpp serve, with Ray and Serve replaced ---------------------------------------------------
class FakeRay:
    """Records what ``vpp serve`` asks of Ray and Serve; ``deploy`` fails on demand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_deploy: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail_deploy = fail_deploy
        monkeypatch.setattr(serve_mod.ray, "init", self.init)
        monkeypatch.setattr(serve_mod.ray, "shutdown", lambda: self.calls.append(("shutdown", 0)))
        monkeypatch.setattr(serve_mod, "deploy", self.deploy)
        monkeypatch.setattr(serve_mod, "wait_for_signal", lambda: self.calls.append(("wait", 0)))
        monkeypatch.setattr(serve_mod.serve, "shutdown", lambda: self.calls.append(("serve", 0)))
        monkeypatch.setattr(serve_mod, "_stop_runner", lambda url: None)

    def init(self, **kwargs: Any) -> Any:
        self.calls.append(("init", kwargs))
        port = kwargs.get("dashboard_port")
        return type("Context", (), {"dashboard_url": f"127.0.0.1:{port}" if port else None})()

    def deploy(self, host: str, port: int) -> None:
        self.calls.append(("deploy", (host, port)))
        if self.fail_deploy:
            raise RuntimeError("Serve could not start (simulated)")

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


def test_bootstrap_token_is_stored_only_after_a_successful_start(
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    failing = FakeRay(monkeypatch, fail_deploy=True)
    with pytest.raises(RuntimeError, match="simulated"):
        serve_mod.run_forever("127.0.0.1", free_port(), None, dashboard_port=0)
    assert failing.kinds() == ["init", "deploy", "shutdown"], "Ray is left after a failure"
    assert "admin token" not in capsys.readouterr().out, "no token shown for a failed start"
    assert token_count(sessions) == 0, "nothing stored that nobody saw"

    started = FakeRay(monkeypatch)
    serve_mod.run_forever("127.0.0.1", free_port(), None, dashboard_port=0)
    assert started.kinds() == ["init", "deploy", "wait", "serve", "shutdown"]
    out = capsys.readouterr().out
    shown = [line for line in out.splitlines() if line.startswith("admin token (shown once")]
    assert len(shown) == 1, out
    token = shown[0].rsplit(" ", 1)[1]
    assert holder(sessions, token) == ("admin", "admin", True)

    FakeRay(monkeypatch)
    serve_mod.run_forever("127.0.0.1", free_port(), None, dashboard_port=0)
    assert "admin token" not in capsys.readouterr().out, "shown on the first start only"
    assert token_count(sessions) == 1


def test_revoked_admin_token_is_logged_and_the_server_starts(
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    revoke_configured_token(sessions)
    monkeypatch.setenv("VPP_ADMIN_TOKEN", REVOKED)
    fake = FakeRay(monkeypatch)
    with caplog.at_level(logging.ERROR, logger="store.admin"):
        serve_mod.run_forever("127.0.0.1", free_port(), None, dashboard_port=0)
    assert fake.kinds() == ["init", "deploy", "wait", "serve", "shutdown"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        REVOKED_ADMIN_TOKEN
    ]
    assert "vpp admin token" in REVOKED_ADMIN_TOKEN
    assert holder(sessions, REVOKED) is None, "still revoked"
    assert "admin token (shown once" not in capsys.readouterr().out
    assert token_count(sessions) == 1


def test_revoked_admin_token_does_not_stop_a_serve_config_deploy(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    revoke_configured_token(sessions)
    monkeypatch.setenv("VPP_ADMIN_TOKEN", REVOKED)
    with caplog.at_level(logging.ERROR, logger="store.admin"):
        app = serve_mod.build_app({})
    assert app is not None
    assert REVOKED_ADMIN_TOKEN in caplog.text


def test_prepare_admin_keeps_the_admin_when_the_token_is_revoked(
    sessions: sessionmaker[Session],
) -> None:
    revoke_configured_token(sessions)
    with sessions.begin() as session:  # a platform admin whose flag a rollback would lose
        user = session.scalar(select(User))
        assert user is not None
        user.platform_admin = False
    found = prepare_admin(sessions, REVOKED)
    assert (found.revoked, found.pending_token) == (True, None)
    with sessions() as session:
        user = session.get(User, found.user_id)
        assert user is not None and user.platform_admin
    store_bootstrap_token(sessions, found)  # nothing pending: nothing stored
    assert token_count(sessions) == 1


def test_unusable_admin_token_is_a_start_error(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, "client", kind="consultancy")
        user = repo.create_user(session, account, "someone", "viewer")
        _, theirs = repo.issue_token(session, user, "theirs")
    monkeypatch.setenv("VPP_ADMIN_TOKEN", theirs)
    fake = FakeRay(monkeypatch)
    with pytest.raises(serve_mod.StartError, match=r"^VPP_ADMIN_TOKEN: .*another user"):
        serve_mod.run_forever("127.0.0.1", free_port(), None, dashboard_port=0)
    assert fake.calls == [], "refused before Ray starts"


def test_dashboard_port_reaches_the_local_ray(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    port = free_port()
    fake = FakeRay(monkeypatch)
    serve_mod.run_forever("127.0.0.1", free_port(), None, dashboard_port=port)
    init = fake.calls[0][1]
    assert (init["include_dashboard"], init["dashboard_port"]) == (True, port)
    assert init["dashboard_host"] == "127.0.0.1"
    assert f"Ray dashboard on http://127.0.0.1:{port}" in capsys.readouterr().out

    fake = FakeRay(monkeypatch)
    serve_mod.run_forever("127.0.0.1", free_port(), None, dashboard_port=0)
    init = fake.calls[0][1]
    assert init["include_dashboard"] is False and "dashboard_port" not in init
    assert "no Ray dashboard" in capsys.readouterr().out

    # the default (8265 may be taken on this machine: only its check is looked at)
    checked: list[tuple[str, int, str]] = []
    monkeypatch.setattr(
        serve_mod, "check_port_free", lambda host, p, flag, hint="": checked.append((host, p, flag))
    )
    fake = FakeRay(monkeypatch)
    api_port = free_port()
    serve_mod.run_forever("127.0.0.1", api_port, None)
    init = fake.calls[0][1]
    assert init["dashboard_port"] == serve_mod.DEFAULT_DASHBOARD_PORT == 8265
    assert checked == [("127.0.0.1", api_port, "--port"), ("127.0.0.1", 8265, "--dashboard-port")]


def test_dashboard_port_is_refused_when_joining_a_cluster(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay(monkeypatch)
    with pytest.raises(serve_mod.StartError, match="--dashboard-port applies to a local Ray"):
        serve_mod.run_forever("127.0.0.1", 8000, "127.0.0.1:6380", dashboard_port=9000)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6380")
    with pytest.raises(serve_mod.StartError, match="--dashboard-port"):
        serve_mod.run_forever("127.0.0.1", 8000, None, dashboard_port=0)
    assert fake.calls == []


@pytest.mark.parametrize("flag", ["--dashboard-port", "--port"])
def test_a_port_in_use_is_a_one_line_error_naming_the_flag(db_url: str, flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--port" if flag == "--dashboard-port" else "--dashboard-port"
        done = vpp("serve", flag, str(port), other, str(free_port()))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: {flag} {port}: 127.0.0.1:{port} is already in use; choose another port"
        + (" (0: no dashboard)" if flag == "--dashboard-port" else "")
    ]
    assert not Path(db_url.removeprefix("sqlite:///")).exists(), "refused before anything"


# -- a real vpp serve -------------------------------------------------------------------------
def test_vpp_serve_starts_with_a_revoked_admin_token_and_admin_token_gets_back_in(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """On its own dashboard port (8265 may be another Ray's); the revoked token is logged,
    the API answers, and ``vpp admin token`` gets the admin back in while it runs."""
    revoke_configured_token(sessions)
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "VPP_ADMIN_TOKEN": REVOKED, "VPP_DATA_DIR": str(tmp_path)}
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port),
             "--dashboard-port", str(dashboard)],
            env=env, stdout=sink, stderr=sink, cwd=REPO,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while "vpp API on" not in log.read_text():
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        text = log.read_text()
        assert REVOKED_ADMIN_TOKEN in text and "Traceback" not in text, text[-3000:]
        assert f"Ray dashboard on http://127.0.0.1:{dashboard}" in text
        assert "admin token (shown once" not in text
        assert httpx.get(f"http://127.0.0.1:{dashboard}/", timeout=10).status_code == 200
        refused = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {REVOKED}"})
        assert refused.status_code == 401

        minted = vpp("admin", "token")
        assert minted.returncode == 0, minted.stderr
        me = httpx.get(
            f"{base}/api/v1/me",
            headers={"Authorization": f"Bearer {minted.stdout.strip()}"},
            timeout=30,
        )
        assert me.status_code == 200, me.text
        assert me.json()["platform-admin"] is True
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
