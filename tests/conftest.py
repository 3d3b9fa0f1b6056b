"""Shared helpers for the scheduler tests (importable without ray or any service).

``build_request`` writes a request dict the way a client would; the fixtures expose it and a
deterministic price curve so tests need not import this module.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

# Test modules import db_fixtures (directly or through api_harness) before their
# ``pytest_plugins = ["db_fixtures"]`` loads it as a plugin; registered here, first, its
# asserts are rewritten on that import and pytest does not warn that it cannot rewrite them.
pytest.register_assert_rewrite("db_fixtures")

START = "2026-03-02T00:00:00+01:00"


def price_curve(steps: int = 96) -> list[float]:
    """A deterministic day of prices (EUR/MWh): night trough, morning and evening peaks,
    one negative midday hour; two decimals so they survive JSON unchanged."""
    hours = np.arange(steps) * 24.0 / steps
    curve = (
        60.0
        + 35.0 * np.exp(-((hours - 8.0) ** 2) / 4.0)
        + 60.0 * np.exp(-((hours - 19.0) ** 2) / 3.0)
        - 30.0 * np.exp(-((hours - 3.0) ** 2) / 6.0)
        - 70.0 * np.exp(-((hours - 13.0) ** 2) / 1.5)
        + 3.0 * np.sin(np.arange(steps) * 1.7)
    )
    return [round(float(v), 2) for v in curve]


def instant(k: int, minutes: int = 15, start: str = START) -> str:
    """ISO text of instant ``k`` of a schedule starting at ``start`` with that resolution."""
    return (datetime.fromisoformat(start) + k * timedelta(minutes=minutes)).isoformat()


def default_battery() -> dict[str, Any]:
    return {
        "soc-at-start": "10 kWh",
        "soc-min": "0 kWh",
        "soc-max": "40 kWh",
        "power-capacity": "10 kW",
        "charging-efficiency": "95%",
        "discharging-efficiency": "95%",
    }


def build_request(
    flex_model: dict[str, Any] | list[dict[str, Any]] | None = None,
    flex_context: dict[str, Any] | None = None,
    *,
    steps: int = 96,
    minutes: int = 15,
    start: str = START,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid request: ``steps`` steps of ``minutes`` from ``start``, one battery, the
    deterministic price curve (for 96 steps; a flat 50 EUR/MWh otherwise).

    ``flex_model``/``flex_context`` replace the defaults; ``overrides`` set top-level keys
    (``extra_key=...`` is written ``extra-key``).
    """
    if flex_context is None:
        prices: Any = (
            {"values": price_curve(steps), "unit": "EUR/MWh"} if steps == 96 else "50 EUR/MWh"
        )
        flex_context = {"consumption-price": prices}
    total = steps * minutes
    request: dict[str, Any] = {
        "start": start,
        "duration": f"PT{total // 60}H{total % 60}M" if total % 60 else f"PT{total // 60}H",
        "resolution": f"PT{minutes}M",
        "flex-model": copy.deepcopy(flex_model if flex_model is not None else default_battery()),
        "flex-context": copy.deepcopy(flex_context),
    }
    for key, value in overrides.items():
        request[key.replace("_", "-")] = value
    return request


@pytest.fixture(scope="session")
def make_request() -> Callable[..., dict[str, Any]]:
    """``make_request(flex_model=None, flex_context=None, *, steps=96, minutes=15, ...)``."""
    return build_request


@pytest.fixture(scope="session")
def prices() -> list[float]:
    """The deterministic 96-step price curve (EUR/MWh)."""
    return price_curve()


@pytest.fixture(scope="session")
def at() -> Callable[..., str]:
    """``at(k, minutes=15)``: ISO text of instant ``k`` of the default schedule."""
    return instant


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for the whole session (2 CPUs, like this machine); most tests need none."""
    import ray

    # "local": never join a cluster another test (or a developer) started with `ray start`
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    yield
    ray.shutdown()


def wait_until_healthy(base: str, seconds: float) -> None:
    """Poll ``GET /api/v1/health`` until it answers 200 (a Serve deployment coming up)."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base} did not become healthy within {seconds} s")


@contextlib.contextmanager
def served(app: Any, lifespan: str = "off") -> Iterator[str]:
    """``app`` on uvicorn at 127.0.0.1:<free port> in a thread, while the block runs: its
    base URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
