"""Process configuration, read from ``VPP_*`` environment variables.

Nothing here runs at import time: Ray workers import vpp modules in fresh processes, so
settings are read on the first call to :func:`get_settings` (and cached for the process).
Tests that change the environment call ``get_settings.cache_clear()``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OTEL_PASSED", "Settings", "env_names", "get_settings", "passed_env"]


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "vpp"


def _default_database_url(data: dict[str, Any]) -> str:
    return f"sqlite:///{Path(data['data_dir']) / 'vpp.db'}"


class Settings(BaseSettings):
    """vpp configuration. Every field can be set as ``VPP_<FIELD_NAME>`` (case-insensitive)."""

    # env_ignore_empty: manifests pass unset secrets as "" (Ray expands ${NAME} to ""), which
    # must mean "not configured", not an empty domain or key
    model_config = SettingsConfigDict(env_prefix="VPP_", extra="ignore", env_ignore_empty=True)

    data_dir: Path = Field(default_factory=_default_data_dir)
    """Where vpp keeps local state (not created until something writes there)."""

    database_url: str = Field(default_factory=_default_database_url)
    """SQLAlchemy URL, e.g. ``postgresql+psycopg2://user@host/db``.

    Defaults to the SQLite file ``<data_dir>/vpp.db``.
    """

    uftp_domain: str | None = None
    """Our UFTP sender domain as aggregator (e.g. ``agr.example.com``)."""

    uftp_signing_key: str | None = Field(default=None, repr=False)
    """Our private Ed25519 signing key, base64 (``vpp uftp keygen`` prints a new pair)."""

    uftp_margin: float = Field(default=0.0, ge=0)
    """Margin added to a FlexOffer's price: EUR per MWh of offered flexibility energy."""

    uftp_offer_validity: float = Field(default=3600.0, gt=0)
    """How long (seconds) a FlexOffer stays valid, capped at the FlexRequest's expiry."""

    uftp_retry_max: float = Field(default=300.0, gt=0)
    """Longest wait (seconds) between delivery attempts of an outbound UFTP message (the
    wait doubles from 1 s after each failed attempt up to this)."""

    # Limits: work the API refuses before it starts (413 for a body, 422 naming the limit for
    # the rest); docs/operations.md, "Limits".
    max_body_bytes: int = Field(default=16 * 2**20, gt=0)
    """Largest request body the API reads (bytes); a larger one is answered 413."""

    max_job_steps: int = Field(default=35_136, gt=0)
    """Most time steps of a scheduling job's horizon (duration / resolution): a leap year
    at PT15M."""

    max_site_devices: int = Field(default=200, gt=0)
    """Most devices of one site (a stored site, a job's site, each site of a portfolio)."""

    max_portfolio_sites: int = Field(default=10_000, gt=0)  # ADMM is measured at 10,000
    """Most sites of one portfolio (a stored portfolio, a portfolio job)."""

    max_sensor_points: int = Field(default=100_000, gt=0)
    """Most points one sensor read may cover (``GET /sensors/{id}/data``), counted at the
    finer of the sensor's and the requested resolution; page with ``limit`` beyond it."""

    worker_job_size: int = Field(default=2_000, ge=0)
    """Jobs of at least this many steps × devices (every site's devices for a portfolio; a
    ``SHIFTABLE`` process weighs more) run in a worker process that exits afterwards, so the
    job runner's memory stays near its idle level; smaller ones run in the runner's threads
    (a worker takes ~2 s to start). ``0`` runs every job in a worker. docs/operations.md,
    "Job memory"."""

    solve_time_limit: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    """Seconds a site's or a centralised portfolio's solve may take when the request gives no
    ``time-limit``: a MILP that reaches it returns its best schedule as ``time-limited`` with
    its MIP gap (docs/flex-model.md, "Time limit"). LPs finish in milliseconds."""

    # Operations: tracing, the job runner, the bootstrap admin, the Ray cluster to join.
    otel_exporter: str = "none"
    """Where spans go: ``none``, ``console``, ``otlp`` (OpenTelemetry's own ``OTEL_EXPORTER_*``
    variables configure it) or ``file`` (JSON lines appended to ``otel_file``)."""

    otel_file: str | None = None
    """The JSON-lines file of ``otel_exporter=file``."""

    runner_workers: int = Field(default=4, ge=1)
    """Threads of the job runner that run jobs at once."""

    admin_token: str | None = Field(default=None, repr=False)
    """The admin's API token to make sure of at start (``vpp serve``, ``build_app``)."""

    ray_address: str | None = Field(default=None, validation_alias="RAY_ADDRESS")
    """The Ray cluster to join (Ray's own ``RAY_ADDRESS``); unset: a local Ray."""

    # The Python client (vpp.client), on an analyst's machine.
    url: str | None = None
    """The API the client talks to when none is given (it defaults to 127.0.0.1:8000)."""

    token: str | None = Field(default=None, repr=False)
    """The API token the client sends when none is given."""

    @field_validator("otel_exporter")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("data_dir")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()


OTEL_PASSED: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS")
"""OpenTelemetry's own variables that the OTLP exporter reads in every process."""


def env_names() -> list[str]:
    """Every environment variable vpp reads (its settings', then OpenTelemetry's)."""
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.append(alias if isinstance(alias, str) else f"VPP_{name.upper()}")
    return [*names, *OTEL_PASSED]


def passed_env(
    exclude: tuple[str, ...] = ("RAY_ADDRESS", "VPP_ADMIN_TOKEN", "VPP_URL", "VPP_TOKEN"),
) -> dict[str, str]:
    """The variables of :func:`env_names` set in this process, to hand to Ray workers on
    other nodes (``runtime_env``) so that they read the same settings. Left out by default:
    the cluster address (workers are in it), the admin token (only a start needs it, and a
    ``runtime_env`` shows in the Ray dashboard) and the client's URL and token."""
    return {
        name: value
        for name in env_names()
        if name not in exclude and (value := os.environ.get(name))
    }
