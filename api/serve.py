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
from ray.exceptions import GetTimeoutError, RayError
from ray.serve import Application

from actors.jobs import get_runner
from api.app import create_app
from vpp.settings import get_settings

logger = logging.getLogger(__name__)

PASSED_ENV = (
    "VPP_DATABASE_URL",
    "VPP_DATA_DIR",
    "VPP_OTEL_EXPORTER",
    "VPP_OTEL_FILE",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "VPP_UFTP_DOMAIN",
    "VPP_UFTP_SIGNING_KEY",
    "VPP_UFTP_MARGIN",
    "VPP_UFTP_OFFER_VALIDITY",
    "VPP_UFTP_RETRY_MAX",
)
"""Environment ``vpp serve`` passes to the replicas (the Serve config files set the same)."""

RUNNER_PING_TIMEOUT_S = 2.0


class RayDispatcher:
    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def kick(self) -> None:
        self.runner.kick.remote()

    def readiness(self) -> dict[str, str]:
        """``ray``: this process is connected; ``runner``: the job runner actor answers
        ``ping`` within :data:`RUNNER_PING_TIMEOUT_S` (it restarts itself after a crash, so
        a failure here lasts as long as the restart, or names a runner that is gone)."""
        if not ray.is_initialized():
            return {"ray": "failed: not connected", "runner": "failed: Ray not connected"}
        try:
            ray.get(self.runner.ping.remote(), timeout=RUNNER_PING_TIMEOUT_S)
        except GetTimeoutError:
            return {"ray": "ok", "runner": f"failed: no answer within {RUNNER_PING_TIMEOUT_S:g} s"}
        except RayError as exc:
            logger.warning("readiness: the job runner did not answer: %s", exc)
            return {"ray": "ok", "runner": f"failed: {type(exc).__name__}"}
        return {"ray": "ok", "runner": "ok"}


def build_asgi_app() -> FastAPI:
    settings = get_settings()
    runner = get_runner(settings.database_url)
    return create_app(settings.database_url, RayDispatcher(runner))


@serve.deployment(name="vpp-api", ray_actor_options={"num_cpus": 0})
@serve.ingress(build_asgi_app)
class VppApi:
    """The REST API (all routes come from :func:`api.app.create_app`)."""


def build_app(args: dict[str, Any]) -> Application:
    """The application for Serve config files (``import_path: api.serve:build_app``, see
    deploy/serve.yaml): migrates the database and, with ``VPP_ADMIN_TOKEN`` set, makes sure
    the admin holds that token (what ``vpp serve`` does before it deploys). Runs where Serve
    builds the application, with the config's ``runtime_env``; takes no ``args``.

    Migrating here, once per deploy, keeps replicas that start together from racing to run
    the same migration.
    """
    if args:
        raise ValueError(f"build_app takes no args; got {sorted(args)}")
    from store import make_engine, session_factory, upgrade
    from store import repository as repo

    engine = make_engine(get_settings().database_url)
    try:
        upgrade(engine)
        token = os.environ.get("VPP_ADMIN_TOKEN") or None
        if token is not None:
            with session_factory(engine).begin() as session:
                repo.ensure_admin(session, token=token)
    finally:
        engine.dispose()
    app: Application = VppApi.bind()  # type: ignore[attr-defined]
    return app


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
