"""``vpp serve``: the API on Ray Serve, the job runner, the Ray dashboard.

The deployment builds its FastAPI app on the replica (Serve's builder form), reading its
settings from the environment the driver passes through ``runtime_env``: replicas may run on
other nodes of a cluster.

What an operator can get wrong (a port in use, a database out of reach, an unusable
``VPP_ADMIN_TOKEN``) ends ``vpp serve`` with a one-line :class:`StartError`, before Ray
starts where it can be checked before. A revoked ``VPP_ADMIN_TOKEN`` is not such an error:
it is logged and the server starts (:mod:`store.admin`).
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

import ray
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from ray import serve
from ray.exceptions import GetTimeoutError, RayError
from ray.serve import Application
from sqlalchemy.exc import OperationalError

from actors.jobs import get_runner
from api.app import create_app
from vpp.errors import VppError
from vpp.settings import get_settings, passed_env

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from store.admin import AdminBootstrap

__all__ = [
    "DASHBOARD_HOST",
    "DEFAULT_DASHBOARD_PORT",
    "MAX_ONGOING_REQUESTS",
    "RUNNER_PING_TIMEOUT_S",
    "BuildArgs",
    "RayDispatcher",
    "StartError",
    "UnhealthyError",
    "VppApi",
    "build_app",
    "build_asgi_app",
    "check_port_free",
    "deploy",
    "health_failures",
    "run_forever",
    "wait_for_signal",
]


logger = logging.getLogger(__name__)

DEFAULT_DASHBOARD_PORT = 8265
DASHBOARD_HOST = "127.0.0.1"


class StartError(VppError):
    """``vpp serve`` cannot start for a reason the operator can fix (named in the message)."""


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


RUNNER_CHECKS = 3
"""Health checks in a row the job runner may miss before a replica counts as unhealthy."""


class UnhealthyError(VppError):
    """A replica's health check failed (Serve replaces the replica); names each check."""


def health_failures(app: FastAPI) -> dict[str, str]:
    """The failing checks of ``/api/v1/ready`` (database, Ray, job runner) for ``app``."""
    from api.routes.health import PASSING, database_check

    checks = {"database": database_check(app.state.sessions)}
    checks |= app.state.dispatcher.readiness()
    return {name: state for name, state in checks.items() if state not in PASSING}


MAX_ONGOING_REQUESTS = 32
"""Requests one replica takes at once (deploy/serve.yaml sets the same). Serve's default, 5,
makes the proxy queue and back off as soon as more clients poll than that: 16 clients
polling their jobs got 13 jobs/s, against 40 with 8 (docs/benchmarks.md, REST API)."""


@serve.deployment(
    name="vpp-api",
    ray_actor_options={"num_cpus": 0},
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
)
@serve.ingress(build_asgi_app)
class VppApi:
    """The REST API (all routes come from :func:`api.app.create_app`)."""

    def check_health(self) -> None:
        """Serve's periodic check (every 10 s): the replica is unhealthy (and replaced) when
        its database does not answer, or when the job runner has not answered for
        :data:`RUNNER_CHECKS` checks in a row, with the checks of ``/api/v1/ready``.

        The runner is an actor of its own that Ray restarts after a crash, and a fresh one
        takes seconds to start (it migrates the database): one missed ping is a runner
        starting, not a broken replica. Serve also checks once while the replica starts,
        before it hands the replica the app :func:`build_asgi_app` built: there is nothing
        to check yet then."""
        app = getattr(self, "_asgi_app", None)  # set by Serve's ASGI wrapper (the ingress)
        if app is None:
            return
        failing = health_failures(app)
        misses = getattr(self, "_runner_misses", 0) + 1 if "runner" in failing else 0
        self._runner_misses = misses
        if misses < RUNNER_CHECKS:
            failing.pop("runner", None)
        if failing:
            raise UnhealthyError(
                "; ".join(f"{name}: {state}" for name, state in sorted(failing.items()))
            )


class BuildArgs(BaseModel):
    """The ``args`` of a Serve config's application (``import_path: api.serve:build_app``).
    There are none: the settings come from the ``runtime_env`` (:mod:`vpp.settings`), the
    same on every node; an unknown key is refused rather than ignored."""

    model_config = ConfigDict(extra="forbid")


def build_app(args: BuildArgs) -> Application:
    """The application for Serve config files (``import_path: api.serve:build_app``, see
    deploy/serve.yaml): migrates the database and, with ``VPP_ADMIN_TOKEN`` set, makes sure
    the admin holds that token (what ``vpp serve`` does before it deploys; a revoked one is
    logged, not fatal). Runs where Serve builds the application, with the config's
    ``runtime_env``; takes no ``args``.

    Migrating here, once per deploy, keeps replicas that start together from racing to run
    the same migration.
    """
    if isinstance(args, dict):  # called directly rather than by Serve
        args = BuildArgs.model_validate(args)
    from store import make_engine, session_factory, upgrade
    from store.admin import prepare_admin

    engine = make_engine(get_settings().database_url)
    try:
        upgrade(engine)
        token = get_settings().admin_token
        if token is not None:
            prepare_admin(session_factory(engine), token)
    finally:
        engine.dispose()
    app: Application = VppApi.bind()  # type: ignore[attr-defined]
    return app


def deploy(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start Serve on ``host:port`` and deploy the API (Ray must be connected)."""
    env = passed_env()
    settings = get_settings()
    env.setdefault("VPP_DATABASE_URL", settings.database_url)
    env.setdefault("VPP_DATA_DIR", str(settings.data_dir))
    serve.start(http_options={"host": host, "port": port})
    app = VppApi.options(  # type: ignore[attr-defined]
        ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": env}}
    ).bind()
    serve.run(app, name="vpp", route_prefix="/")


def run_forever(
    host: str, port: int, address: str | None, dashboard_port: int | None = None
) -> None:
    """``vpp serve``: connect Ray, bootstrap the admin, deploy, wait for SIGTERM/SIGINT.

    ``dashboard_port`` is the local Ray's dashboard port (default
    :data:`DEFAULT_DASHBOARD_PORT`; 0: no dashboard); joining a cluster it must be None.
    The bootstrap token of a first start is stored and printed only once the API is
    deployed. Raises :class:`StartError` for what the operator can fix.
    """
    from store import make_engine, session_factory
    from store.admin import store_bootstrap_token

    joining = bool(address or get_settings().ray_address)
    if joining and dashboard_port is not None:
        raise StartError(
            "--dashboard-port applies to a local Ray only; the cluster joined through "
            "--address or RAY_ADDRESS runs its own dashboard"
        )
    dashboard = DEFAULT_DASHBOARD_PORT if dashboard_port is None else dashboard_port
    if not joining:
        # A local Ray and Serve would find these ports taken only after starting (Serve's
        # proxy then fails in an actor's log): check first, name the flag.
        check_port_free(host, port, "--port")
        if dashboard:
            check_port_free(DASHBOARD_HOST, dashboard, "--dashboard-port", " (0: no dashboard)")
    settings = get_settings()
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    bootstrap = _prepare(engine, sessions, settings.database_url)
    if joining:
        context = ray.init(address=address, logging_level=logging.WARNING)
    elif dashboard:
        context = ray.init(
            address="local",
            include_dashboard=True,
            dashboard_host=DASHBOARD_HOST,
            dashboard_port=dashboard,
            logging_level=logging.WARNING,
        )
    else:
        context = ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        deploy(host, port)
        store_bootstrap_token(sessions, bootstrap)
    except BaseException:
        # Disconnect (a local Ray stops); Serve on a joined cluster is left alone, it may
        # serve others.
        ray.shutdown()
        raise
    dashboard_url = getattr(context, "dashboard_url", None)
    print(
        f"vpp API on http://{host}:{port} (docs: http://{host}:{port}/docs), "
        + (f"Ray dashboard on http://{dashboard_url}" if dashboard_url else "no Ray dashboard"),
        flush=True,
    )
    if bootstrap.pending_token is not None:
        print(f"admin token (shown once, store it safely): {bootstrap.pending_token}", flush=True)
    wait_for_signal()
    print("shutting down", flush=True)
    serve.shutdown()
    _stop_runner(settings.database_url)
    ray.shutdown()


def _prepare(
    engine: Engine, sessions: sessionmaker[Session], database_url: str
) -> AdminBootstrap:
    """Migrate and prepare the admin (:func:`store.admin.prepare_admin`), with the errors an
    operator can fix as :class:`StartError`."""
    from store import upgrade
    from store.admin import database_unreachable, prepare_admin

    try:
        upgrade(engine)
        return prepare_admin(sessions, get_settings().admin_token)
    except OperationalError as err:
        raise StartError(database_unreachable(database_url, err)) from None
    except ValueError as err:
        # empty, or another user's token (a revoked one is logged by prepare_admin)
        raise StartError(f"VPP_ADMIN_TOKEN: {err}") from None


def check_port_free(host: str, port: int, flag: str, hint: str = "") -> None:
    """Raise :class:`StartError` naming ``flag`` if ``host:port`` cannot be bound (in use,
    or an address not of this machine)."""
    if not 0 < port < 65536:
        raise StartError(f"{flag} {port}: not a TCP port (1-65535){hint}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise StartError(f"{flag} {port}: cannot resolve {host}: {err.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # as the servers bind: a port left in TIME_WAIT is free for them
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise StartError(
                    f"{flag} {port}: {host}:{port} is already in use; choose another port{hint}"
                ) from None
            raise StartError(
                f"{flag} {port}: cannot listen on {host}:{port}: {err.strerror}"
            ) from None


def wait_for_signal() -> None:
    """Block until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _stop_runner(database_url: str) -> None:
    from actors.jobs import NAMESPACE, runner_name

    try:
        runner = ray.get_actor(runner_name(database_url), namespace=NAMESPACE)
    except ValueError:
        return
    ray.get(runner.stop.remote(), timeout=10)
    ray.kill(runner)
