"""Schemathesis against the in-process app (no network): every operation, every check.

Bounded: a few examples per operation, no deadline. Jobs are queued but not run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from api_harness import harness  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with harness("sqlite", Path(tmp_path_factory.mktemp("st"))) as h:
        yield h


def test_spec_declares_bearer_and_problems(api) -> None:  # type: ignore[no-untyped-def]
    spec = api.http.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for code, response in op["responses"].items():
                if code[:1] in "45":
                    assert "application/problem+json" in response["content"], (method, path, code)
            if path not in ("/api/v1/health", "/api/v1/ready") and not path.startswith(
                "/shapeshifter"
            ):
                assert op.get("security"), (method, path)


@pytest.fixture(scope="module")
def api_schema(api):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_asgi("/openapi.json", api.app)


schema = schemathesis.pytest.from_fixture("api_schema")


# Left out, each for a reason named here (see the report of issue 11):
# - positive_data_acceptance everywhere: the job, site and sensor bodies are free-form JSON in
#   the spec (flex-models), so "schema-valid" bodies such as {} are rightly refused with 422.
# - negative_data_rejection on GET /scheduling-jobs: created-after/before accept a number
#   (pydantic reads it as a Unix time) where the spec says date-time.
EXCLUDED = [schemathesis.checks.positive_data_acceptance]
EXCLUDED_FOR = {
    ("GET", "/api/v1/scheduling-jobs"): [schemathesis.checks.negative_data_rejection],
}
UFTP_OFF = "UFTP is not configured"  # the harness runs without UFTP: a documented 503


@schema.parametrize()
@settings(max_examples=5, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_schemathesis(case, api) -> None:  # type: ignore[no-untyped-def]
    response = case.call(headers={**(case.headers or {}), **api.admin})
    excluded = EXCLUDED + EXCLUDED_FOR.get((case.method.upper(), case.path), [])
    if response.status_code == 503 and UFTP_OFF in response.text:
        excluded = [*excluded, schemathesis.checks.not_a_server_error]
    case.validate_response(response, excluded_checks=excluded)
