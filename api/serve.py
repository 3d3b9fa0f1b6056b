"""``vpp serve``: the API on Ray Serve, the job runner, the Ray dashboard.

The deployment builds its FastAPI app on the replica (Serve's builder form), reading its
settings from the environment the driver passes through ``runtime_env``: replicas may run on
other nodes of a cluster.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve

from actors.jobs import get_runner
from api.app import create_app
from vpp.settings import get_settings

logger = logging.getLogger(__name__)

PASSED_ENV = (
    "VPP_DATABASE_URL",
    "VPP_DATA_DIR",
    "VPP_OTEL_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class RayDispatcher:
    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def kick(self) -> None:
        self.runner.kick.remote()


def build_asgi_app() -> FastAPI:
    settings = get_settings()
    checkpoints = str(settings.data_dir / "checkpoints")
    runner = get_runner(settings.database_url, checkpoints)
    return create_app(settings.database_url, RayDispatcher(runner))


@serve.deployment(name="vpp-api", ray_actor_options={"num_cpus": 0})
@serve.ingress(build_asgi_app)
class VppApi:
    """The REST API (all routes come from :func:`api.app.create_app`)."""


def deploy(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start Serve on ``host:port`` and deploy the API (Ray must be connected)."""
    env = {k: v for k in PASSED_ENV if (v := os.environ.get(k))}
    settings = get_settings()
    env.setdefault("VPP_DATABASE_URL", settings.database_url)
    env.setdefault("VPP_DATA_DIR", str(settings.data_dir))
    serve.start(http_options={"host": host, "port": port})
    app = VppApi.options(  # type: ignore[attr-defined]
        ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": env}}
    ).bind()
    serve.run(app, name="vpp", route_prefix="/")


def run_forever(host: str, port: int, address: str | None) -> None:
    """``vpp serve``: connect Ray, bootstrap the admin, deploy, wait for SIGTERM/SIGINT."""
    from store import make_engine, session_factory, upgrade
    from store import repository as repo

    settings = get_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with session_factory(engine).begin() as session:
        _, token = repo.ensure_admin(session, token=os.environ.get("VPP_ADMIN_TOKEN") or None)
    if address or os.environ.get("RAY_ADDRESS"):
        context = ray.init(address=address, logging_level=logging.WARNING)
    else:
        context = ray.init(
            address="local",
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=8265,
            logging_level=logging.WARNING,
        )
    deploy(host, port)
    dashboard = getattr(context, "dashboard_url", None) or "(not running)"
    print(
        f"vpp API on http://{host}:{port} (docs: http://{host}:{port}/docs), "
        f"Ray dashboard on http://{dashboard}",
        flush=True,
    )
    if token and not os.environ.get("VPP_ADMIN_TOKEN"):
        print(f"admin token (shown once, store it safely): {token}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("shutting down", flush=True)
    serve.shutdown()
    _stop_runner(settings.database_url)
    ray.shutdown()


def _stop_runner(database_url: str) -> None:
    from actors.jobs import NAMESPACE, runner_name

    try:
        runner = ray.get_actor(runner_name(database_url), namespace=NAMESPACE)
    except ValueError:
        return
    ray.get(runner.stop.remote(), timeout=10)
    ray.kill(runner)
