"""Annotations (issue 14 item 6): stored on accounts, sites (a device of one) and sensors
over REST, seen only by the accounts that may see their target; a site's outage makes its
devices unavailable in the jobs that schedule the stored site."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_harness import ApiHarness, assert_problem, harness

from actors.job_service import execute_job
from store import repository as repo
from vpp.outages import apply_outages, subtract

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


# -- the pure part ------------------------------------------------------------------------


def test_subtract_cuts_windows_by_hand() -> None:
    # [0, 10) minus [2, 3) and [5, 12): [0, 2), [3, 5)
    assert subtract([(h(0), h(10))], [(h(2), h(3)), (h(5), h(12))]) == [
        (h(0), h(2)),
        (h(3), h(5)),
    ]
    assert subtract([(h(0), h(1))], [(h(1), h(2))]) == [(h(0), h(1))]  # touching: no cut
    assert subtract([(h(0), h(1))], [(h(0), h(1))]) == []


def test_apply_outages_keeps_a_device_untouched_without_overlap() -> None:
    device = {"name": "ev", "soc-at-start": "1 kWh"}
    assert apply_outages(device, [(h(5), h(6))], h(0), h(4)) is device
    cut = apply_outages(device, [(h(1), h(2))], h(0), h(4))
    assert cut["availability"] == [
        {"start": h(0).isoformat(), "end": h(1).isoformat()},
        {"start": h(2).isoformat(), "end": h(4).isoformat()},
    ]
    windowed = {**device, "availability": [{"start": h(0).isoformat(), "duration": "PT3H"}]}
    assert apply_outages(windowed, [(h(1), h(2))], h(0), h(4))["availability"] == [
        {"start": h(0).isoformat(), "end": h(1).isoformat()},
        {"start": h(2).isoformat(), "end": h(3).isoformat()},
    ]
    broken = {**device, "availability": [{"start": "soon"}]}
    assert apply_outages(broken, [(h(1), h(2))], h(0), h(4)) is broken  # validation names it


# -- REST ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    with harness("sqlite", Path(tmp_path_factory.mktemp("annotations"))) as h:
        yield h


BATTERY = {
    "name": "battery",
    "type": "storage",
    "soc-at-start": "0 kWh",
    "soc-max": "4 kWh",
    "power-capacity": "2 kW",
    "soc-targets": [{"datetime": h(4).isoformat(), "value": "4 kWh"}],
}


def _site(api: ApiHarness, headers: dict[str, str], name: str) -> int:
    body = {"name": name, "flex-model": [BATTERY], "flex-context": {}}
    response = api.http.post("/api/v1/sites", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _note(api: ApiHarness, headers: dict[str, str], **body: Any) -> Any:
    body = {"type": "outage", "start": h(0).isoformat(), "end": h(2).isoformat(), **body}
    return api.http.post("/api/v1/annotations", json=body, headers=headers)


def test_annotations_are_stored_listed_and_deleted(api: ApiHarness) -> None:
    site = _site(api, api.admin, "annotated")
    sensor = api.http.post(
        "/api/v1/sensors",
        json={"name": "annotated-prices", "unit": "EUR/MWh", "resolution": "PT1H"},
        headers=api.admin,
    ).json()["id"]
    made = [
        _note(api, api.admin, site=site, device="battery", content="inverter swap"),
        _note(api, api.admin, type="holiday", content="Easter Monday"),
        _note(
            api,
            api.admin,
            type="label",
            sensor=sensor,
            start=h(3).isoformat(),
            end=h(4).isoformat(),
        ),
    ]
    assert [r.status_code for r in made] == [201, 201, 201]
    first = made[0].json()
    assert made[0].headers["Location"] == f"/api/v1/annotations/{first['id']}"
    assert (first["site"], first["device"], first["sensor"]) == (site, "battery", None)
    listed = api.http.get(f"/api/v1/annotations?site={site}", headers=api.admin).json()
    assert [n["id"] for n in listed] == [first["id"]]
    overlapping = api.http.get(
        "/api/v1/annotations",
        params={"start": h(2.5).isoformat(), "end": h(5).isoformat()},
        headers=api.admin,
    ).json()
    assert [n["type"] for n in overlapping] == ["label"]
    got = api.http.get(f"/api/v1/annotations/{first['id']}", headers=api.admin)
    assert got.json() == first
    assert (
        api.http.delete(f"/api/v1/annotations/{first['id']}", headers=api.admin).status_code == 204
    )
    assert_problem(api.http.get(f"/api/v1/annotations/{first['id']}", headers=api.admin), 404)


def test_bad_annotations_name_the_field(api: ApiHarness) -> None:
    site = _site(api, api.admin, "strict")
    for body, field in (
        ({"end": h(0).isoformat()}, "end"),
        ({"site": site, "sensor": 1}, "sensor"),
        ({"device": "battery"}, "device"),
        ({"site": site, "device": "boiler"}, "device"),
        ({"type": "party"}, "type"),
        ({"start": "2026-03-02T00:00:00"}, "start"),
        ({"content": "x" * 1001}, "content"),
    ):
        response = _note(api, api.admin, **body)
        assert response.status_code == 422, (body, response.text)
        fields = [e["field"] for e in response.json()["errors"]]
        assert any(f == field or f.startswith(field) for f in fields), (body, fields)


def test_another_accounts_annotations_are_invisible(api: ApiHarness) -> None:
    alice = api.account("alice-annotations")
    bob = api.account("bob-annotations")
    site = _site(api, alice, "alice-home")
    note = _note(api, alice, site=site).json()
    assert_problem(api.http.get(f"/api/v1/annotations/{note['id']}", headers=bob), 404)
    assert_problem(api.http.delete(f"/api/v1/annotations/{note['id']}", headers=bob), 404)
    assert_problem(_note(api, bob, site=site), 404)
    assert api.http.get("/api/v1/annotations", headers=bob).json() == []
    viewer = api.account("carol-annotations", role="viewer")
    assert_problem(_note(api, viewer), 403)


def test_an_outage_makes_the_device_unavailable_in_a_stored_sites_job(api: ApiHarness) -> None:
    """Hourly prices 10, 20, 30, 40 EUR/MWh; the battery must reach 4 kWh at 04:00 at 2 kW.
    Free, it charges in the two cheapest hours: 2 kWh at 10 + 2 kWh at 20 = 0.06 EUR. Out
    of service 00:00-02:00, it must charge in the last two: 2 at 30 + 2 at 40 = 0.14 EUR."""
    site = _site(api, api.admin, "outage-home")
    assert _note(api, api.admin, site=site, device="battery").status_code == 201
    _note(
        api, api.admin, type="maintenance", site=site, start=h(2).isoformat(), end=h(4).isoformat()
    )  # not an outage: no effect
    body = {
        "site": site,
        "start": h(0).isoformat(),
        "duration": "PT4H",
        "resolution": "PT1H",
        "flex-context": {"consumption-price": {"values": [10, 20, 30, 40], "unit": "EUR/MWh"}},
    }
    job = api.http.post("/api/v1/scheduling-job/storage", json=body, headers=api.admin)
    assert job.status_code == 202, job.text
    sessions = api.app.state.sessions
    job_id = job.json()["job"]
    with sessions.begin() as session:
        repo.set_job_status(session, job_id, "running")
    assert execute_job(sessions, job_id) == "finished"
    with sessions.begin() as session:
        result = repo.get_job(session, job_id).result
    power = [round(v, 6) for v in result["devices"][0]["power"]["values"]]
    assert power == [0, 0, 2, 2]
    assert result["cost"]["value"] == pytest.approx(0.14)
    later = {**body, "start": h(2).isoformat()}  # [02:00, 06:00): after the outage
    later_job = api.http.post("/api/v1/scheduling-job/storage", json=later, headers=api.admin)
    assert later_job.status_code == 202, (
        later_job.text
    )  # the outage is over: the stored request is untouched
    with sessions.begin() as session:
        stored = repo.get_job(session, later_job.json()["job"]).request
    assert "availability" not in stored["flex-model"][0]


def test_public_holidays_are_imported_once_in_local_days(api: ApiHarness) -> None:
    """Easter Monday 2026 is 6 April (Easter Sunday 5 April); King's Day 27 April; both in
    summer time in Amsterdam (UTC+2), so the day starts at 22:00 UTC the evening before."""
    headers = api.account("holiday-importer")
    body = {"country": "NL", "years": [2026], "timezone": "Europe/Amsterdam"}
    made = api.http.post("/api/v1/holidays", json=body, headers=headers)
    assert made.status_code == 201, made.text
    days = {n["start"]: n for n in made.json()}
    assert "2026-04-05T22:00:00+00:00" in days  # Easter Monday
    assert "2026-04-26T22:00:00+00:00" in days  # King's Day
    assert "2025-12-24T23:00:00+00:00" not in days  # another year
    christmas = days["2026-12-24T23:00:00+00:00"]  # winter time: UTC+1
    assert (christmas["type"], christmas["site"], christmas["end"]) == (
        "holiday",
        None,
        "2026-12-25T23:00:00+00:00",
    )
    again = api.http.post("/api/v1/holidays", json=body, headers=headers)
    assert again.status_code == 201 and again.json() == []  # nothing twice
    for bad, field in (
        ({"country": "XX"}, "country"),
        ({"country": "DE", "subdivision": "XX"}, "subdivision"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"years": [3000]}, "years"),
        ({"years": []}, "years"),
    ):
        response = api.http.post("/api/v1/holidays", json={**body, **bad}, headers=headers)
        assert_problem(response, 422, field)


def test_the_python_client_annotates(api: ApiHarness) -> None:
    from vpp.client import Client

    token = api.admin["Authorization"].removeprefix("Bearer ")
    client = Client("http://testserver", token=token, transport=api.http._transport)
    site = _site(api, api.admin, "client-annotated")
    note = client.annotate("outage", h(1), h(2), "fuse", site=site, device="battery")
    assert (note["type"], note["site"], note["device"]) == ("outage", site, "battery")
    assert [n["id"] for n in client.list_annotations(site=site)] == [note["id"]]
    assert client.list_annotations(site=site, start=h(2), end=h(3)) == []
    client.delete_annotation(note["id"])
    assert client.list_annotations(site=site) == []
    assert client.import_holidays("BE", [2026], "Europe/Brussels")  # Belgium's, on the account
