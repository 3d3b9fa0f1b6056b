"""Schemathesis against the in-process app (no network): every operation, every check, and
a bounded stateful run along the spec's OpenAPI links.

Bounded: a few examples per operation and a few short scenarios, no deadline. Jobs are
queued but not run. ``status_code_conformance`` is among the checks: a status a route sends
that its spec entry does not list fails, as does a body that breaks its response model
(``response_schema_conformance``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from api_harness import harness  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

PROBLEM = "application/problem+json"

# CI's bound (the whole file in about a minute and a half on 2 cores); a longer hunt:
# VPP_SCHEMATHESIS_EXAMPLES=50 pytest tests/test_schemathesis.py
EXAMPLES = int(os.environ.get("VPP_SCHEMATHESIS_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with harness("sqlite", Path(tmp_path_factory.mktemp("st"))) as h:
        yield h


def test_spec_declares_bearer_models_and_problems(api) -> None:  # type: ignore[no-untyped-def]
    spec = api.http.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for code, response in op["responses"].items():
                if code[:1] in "45" and not (path.startswith("/shapeshifter") and code != "503"):
                    # the UFTP endpoint's transport errors are text/plain, as UFTP says
                    assert PROBLEM in response["content"], (method, path, code)
                if code[:1] == "2" and code != "204":  # a response model, not a bare "{}"
                    (media,) = response["content"].values() or [{"schema": {"type": "x"}}]
                    assert media.get("schema"), (method, path, code)
            if path not in ("/api/v1/health", "/api/v1/ready") and not path.startswith(
                "/shapeshifter"
            ):
                assert op.get("security"), (method, path)
                assert "401" in op["responses"], (method, path)
    links = spec["paths"]["/api/v1/sites"]["post"]["responses"]["201"]["links"]
    assert links["GetSite"]["parameters"] == {"site_id": "$response.body#/id"}


def test_routes_list_only_statuses_they_send(api) -> None:  # type: ignore[no-untyped-def]
    """A few routes that cannot send some statuses do not list them (the generic list of
    old did): reads by any role send no 403, routes without a body no 413."""
    spec = api.http.get("/openapi.json").json()
    get_site = spec["paths"]["/api/v1/sites/{site_id}"]["get"]["responses"]
    assert "403" not in get_site and "409" not in get_site and "413" not in get_site
    assert "404" not in spec["paths"]["/api/v1/sites"]["get"]["responses"]
    assert "503" not in spec["paths"]["/api/v1/sites"]["post"]["responses"]


def test_what_schemathesis_found_is_a_422_naming_the_field(api) -> None:  # type: ignore[no-untyped-def]
    """Found by this file: a JSON body that is not UTF-8 was a 500 on sensor uploads and a
    400 naming nothing elsewhere; invalid JSON named a character position as its field; an
    unknown query parameter (a mistyped filter) was ignored."""
    from api_harness import assert_problem

    sensor = api.http.post(
        "/api/v1/sensors", json={"name": "st-bytes", "unit": "kW"}, headers=api.admin
    )
    assert sensor.status_code == 201, sensor.text
    json_headers = {**api.admin, "Content-Type": "application/json"}
    for path in (f"/api/v1/sensors/{sensor.json()['id']}/data", "/api/v1/sites"):
        response = api.http.post(path, content=b"\xff\x04{", headers=json_headers)
        assert_problem(response, 422, "body")
    response = api.http.post("/api/v1/sites", content=b'{"name":', headers=json_headers)
    assert_problem(response, 422, "body")
    response = api.http.get("/api/v1/scheduling-jobs?stauts=failed", headers=api.admin)
    assert_problem(response, 422, "stauts")
    assert api.http.get("/api/v1/scheduling-jobs?status=failed", headers=api.admin).is_success


# positive_data_acceptance: a request the schema allows should be accepted. For these
# operations JSON Schema cannot say everything that makes a request valid, so a 422 that
# names the field is the right answer to some schema-valid requests:
DEFAULT_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
SEMANTIC_422 = {
    # flex-models and flex-contexts: cross-field rules (soc-min <= soc-at-start <= soc-max,
    # a horizon of whole steps, a shiftable device's run fits...) and quantities as unit
    # strings ("10 kW"), checked by vpp.request / vpp.portfolio after the schema
    "POST /api/v1/scheduling-job/storage": "flex-model rules and units",
    "POST /api/v1/scheduling-job/shifting": "flex-model rules and units",
    "POST /api/v1/scheduling-job/portfolio": "flex-model rules and units",
    "POST /api/v1/headroom": "a portfolio request: flex-model rules and units",
    "POST /api/v1/bid-curves": "a portfolio request (whole hours) and an increasing ladder",
    "POST /api/v1/sites": "flex-model rules and units",
    "PUT /api/v1/sites/{site_id}": "flex-model rules and units",
    "POST /api/v1/gopacs/redispatch-bid": "an announcement: volume units, end after start",
    # a unit is any power, energy, price or fraction unit the unit parser knows
    "POST /api/v1/sensors": "the unit must be one vpp.units reads",
    # the series must be at the sensor's resolution; CSV rows are checked row by row
    "POST /api/v1/sensors/{sensor_id}/data": "resolution must be the sensor's",
    # end must follow start by whole steps, and a read is bounded (VPP_MAX_SENSOR_POINTS)
    "GET /api/v1/sensors/{sensor_id}/data": "end after start by whole steps; bounded reads",
    # the sites must be the caller's (a 422 naming sites[i]), found only in the database
    "POST /api/v1/portfolios": "the sites must be your own",
    # cursors are opaque (a list's own cursor, not any string); created-after < before
    "GET /api/v1/scheduling-jobs": "an opaque cursor; a time range in order",
    "GET /api/v1/sites": "an opaque cursor",
    "GET /api/v1/portfolios": "an opaque cursor",
    "GET /api/v1/sensors": "an opaque cursor",
    # end after start; a site or a sensor, not both; a device of the given site
    "POST /api/v1/annotations": "end after start; one target; the site's own device",
    "GET /api/v1/annotations": "an opaque cursor",
    "POST /api/v1/holidays": "a country, subdivision and time zone that exist",
    # durations of whole sensor steps, a time zone and country that exist, enough history
    "POST /api/v1/forecasting-job": "whole sensor steps; a real time zone; enough history",
    "GET /api/v1/uftp/messages": "an opaque cursor; a time range in order",
    # the peer must be registered, the site must have an EAN, the sensor values...
    "POST /api/v1/uftp/d-prognosis": "a registered DSO; a UFTP entity address",
    "POST /api/v1/uftp/metering": "a registered DSO; a site with an EAN; stored values",
    "POST /api/v1/uftp/agr-portfolio-update": "a registered CRO; sites with EANs",
    "POST /api/v1/uftp/agr-portfolio-query": "a registered CRO",
    # a period: end after start, at most 366 days, not more than MAX_REPORT_JOBS jobs in it
    "GET /api/v1/reports": "end after start, at most 366 days",
    "GET /api/v1/reports/chart": "end after start, at most 366 days",
}
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-name": name,
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*DEFAULT_ACCEPTED, 422]}
                },
            }
            for name in SEMANTIC_422
        ]
    }
)
UFTP_OFF = "UFTP is not configured"  # the harness runs without UFTP: a documented 503


def _excluded(response: Any) -> list[Any]:
    if response.status_code == 503 and UFTP_OFF in response.text:
        return [schemathesis.checks.not_a_server_error]
    return []


@pytest.fixture(scope="module")
def api_schema(api):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_asgi("/openapi.json", api.app, config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_schemathesis(case, api) -> None:  # type: ignore[no-untyped-def]
    response = case.call(headers={**(case.headers or {}), **api.admin})
    case.validate_response(response, excluded_checks=_excluded(response))


def test_checks_are_all_on(api_schema) -> None:  # type: ignore[no-untyped-def]
    """Nothing is switched off: the configured checks include these."""
    config = api_schema.config.checks_config_for()
    for name in ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                 "response_schema_conformance", "positive_data_acceptance",
                 "negative_data_rejection", "use_after_free", "ensure_resource_availability"):
        assert getattr(config, name).enabled, name


def test_stateful(api, api_schema) -> None:  # type: ignore[no-untyped-def]
    """Scenarios along the links: create a site, read, replace and delete it; queue a job,
    read and cancel it; an account, its user, a token and its revocation..."""
    base = api_schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {**(case.headers or {}), **api.admin}}

        def validate_response(  # type: ignore[no-untyped-def]
            self, response, case, additional_checks=None, **kwargs
        ) -> None:
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=_excluded(response),
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Machine.run(
        settings=settings(
            max_examples=4 * EXAMPLES,
            stateful_step_count=8,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
