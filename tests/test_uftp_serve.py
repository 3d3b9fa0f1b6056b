"""The UFTP main flow against ``vpp serve`` (Ray Serve, SQLite): a real DSO peer from
shapeshifter-uftp sends a FlexRequest and orders the FlexOffer; the schedule stored by the
Serve replica keeps the ordered limits (checked as in ``tests/test_uftp.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import uftp_peer as peer
from conftest import wait_until_healthy
from db_fixtures import fresh_database
from test_uftp import ADMIN_TOKEN, Agr, flex_flow, no_dns  # noqa: F401

pytestmark = pytest.mark.usefixtures("ray_session")
pytest_plugins = ["db_fixtures"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agr]:
    from ray import serve

    from api.serve import deploy

    agr_key, agr_public = peer.keypair()
    dso_key, dso_public = peer.keypair()
    directory = tmp_path_factory.mktemp("uftp-serve")
    with (
        fresh_database("sqlite", directory) as url,
        peer.agr_environment(agr_key, VPP_DATABASE_URL=url, VPP_DATA_DIR=str(directory)),
    ):
        peer.migrate_with_admin(url, ADMIN_TOKEN)
        port = peer.free_port()
        serve.shutdown()  # a Serve another module started would keep its own HTTP port
        deploy("127.0.0.1", port)
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, 120)
        admin = httpx.Client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
        dso_port = peer.free_port()
        peer.setup_agr(base, admin, dso_public, dso_port)
        yield Agr(base, url, admin, agr_key, agr_public, dso_key, dso_public, dso_port, port,
                  peer.next_full_day())
        admin.close()
        serve.shutdown()
        _stop_runner(url)


def _stop_runner(url: str) -> None:
    import contextlib

    import ray

    from actors.jobs import NAMESPACE, runner_name

    with contextlib.suppress(ValueError):  # no runner: nothing to stop
        ray.kill(ray.get_actor(runner_name(url), namespace=NAMESPACE), no_restart=True)


def test_flex_request_offer_order_on_serve(served: Agr) -> None:
    with served.dso() as dso:
        flex_flow(served, dso)
