"""Settings read from the environment (``VPP_*``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vpp.settings import Settings


def test_an_empty_variable_means_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    # deploy/serve.yaml and the KubeRay manifest pass an unset secret as "" (${NAME} → "")
    monkeypatch.setenv("VPP_UFTP_DOMAIN", "")
    monkeypatch.setenv("VPP_UFTP_SIGNING_KEY", "")
    monkeypatch.setenv("VPP_DATA_DIR", "/tmp/vpp-settings-test")
    monkeypatch.setenv("VPP_DATABASE_URL", "")
    settings = Settings()
    assert settings.uftp_domain is None
    assert settings.uftp_signing_key is None
    assert settings.database_url == "sqlite:////tmp/vpp-settings-test/vpp.db"


def test_a_set_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPP_UFTP_DOMAIN", "agr.example.com")
    assert Settings().uftp_domain == "agr.example.com"


ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vpp", "actors", "api", "store")


def _environment_reads(path: Path) -> list[int]:
    """Lines of ``path`` that touch ``os.environ`` or ``os.getenv`` (any form)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    def reads(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr in ("environ", "getenv", "putenv")
        return isinstance(node, ast.ImportFrom) and node.module == "os" and any(
            alias.name in ("environ", "getenv") for alias in node.names
        )

    return [node.lineno for node in ast.walk(tree) if reads(node)]


def test_settings_are_read_in_one_place() -> None:
    """Issue 12: only vpp/settings.py reads the environment; everything else asks
    ``get_settings()`` (so a Ray worker, a test and a replica read the same names)."""
    readers = {
        str(path.relative_to(ROOT)): lines
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := _environment_reads(path)) and path != ROOT / "vpp" / "settings.py"
    }
    assert readers == {}


def test_passed_env_names_every_setting_and_keeps_secrets_of_a_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vpp.settings import env_names, passed_env

    assert "VPP_DATABASE_URL" in env_names() and "RAY_ADDRESS" in env_names()
    monkeypatch.setenv("VPP_DATABASE_URL", "sqlite:///x.db")
    monkeypatch.setenv("VPP_ADMIN_TOKEN", "secret")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.setenv("VPP_OTEL_FILE", "")  # empty is "not set"
    passed = passed_env()
    assert passed["VPP_DATABASE_URL"] == "sqlite:///x.db"
    assert "VPP_ADMIN_TOKEN" not in passed and "RAY_ADDRESS" not in passed
    assert "VPP_OTEL_FILE" not in passed
    assert Settings().ray_address == "10.0.0.1:6379"
