"""Issue 11, item 2: accounts stay apart in UFTP and GOPACS as they do for sites and jobs.

Two client accounts of the platform, A and B, each with an admin. A registers a DSO peer;
its messages, offers and commitments are stored as the UFTP flow would store them. Every
UFTP route, and the GOPACS bid, is then tried by B: B sees none of A's things, cannot
change them, and cannot take over A's domain. The platform admin (the explicit
platform-admin role) sees every account's, and those of no account.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uftp_peer as peer
from api_harness import ApiHarness, assert_problem, harness

from store import repository as repo
from store import uftp as store
from store.tables import UFTP_STATUSES, UftpParticipant

pytest_plugins = ["db_fixtures"]

DSO = "dso-a.example.com"
CP = "ean.871685900000000001"
EAN = "871685900000000011"
START = datetime(2030, 1, 1, tzinfo=UTC)


def _endpoint() -> str:
    # a closed local port: the worker's delivery attempts fail on loopback, never leave it
    return f"http://127.0.0.1:{peer.free_port()}/shapeshifter/api/v3/message"


def _key() -> str:
    return base64.b64encode(bytes(range(32))).decode()


@dataclass
class World:
    api: ApiHarness
    a: dict[str, str]
    b: dict[str, str]
    a_account: int
    offer: int
    commitment: int
    message_ids: set[int]
    unknown_message: int


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    agr_key, _ = peer.keypair()
    with (
        peer.agr_environment(agr_key),
        harness(request.param, tmp_path_factory.mktemp(f"iso-{request.param}")) as api,
    ):
        a, b = api.account("iso-a"), api.account("iso-b")
        a_account = api.http.get("/api/v1/me", headers=a).json()["account"]["id"]
        registered = api.http.post(
            "/api/v1/uftp/participants",
            json={"domain": DSO, "role": "DSO", "public-key": _key(), "endpoint": _endpoint()},
            headers=a,
        )
        assert registered.status_code == 201, registered.text
        site = api.http.post("/api/v1/sites", json={"name": "a-site", "ean": EAN,
                                                     "congestion-point": CP}, headers=a)
        assert site.status_code == 201, site.text
        with api.app.state.sessions.begin() as session:
            world = _stored_flow(session, a_account)
        yield World(api, a, b, a_account, *world)


def _stored_flow(session: Any, account: int) -> tuple[int, int, set[int], int]:
    """What a FlexRequest -> FlexOffer -> FlexOrder flow with A's DSO stores."""
    inbound, _ = store.record_inbound(
        session, message_type="FlexRequest", xml="<FlexRequest/>", status="processed",
        message_id="00000000-0000-0000-0000-000000000001", conversation_id="c1",
        sender_domain=DSO, recipient_domain="agr.example.com", congestion_point=CP,
    )
    outbound = store.enqueue(
        session, message_type="FlexOffer", xml="<FlexOffer/>",
        message_id="00000000-0000-0000-0000-000000000002", conversation_id="c1",
        sender_domain="agr.example.com", recipient_domain=DSO, congestion_point=CP,
    )
    # an outbound row the worker must not try to deliver during the test
    outbound.status, outbound.next_attempt_at = "sent", None
    stranger, _ = store.record_inbound(
        session, message_type="FlexRequest", xml="<x/>", status="rejected",
        message_id="00000000-0000-0000-0000-000000000003", sender_domain="nobody.example.com",
        rejection_reason="Unknown Sender",
    )
    offer = store.save_offer(
        session, message_id="00000000-0000-0000-0000-000000000004",
        flex_request_message_id=inbound.message_id, dso_domain=DSO, congestion_point=CP,
        account_id=account, period="2030-01-01", time_zone="Europe/Amsterdam", start=START,
        resolution_seconds=900, isps=[{"start": 1, "duration": 1, "power": 1000}],
        baseline=[1.0], option_reference="o", price=1.0, currency="EUR",
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    ordered = store.save_offer(
        session, message_id="00000000-0000-0000-0000-000000000005",
        flex_request_message_id=inbound.message_id, dso_domain=DSO, congestion_point=CP,
        account_id=account, period="2030-01-01", time_zone="Europe/Amsterdam", start=START,
        resolution_seconds=900, isps=[{"start": 1, "duration": 1, "power": 1000}],
        baseline=[1.0], option_reference="o", price=1.0, currency="EUR",
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    commitment = store.save_commitment(
        session, order_message_id="00000000-0000-0000-0000-000000000006", offer_id=ordered.id,
        dso_domain=DSO, congestion_point=CP, account_id=account, order_reference="r1",
        period="2030-01-01", start=START, end=START + timedelta(minutes=15),
        resolution_seconds=900, isps=[{"start": 1, "duration": 1, "power": 1000}],
        lower=[None], upper=[1.0], price=1.0, currency="EUR",
    )
    return offer.id, commitment.id, {inbound.id, outbound.id}, stranger.id


# --------------------------------------------------------------------------- participants


def test_participants_are_the_accounts_own(world: World) -> None:
    api = world.api
    mine = api.http.get("/api/v1/uftp/participants", headers=world.a).json()
    assert [p["domain"] for p in mine] == [DSO]
    assert api.http.get("/api/v1/uftp/participants", headers=world.b).json() == []
    everything = api.http.get("/api/v1/uftp/participants", headers=api.admin).json()
    assert DSO in [p["domain"] for p in everything]


def test_another_accounts_domain_cannot_be_deleted_or_taken(world: World) -> None:
    api = world.api
    before = api.http.get("/api/v1/uftp/participants", headers=world.a).json()
    assert_problem(api.http.delete(f"/api/v1/uftp/participants/{DSO}", headers=world.b), 404)
    taken = api.http.post(
        "/api/v1/uftp/participants",
        json={"domain": DSO, "role": "DSO", "public-key": _key(), "endpoint": _endpoint()},
        headers=world.b,
    )
    body = assert_problem(taken, 409)
    assert "another account" in body["detail"]
    assert api.http.get("/api/v1/uftp/participants", headers=world.a).json() == before
    again = api.http.post(
        "/api/v1/uftp/participants",
        json={"domain": DSO, "role": "DSO", "public-key": _key(), "endpoint": _endpoint()},
        headers=world.a,
    )
    assert "your account" in assert_problem(again, 409)["detail"]


def test_an_account_deletes_its_own_peer(world: World) -> None:
    api = world.api
    domain = "own-peer.example.com"
    created = api.http.post(
        "/api/v1/uftp/participants",
        json={"domain": domain, "role": "CRO", "public-key": _key(), "endpoint": _endpoint()},
        headers=world.b,
    )
    assert created.status_code == 201, created.text
    assert_problem(api.http.delete(f"/api/v1/uftp/participants/{domain}", headers=world.a), 404)
    assert api.http.delete(f"/api/v1/uftp/participants/{domain}",
                           headers=world.b).status_code == 204


# --------------------------------------------------------------------------- messages


def test_messages_belong_to_the_peers_account(world: World) -> None:
    api = world.api
    mine = {m["id"] for m in api.http.get("/api/v1/uftp/messages", headers=world.a).json()}
    assert mine == world.message_ids
    assert api.http.get("/api/v1/uftp/messages", headers=world.b).json() == []
    every = {m["id"] for m in api.http.get("/api/v1/uftp/messages", headers=api.admin).json()}
    assert every >= world.message_ids | {world.unknown_message}


def test_message_filters_are_checked(world: World) -> None:
    api = world.api
    for query, field in (("status=bogus", "status"), ("limit=0", "limit"),
                         ("direction=sideways", "direction")):
        response = api.http.get(f"/api/v1/uftp/messages?{query}", headers=world.a)
        assert_problem(response, 422, field)
    response = api.http.get("/api/v1/uftp/messages", params={"type": "a\x00b"}, headers=world.a)
    assert_problem(response, 422, "type")


def test_message_statuses_are_the_stored_ones() -> None:
    from typing import get_args

    from api.routes.uftp import MessageStatus

    assert set(get_args(MessageStatus)) == set(UFTP_STATUSES)


# --------------------------------------------------------------------------- offers


def test_offers_are_the_accounts_own(world: World) -> None:
    api = world.api
    mine = api.http.get("/api/v1/uftp/flex-offers", headers=world.a).json()
    assert world.offer in [o["id"] for o in mine]
    assert api.http.get("/api/v1/uftp/flex-offers", headers=world.b).json() == []
    every = api.http.get("/api/v1/uftp/flex-offers", headers=api.admin).json()
    assert world.offer in [o["id"] for o in every]


def test_another_accounts_offer_cannot_be_revoked(world: World) -> None:
    api = world.api
    response = api.http.post(f"/api/v1/uftp/flex-offers/{world.offer}/revoke", headers=world.b)
    assert_problem(response, 404)
    offer = next(o for o in api.http.get("/api/v1/uftp/flex-offers", headers=world.a).json()
                 if o["id"] == world.offer)
    assert offer["state"] == "open"


# --------------------------------------------------------------------------- commitments


def test_commitments_are_the_accounts_own(world: World) -> None:
    api = world.api
    mine = api.http.get("/api/v1/uftp/commitments", headers=world.a).json()
    assert [c["id"] for c in mine] == [world.commitment]
    assert api.http.get("/api/v1/uftp/commitments", headers=world.b).json() == []
    every = api.http.get("/api/v1/uftp/commitments", headers=api.admin).json()
    assert world.commitment in [c["id"] for c in every]


# --------------------------------------------------------------------------- sending


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/api/v1/uftp/d-prognosis",
         {"congestion-point": CP, "date": "2030-01-01", "dso": DSO}, "dso"),
        ("/api/v1/uftp/d-prognosis", {"congestion-point": CP, "date": "2030-01-01"}, "dso"),
        ("/api/v1/uftp/metering", {"site": 1, "sensor": 1, "date": "2030-01-01", "dso": DSO},
         "dso"),
        ("/api/v1/uftp/agr-portfolio-update", {"start-period": "2030-01-01"}, "cro"),
        ("/api/v1/uftp/agr-portfolio-query", {"period": "2030-01-01"}, "cro"),
    ],
)
def test_nothing_is_sent_to_another_accounts_peer(
    world: World, route: str, body: dict[str, Any], field: str
) -> None:
    api = world.api
    before = len(api.http.get("/api/v1/uftp/messages", headers=api.admin).json())
    assert_problem(api.http.post(route, json=body, headers=world.b), 422, field)
    assert len(api.http.get("/api/v1/uftp/messages", headers=api.admin).json()) == before


def test_the_owner_reaches_its_peer(world: World) -> None:
    # the DSO is found (the request gets as far as the congestion point, which has no sites
    # scheduled for that day in this test: a 422 on the congestion point, not on the DSO)
    response = world.api.http.post(
        "/api/v1/uftp/d-prognosis",
        json={"congestion-point": "ean.871685900000000999", "date": "2030-01-01", "dso": DSO},
        headers=world.a,
    )
    assert_problem(response, 422, "congestion-point")


# --------------------------------------------------------------------------- GOPACS


def test_a_redispatch_bid_uses_only_the_callers_sites(world: World) -> None:
    api = world.api
    announcement = {
        "congestion-point": CP, "direction": "buy", "start": "2030-01-01T00:00:00+00:00",
        "end": "2030-01-01T01:00:00+00:00", "volume": "0.001 MW", "resolution": "PT15M",
    }
    response = api.http.post("/api/v1/gopacs/redispatch-bid", json=announcement,
                             headers=world.b)
    body = assert_problem(response, 404)  # B has no site there: A's do not count
    assert "a-site" not in response.text and EAN not in response.text, body


# --------------------------------------------------------------------------- the role


def test_platform_admin_is_an_explicit_role(world: World) -> None:
    api = world.api
    assert api.http.get("/api/v1/me", headers=api.admin).json()["platform-admin"] is True
    assert api.http.get("/api/v1/me", headers=world.a).json()["platform-admin"] is False
    with api.app.state.sessions.begin() as session:
        # a consultancy admin that is not the platform's sees its clients, not the platform
        consultancy = repo.get_or_create_account(session, "iso-consultancy", "consultancy")
        user = repo.create_user(session, consultancy, "iso-consultant", "admin")
        _, token = repo.issue_token(session, user, "t")
        assert not user.platform_admin
    headers = {"Authorization": f"Bearer {token}"}
    assert api.http.get("/api/v1/uftp/participants", headers=headers).json() == []
    assert api.http.get("/api/v1/uftp/messages", headers=headers).json() == []


def test_participant_account_is_kept(world: World) -> None:
    with world.api.app.state.sessions.begin() as session:
        row = store.get_participant(session, DSO)
        assert isinstance(row, UftpParticipant) and row.account_id == world.a_account
