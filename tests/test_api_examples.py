"""docs/api.md's "Examples": one copy-paste request for every route, run here as written
(bash, curl and jq) against the app served by uvicorn on 127.0.0.1 in this process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uftp_peer as peer
from conftest import served

from api.app import create_app
from api.uftp import protocol
from store import repository as repo
from store import uftp as uftp_store

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
DOCUMENTED_BASE = "http://127.0.0.1:8000"
MARKER = re.compile(r"^# example: (GET|POST|PUT|DELETE|PATCH) (\S+)$", re.M)
CLOSED = "http://127.0.0.1:9/shapeshifter/api/v3/message"  # the discard port: nobody listens
DSO, CRO = "dso.example.com", "cro.example.com"


def example_blocks() -> list[str]:
    """The fenced ``bash`` blocks of the Examples section, in order."""
    text = DOCS.read_text("utf-8")
    section = text[text.index("\n## Examples\n") :]
    following = re.search(r"\n## (?!Examples)", section[1:])
    if following:
        section = section[: following.start() + 1]
    return re.findall(r"^```bash\n(.*?)^```$", section, re.M | re.S)


def documented_routes() -> set[tuple[str, str]]:
    return {(m, p) for block in example_blocks() for m, p in MARKER.findall(block)}


def test_every_route_has_an_example(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'vpp.db'}")
    operations = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete", "patch")
    }
    operations.add(("GET", "/ui/jobs/{job_id}"))  # the chart page, outside the spec
    documented = documented_routes()
    assert sorted(operations - documented) == [], "routes without an example in docs/api.md"
    assert sorted(documented - operations) == [], "examples of routes that do not exist"


# -- the live API -----------------------------------------------------------------------------
def signed_message(dso_private: str, agr_domain: str) -> str:
    """A ``SignedMessage`` from the DSO: a D-Prognosis response to a prognosis we never sent
    (accepted for processing with 200; its functional rejection follows asynchronously)."""
    from shapeshifter_uftp import transport
    from shapeshifter_uftp.uftp import (
        AcceptedRejected,
        DPrognosisResponse,
        SignedMessage,
        UsefRole,
    )

    response = DPrognosisResponse(
        d_prognosis_message_id=str(uuid.uuid4()), result=AcceptedRejected.ACCEPTED
    )
    protocol.stamp(response, SimpleNamespace(domain=DSO), agr_domain, None)  # type: ignore[arg-type]
    sealed = transport.seal_message(response, dso_private)
    envelope = SignedMessage(sender_domain=DSO, sender_role=UsefRole.DSO, body=sealed)
    return str(transport.to_xml(envelope))


def seed_offer(app: Any) -> None:
    """An open FlexOffer of the admin's account to the DSO (offers come from a DSO's
    FlexRequest; the revoke example needs one)."""
    start = datetime(2026, 3, 2, tzinfo=UTC) - timedelta(hours=1)
    with app.state.sessions.begin() as session:
        admin, _ = repo.ensure_admin(session)
        uftp_store.save_offer(
            session,
            message_id=str(uuid.uuid4()),
            flex_request_message_id=str(uuid.uuid4()),
            dso_domain=DSO,
            congestion_point="ean.871685900000000099",
            account_id=admin.account_id,
            period="2026-03-02",
            time_zone="Europe/Amsterdam",
            start=start,
            resolution_seconds=900,
            isps=[{"start": 1, "duration": 1, "power": -1000}],
            baseline=[1.0] * 96,
            option_reference="example",
            price=10.0,
            currency="EUR",
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    """The app (jobs run in-process) on uvicorn at 127.0.0.1:<free port>, UFTP configured:
    (base URL, admin token, app)."""
    agr_private, _ = peer.keypair()
    with peer.environment(
        VPP_UFTP_DOMAIN="agr.example.com", VPP_UFTP_SIGNING_KEY=agr_private, VPP_UFTP_RETRY_MAX="1"
    ):
        app = create_app(f"sqlite:///{tmp_path / 'vpp.db'}")
        with app.state.sessions.begin() as session:
            _, token = repo.ensure_admin(session)
        assert token is not None
        try:
            with served(app, lifespan="on") as base:
                yield base, token, app
        finally:
            app.state.uftp_worker.stop()
            app.state.sessions.kw["bind"].dispose()


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl, jq")
def test_the_examples_run(live_api: Any, tmp_path: Path) -> None:
    base, token, app = live_api
    dso_private, dso_public = peer.keypair()
    _, cro_public = peer.keypair()
    (tmp_path / "signed-message.xml").write_text(signed_message(dso_private, "agr.example.com"))
    seed_offer(app)

    blocks = example_blocks()
    # each block in the same shell, as a reader pastes them one after the other; a failing
    # curl -f (a status >= 400) or jq stops the script with that block's marker on stderr
    script = ["set -euo pipefail"]
    for block in blocks:
        markers = MARKER.findall(block)
        script.append(f"echo '>>> {markers[0][0]} {markers[0][1]}' >&2")
        body = block.replace(DOCUMENTED_BASE, base)
        script.append(re.sub(r"^export TOKEN=.*$", ": token from the test", body, flags=re.M))
    env = os.environ | {
        "TOKEN": token,
        "DSO_PUBLIC_KEY": dso_public,
        "CRO_PUBLIC_KEY": cro_public,
        "DSO_ENDPOINT": CLOSED,
        "CRO_ENDPOINT": CLOSED,
    }
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(proxy, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, f"stderr:\n{done.stderr[-4000:]}\nstdout:\n{done.stdout[-3000:]}"
    assert done.stderr.count(">>> ") == len(blocks), done.stderr
    assert took < 50
    out = done.stdout
    assert '"status": "finished"' in out, "the storage job example waits for its result"
    assert '"deliverable":true' in out, "the GOPACS bid example is deliverable"
    assert out.count(token) == 1, "the token printed once (the chart page's address)"
    assert f"{base}/ui/jobs/" in out
    assert re.search(r"cancel: (204|409)$", out, re.M), "the cancel example prints its status"
    assert (tmp_path / "chart.vl.json").stat().st_size > 1000
