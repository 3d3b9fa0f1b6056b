"""Settings read from the environment (``VPP_*``)."""

from __future__ import annotations

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
