"""Issue 11, "What was seen": inputs that answered 500 now answer a 4xx problem+json naming
the field, on SQLite and PostgreSQL (PostgreSQL refuses NUL in text and 32-bit overflows
that SQLite stores).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import ApiHarness, assert_problem, harness

pytest_plugins = ["db_fixtures"]

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "battery.json"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ApiHarness]:
    with harness(request.param, tmp_path_factory.mktemp(f"errors-{request.param}")) as h:
        yield h


@pytest.mark.parametrize(
    ("query", "field"), [("limit=0", "limit"), ("limit=-1", "limit"), ("status=bogus", "status")]
)
def test_job_list_rejects_bad_query(api: ApiHarness, query: str, field: str) -> None:
    response = api.http.get(f"/api/v1/scheduling-jobs?{query}", headers=api.admin)
    assert_problem(response, 422, field)


def test_job_list_still_lists(api: ApiHarness) -> None:
    response = api.http.get("/api/v1/scheduling-jobs?limit=5000&status=queued", headers=api.admin)
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)


@pytest.mark.parametrize("unit", ["*", ">", "**", "kW*", "1/0", "k" * 40, "kW\x00"])
def test_sensor_with_an_unreadable_unit(api: ApiHarness, unit: str) -> None:
    response = api.http.post(
        "/api/v1/sensors", json={"name": f"unit {unit!r}", "unit": unit}, headers=api.admin
    )
    assert_problem(response, 422, "unit")


@pytest.mark.parametrize("resolution", ["PT0S", "-PT15M", "P2875Y", "PT0.5S"])
def test_sensor_with_a_bad_resolution(api: ApiHarness, resolution: str) -> None:
    response = api.http.post(
        "/api/v1/sensors",
        json={"name": f"res {resolution}", "unit": "kW", "resolution": resolution},
        headers=api.admin,
    )
    assert_problem(response, 422, "resolution")


def test_sensor_read_with_a_bad_resolution(api: ApiHarness) -> None:
    sensor = api.http.post("/api/v1/sensors", json={"name": "read res", "unit": "kW"},
                           headers=api.admin)
    assert sensor.status_code == 201, sensor.text
    response = api.http.get(
        f"/api/v1/sensors/{sensor.json()['id']}/data",
        params={"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00",
                "resolution": "-PT15M"},
        headers=api.admin,
    )
    assert_problem(response, 422, "resolution")


def test_a_unit_pint_cannot_parse_in_a_job(api: ApiHarness) -> None:
    body = json.loads(EXAMPLE.read_text())
    body["flex-model"]["soc-max"] = "40 kWh**"
    response = api.http.post("/api/v1/scheduling-job/storage", json=body, headers=api.admin)
    assert_problem(response, 422, "flex-model[0].soc-max")


NUL = "bad\x00name"


def test_nul_in_an_account_name(api: ApiHarness) -> None:
    response = api.http.post("/api/v1/accounts", json={"name": NUL}, headers=api.admin)
    assert_problem(response, 422, "name")


def test_nul_in_user_and_token_names(api: ApiHarness) -> None:
    me = api.http.get("/api/v1/me", headers=api.admin).json()
    account = me["account"]["id"]
    response = api.http.post(f"/api/v1/accounts/{account}/users", json={"name": NUL},
                             headers=api.admin)
    assert_problem(response, 422, "name")
    user = api.http.post(f"/api/v1/accounts/{account}/users", json={"name": "nul-token-user"},
                         headers=api.admin)
    assert user.status_code == 201, user.text
    response = api.http.post(f"/api/v1/users/{user.json()['id']}/tokens", json={"name": NUL},
                             headers=api.admin)
    assert_problem(response, 422, "name")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": NUL}, "name"),
        ({"name": "nul ean", "ean": NUL}, "ean"),
        ({"name": "nul point", "congestion-point": NUL}, "congestion-point"),
        ({"name": "nul device", "flex-model": [{"name": NUL, "soc-max": "1 kWh",
                                                "power-capacity": "1 kW"}]},
         "flex-model[0].name"),
        ({"name": "nul context", "flex-context": {"consumption-price": "5\x00 EUR/MWh"}},
         "flex-context.consumption-price"),
    ],
)
def test_nul_in_a_site(api: ApiHarness, body: dict[str, Any], field: str) -> None:
    assert_problem(api.http.post("/api/v1/sites", json=body, headers=api.admin), 422, field)


def test_nul_in_sensor_portfolio_and_series(api: ApiHarness) -> None:
    assert_problem(api.http.post("/api/v1/sensors", json={"name": NUL, "unit": "kW"},
                                 headers=api.admin), 422, "name")
    site = api.http.post("/api/v1/sites", json={"name": "for nul portfolio"}, headers=api.admin)
    assert site.status_code == 201, site.text
    assert_problem(api.http.post("/api/v1/portfolios",
                                 json={"name": NUL, "sites": [site.json()["id"]]},
                                 headers=api.admin), 422, "name")
    sensor = api.http.post("/api/v1/sensors", json={"name": "nul source", "unit": "kW"},
                           headers=api.admin)
    assert sensor.status_code == 201, sensor.text
    response = api.http.post(
        f"/api/v1/sensors/{sensor.json()['id']}/data",
        json={"start": "2026-01-01T00:00:00+00:00", "values": [1.0], "source": NUL},
        headers=api.admin,
    )
    assert_problem(response, 422, "source")


def test_nul_in_a_job_request(api: ApiHarness) -> None:
    body = json.loads(EXAMPLE.read_text())
    body["flex-model"] = [{**body["flex-model"], "name": NUL}]
    response = api.http.post("/api/v1/scheduling-job/storage", json=body, headers=api.admin)
    assert_problem(response, 422, "flex-model[0].name")


def test_renaming_a_site_onto_an_existing_name(api: ApiHarness) -> None:
    first = api.http.post("/api/v1/sites", json={"name": "rename one"}, headers=api.admin)
    second = api.http.post("/api/v1/sites", json={"name": "rename two"}, headers=api.admin)
    assert first.status_code == second.status_code == 201
    response = api.http.put(f"/api/v1/sites/{second.json()['id']}",
                            json={"name": "rename one"}, headers=api.admin)
    body = assert_problem(response, 409)
    assert "rename one" in body["detail"]
    # nothing changed, and a free name still works
    assert api.http.get(f"/api/v1/sites/{second.json()['id']}",
                        headers=api.admin).json()["name"] == "rename two"
    renamed = api.http.put(f"/api/v1/sites/{second.json()['id']}",
                           json={"name": "rename three"}, headers=api.admin)
    assert renamed.status_code == 200 and renamed.json()["name"] == "rename three"


@pytest.mark.parametrize("path", ["/api/v1/sites/{}", "/api/v1/portfolios/{}",
                                  "/api/v1/scheduling-job/{}"])
def test_ids_no_record_can_have(api: ApiHarness, path: str) -> None:
    for bad in (2**40, "x%00y"):
        response = api.http.get(path.format(bad), headers=api.admin)
        assert response.status_code in (404, 422), response.text
        assert_problem(response, response.status_code)


def test_routes_raise_domain_errors_only() -> None:
    """Issue 12: one error vocabulary. Routes (and the dependencies and lookups they share)
    raise vpp.errors' tree, rendered once in api/problems.py: no HTTPException; and no
    fake Caller is built to reach a lookup (UFTP and GOPACS use an AccountScope)."""
    import ast
    from pathlib import Path

    api = Path(__file__).resolve().parent.parent / "api"
    shared = [api / "deps.py", api / "references.py", api / "congestion.py"]
    paths = [*sorted((api / "routes").glob("*.py")), *sorted((api / "uftp").glob("*.py")),
             *shared]
    offenders = [
        f"{path.name}:{node.lineno}"
        for path in paths
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Name | ast.alias)
        and getattr(node, "id", getattr(node, "name", "")) == "HTTPException"
    ]
    assert offenders == []
    for path in [api / "congestion.py", *sorted((api / "uftp").glob("*.py"))]:
        assert "Caller(" not in path.read_text(), path
