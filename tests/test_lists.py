"""Issue 11 item 7, "Lists that scale": cursor pagination and filters on the list routes
(jobs, sites, sensors, portfolios, UFTP messages), started/finished times in the job list,
and 422 problem+json naming the field for a bad cursor or filter; on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_harness import ApiHarness, assert_problem, harness

from api import pages
from store import repository as repo
from store.tables import SchedulingJob

pytest_plugins = ["db_fixtures"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ApiHarness]:
    with harness(request.param, tmp_path_factory.mktemp(f"lists-{request.param}")) as h:
        yield h


def _pages(api: ApiHarness, url: str, headers: dict[str, str]) -> list[list[dict[str, Any]]]:
    """Every page of a list, following its ``Link: rel="next"`` header."""
    out = []
    while True:
        response = api.http.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), list)  # the body stays a JSON list
        out.append(response.json())
        link = response.headers.get("Link")
        if link is None:
            assert "X-Next-Cursor" not in response.headers
            return out
        assert link.endswith('>; rel="next"')
        url = link[1: link.index(">")]
        assert f"cursor={response.headers['X-Next-Cursor']}" in url
        assert len(out) < 50


def _account(api: ApiHarness, name: str) -> tuple[dict[str, str], int]:
    headers = api.account(name)
    me = api.http.get("/api/v1/me", headers=headers).json()
    return headers, int(me["account"]["id"])


@pytest.fixture(scope="module")
def jobs(api: ApiHarness) -> tuple[dict[str, str], int, list[str]]:
    """An account with 7 jobs: storage (queued, running, finished) and portfolio ones, two of
    them created at the same instant (the cursor must break the tie)."""
    headers, account_id = _account(api, "lister")
    base = datetime(2026, 3, 1, tzinfo=UTC)
    made = []
    with api.app.state.sessions.begin() as session:
        account = session.get(repo.Account, account_id)
        for i, (kind, created) in enumerate([
            ("storage", base), ("storage", base + timedelta(hours=1)),
            ("portfolio", base + timedelta(hours=2)), ("portfolio", base + timedelta(hours=2)),
            ("storage", base + timedelta(hours=3)), ("shifting", base + timedelta(hours=4)),
            ("storage", base + timedelta(hours=5)),
        ]):
            job = repo.create_job(session, kind, {"i": i}, account=account)
            job.created_at = created
            made.append(job.id)
        session.flush()
        repo.set_job_status(session, made[0], "running")
        repo.set_job_status(session, made[0], "finished", result={})
        repo.set_job_status(session, made[1], "running")
    return headers, account_id, made


def test_job_pages_cover_every_job_once_newest_first(
    api: ApiHarness, jobs: tuple[dict[str, str], int, list[str]]
) -> None:
    headers, _, made = jobs
    got = _pages(api, "/api/v1/scheduling-jobs?limit=2", headers)
    assert [len(p) for p in got] == [2, 2, 2, 1]
    flat = [j["job"] for p in got for j in p]
    assert sorted(flat) == sorted(made) and len(set(flat)) == 7
    created = [j["created"] for p in got for j in p]
    assert created == sorted(created, reverse=True)
    # a page exactly as long as what is left has no next page
    assert len(_pages(api, "/api/v1/scheduling-jobs?limit=7", headers)) == 1


def test_job_list_has_started_and_finished(
    api: ApiHarness, jobs: tuple[dict[str, str], int, list[str]]
) -> None:
    headers, _, made = jobs
    rows = {j["job"]: j for j in api.http.get("/api/v1/scheduling-jobs", headers=headers).json()}
    assert rows[made[0]]["status"] == "finished"
    assert rows[made[0]]["started"] is not None and rows[made[0]]["finished"] is not None
    assert rows[made[1]]["started"] is not None and rows[made[1]]["finished"] is None
    assert rows[made[2]]["started"] is None and rows[made[2]]["finished"] is None


def test_job_filters(api: ApiHarness, jobs: tuple[dict[str, str], int, list[str]]) -> None:
    headers, _, made = jobs

    def ids(query: str) -> set[str]:
        return {j["job"] for p in _pages(api, f"/api/v1/scheduling-jobs?limit=1&{query}", headers)
                for j in p}

    assert ids("kind=portfolio") == {made[2], made[3]}
    assert ids("kind=storage&status=queued") == {made[4], made[6]}
    assert ids("status=finished") == {made[0]}
    assert ids("created-after=2026-03-01T02:00:00Z&created-before=2026-03-01T04:00:00%2B00:00") \
        == {made[2], made[3], made[4]}


def test_job_list_filters_by_stored_portfolio(api: ApiHarness) -> None:
    headers, account_id = _account(api, "portfolio-lister")
    site = api.http.post("/api/v1/sites", headers=headers, json={"name": "s"}).json()
    portfolio_id = api.http.post("/api/v1/portfolios", headers=headers,
                                 json={"name": "p", "sites": [site["id"]]}).json()["id"]
    with api.app.state.sessions.begin() as session:
        account = session.get(repo.Account, account_id)
        portfolio = session.get(repo.Portfolio, portfolio_id)
        mine = repo.create_job(session, "portfolio", {}, account=account, portfolio=portfolio)
        repo.create_job(session, "portfolio", {}, account=account)
        mine_id = mine.id
    rows = api.http.get(f"/api/v1/scheduling-jobs?portfolio={portfolio_id}", headers=headers)
    assert [j["job"] for j in rows.json()] == [mine_id]


def test_job_list_filters_by_stored_site(api: ApiHarness) -> None:
    """``?site=``: the jobs that scheduled the stored site, alone (``"site": id``) or in a
    stored portfolio; not another site's, not a request that named no stored site."""
    headers, account_id = _account(api, "site-lister")
    battery = {"soc-at-start": "5 kWh", "soc-max": "10 kWh", "power-capacity": "5 kW"}
    ids = [api.http.post("/api/v1/sites", headers=headers,
                         json={"name": name, "flex-model": [{"name": "b", **battery}]}
                         ).json()["id"] for name in ("one", "two")]
    window = {"start": "2026-03-02T00:00:00+01:00", "duration": "PT2H",
              "flex-context": {"consumption-price": "50 EUR/MWh"}}
    posted = [api.http.post("/api/v1/scheduling-job/storage", headers=headers,
                            json={"site": site_id, **window}) for site_id in ids]
    assert [r.status_code for r in posted] == [202, 202], posted[0].text
    anonymous = api.http.post("/api/v1/scheduling-job/storage", headers=headers, json={
        **window, "flex-model": battery})
    assert anonymous.status_code == 202, anonymous.text
    portfolio_id = api.http.post("/api/v1/portfolios", headers=headers,
                                 json={"name": "both", "sites": ids}).json()["id"]
    with api.app.state.sessions.begin() as session:
        in_portfolio = repo.create_job(
            session, "portfolio", {}, account=session.get(repo.Account, account_id),
            portfolio=session.get(repo.Portfolio, portfolio_id)).id

    def listed(site_id: int) -> set[str]:
        rows = api.http.get(f"/api/v1/scheduling-jobs?site={site_id}", headers=headers)
        assert rows.status_code == 200, rows.text
        return {j["job"] for j in rows.json()}

    assert listed(ids[0]) == {posted[0].json()["job"], in_portfolio}
    assert listed(ids[1]) == {posted[1].json()["job"], in_portfolio}
    other, _ = _account(api, "site-lister-other")  # another account sees none of them
    assert api.http.get(f"/api/v1/scheduling-jobs?site={ids[0]}", headers=other).json() == []


def test_job_list_pages_do_not_leak_other_accounts(
    api: ApiHarness, jobs: tuple[dict[str, str], int, list[str]]
) -> None:
    other, _ = _account(api, "other-lister")
    assert _pages(api, "/api/v1/scheduling-jobs?limit=1", other) == [[]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=bogus", "cursor"),
        ("cursor=", "cursor"),
        (f"cursor={pages.encode('sites', [1])}", "cursor"),  # another list's cursor
        (f"cursor={pages.encode('scheduling-jobs', ['yesterday', 'x'])}", "cursor"),
        (f"cursor={pages.encode('scheduling-jobs', ['2026-03-01T00:00:00', 'x'])}", "cursor"),
        ("kind=bogus", "kind"),
        ("portfolio=0", "portfolio"),
        ("portfolio=99999999999", "portfolio"),
        ("created-after=yesterday", "created-after"),
        ("created-after=2026-03-01T00:00:00", "created-after"),  # naive
        ("created-before=0.5", "created-before"),  # not a Unix time: the spec says date-time
        ("created-after=1700000000", "created-after"),
        ("site=0", "site"),
        ("created-after=2026-03-02T00:00:00Z&created-before=2026-03-01T00:00:00Z",
         "created-before"),
        ("limit=0", "limit"),
        ("status=bogus", "status"),
    ],
)
def test_job_list_rejects_bad_cursor_and_filters(api: ApiHarness, query: str, field: str) -> None:
    response = api.http.get(f"/api/v1/scheduling-jobs?{query}", headers=api.admin)
    assert_problem(response, 422, field)


def test_sites_sensors_and_portfolios_page_and_filter(api: ApiHarness) -> None:
    headers, _ = _account(api, "many")
    site_ids = []
    for i in range(5):
        site = api.http.post("/api/v1/sites", headers=headers, json={
            "name": f"site {i}", "congestion-point": "ean.1" if i % 2 else "ean.2"})
        assert site.status_code == 201, site.text
        site_ids.append(site.json()["id"])
    for i, site_id in enumerate(site_ids):
        sensor = api.http.post("/api/v1/sensors", headers=headers, json={
            "name": f"load {i}", "unit": "kW", "site": site_id if i < 3 else None})
        assert sensor.status_code == 201, sensor.text
        portfolio = api.http.post("/api/v1/portfolios", headers=headers, json={
            "name": f"p {i}", "sites": [site_id], "congestion-point": f"ean.{i % 2 + 1}"})
        assert portfolio.status_code == 201, portfolio.text

    for path in ("sites", "sensors", "portfolios"):
        got = _pages(api, f"/api/v1/{path}?limit=2", headers)
        assert [len(p) for p in got] == [2, 2, 1], path
        ids = [r["id"] for p in got for r in p]
        assert ids == sorted(ids) and len(set(ids)) == 5
        # without a limit: every one on one page (the default page is 100)
        assert len(_pages(api, f"/api/v1/{path}", headers)) == 1

    odd = [s["name"] for p in _pages(api, "/api/v1/sites?limit=1&congestion-point=ean.1",
                                     headers) for s in p]
    assert odd == ["site 1", "site 3"]
    even = [p["name"] for page in _pages(api, "/api/v1/portfolios?congestion-point=ean.1",
                                         headers) for p in page]
    assert even == ["p 0", "p 2", "p 4"]
    of_site = api.http.get(f"/api/v1/sensors?site={site_ids[1]}", headers=headers).json()
    assert [s["name"] for s in of_site] == ["load 1"]


@pytest.mark.parametrize("path", ["sites", "sensors", "portfolios", "uftp/messages"])
@pytest.mark.parametrize(
    ("query", "field"),
    [("cursor=%%%", "cursor"), ("cursor=WzFd", "cursor"), ("limit=0", "limit"),
     ("cursor=a%00b", "cursor")],
)
def test_other_lists_reject_bad_cursors(api: ApiHarness, path: str, query: str, field: str
                                        ) -> None:
    assert_problem(api.http.get(f"/api/v1/{path}?{query}", headers=api.admin), 422, field)


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [("sites", "congestion-point=", "congestion-point"),
     ("portfolios", "congestion-point=a%00b", "congestion-point"),
     ("sensors", "site=0", "site"),
     ("uftp/messages", "created-before=soon", "created-before"),
     ("uftp/messages", "created-after=2026-03-02T00:00:00Z&created-before=2026-03-01T00:00:00Z",
      "created-before")],
)
def test_other_lists_reject_bad_filters(api: ApiHarness, path: str, query: str, field: str
                                        ) -> None:
    assert_problem(api.http.get(f"/api/v1/{path}?{query}", headers=api.admin), 422, field)


def test_uftp_messages_page_newest_first(api: ApiHarness) -> None:
    from store import uftp as store

    with api.app.state.sessions.begin() as session:
        made = [
            store.enqueue(session, message_type="FlexRequestResponse", xml=f"<x n='{i}'/>",
                          message_id=f"m-{i}", conversation_id=f"c-{i}",
                          sender_domain="agr.example", recipient_domain="dso.example").id
            for i in range(5)
        ]
        every = {m.id for m in store.list_messages(session, limit=1000)}
    got = _pages(api, "/api/v1/uftp/messages?limit=2", api.admin)  # a platform admin
    ids = [m["id"] for p in got for m in p]
    assert ids == sorted(ids, reverse=True) and set(ids) == every and len(ids) == len(every)
    assert set(made) <= set(ids)
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+", "%2B")
    assert api.http.get(f"/api/v1/uftp/messages?created-after={soon}",
                        headers=api.admin).json() == []


def test_job_cursor_survives_equal_timestamps(
    api: ApiHarness, jobs: tuple[dict[str, str], int, list[str]]
) -> None:
    headers, _, made = jobs
    tied = sorted(made[2:4])
    with api.app.state.sessions.begin() as session:
        rows = session.query(SchedulingJob).filter(SchedulingJob.id.in_(tied)).all()
        assert len({r.created_at for r in rows}) == 1
    got = _pages(api, "/api/v1/scheduling-jobs?limit=1&kind=portfolio", headers)
    assert [p[0]["job"] for p in got] == tied
