"""UFTP as the aggregator, against a real DSO peer (shapeshifter-uftp's DSO service and
DSO→AGR client) on 127.0.0.1, on SQLite and PostgreSQL.

The API runs as the FastAPI app under uvicorn in this process (``tests/test_uftp_serve.py``
runs the main flow against ``vpp serve`` on Ray Serve). Keys and endpoints are injected on
both sides; DNS lookups raise. Offers, prices and schedules are checked against the
portfolio optimum recomputed here with ``tests/reference.py`` (its own HiGHS model).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dns.resolver
import httpx
import numpy as np
import pytest
import uftp_peer as peer
import uvicorn
from db_fixtures import fresh_database
from reference import portfolio_reference
from shapeshifter_uftp import ShapeshifterDsoAgrClient
from shapeshifter_uftp.exceptions import ClientTransportException
from shapeshifter_uftp.uftp import (
    AcceptedDisputed,
    AcceptedRejected,
    ContractSettlement,
    ContractSettlementISP,
    ContractSettlementPeriod,
    DPrognosis,
    FlexOffer,
    FlexOfferRevocation,
    FlexOrderResponse,
    FlexOrderSettlement,
    FlexOrderSettlementISP,
    FlexRequestResponse,
    FlexReservationUpdate,
    FlexReservationUpdateISP,
    FlexReservationUpdateResponse,
    FlexSettlement,
    FlexSettlementResponse,
    Metering,
    TestMessage,
    TestMessageResponse,
)
from sqlalchemy import create_engine, text
from xsdata.models.datatype import XmlDate, XmlDuration

pytest_plugins = ["db_fixtures"]

ADMIN_TOKEN = "vpp_uftp-test-admin-token"


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"DNS lookup attempted: {args}")

    monkeypatch.setattr(dns.resolver, "resolve", refuse)
    monkeypatch.setattr(dns.resolver.Resolver, "resolve", refuse)


@dataclass
class Agr:
    base: str
    url: str
    admin: httpx.Client
    agr_key: str
    agr_public: str
    dso_key: str
    dso_public: str
    dso_port: int
    agr_port: int
    day: date
    app: Any = None

    def dso(self) -> peer.DsoPeer:
        return peer.DsoPeer(self.dso_port, self.dso_key, self.agr_public, self.agr_port)

    def execute(self, sql: str, **params: Any) -> None:
        engine = create_engine(self.url)
        try:
            with engine.begin() as connection:
                connection.execute(text(sql), params)
        finally:
            engine.dispose()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(sql), params).all())
        finally:
            engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def agr(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agr]:
    from api.app import create_app

    agr_key, agr_public = peer.keypair()
    dso_key, dso_public = peer.keypair()
    with (
        peer.agr_environment(agr_key),
        fresh_database(request.param, tmp_path_factory.mktemp(f"uftp-{request.param}")) as url,
    ):
        peer.migrate_with_admin(url, ADMIN_TOKEN)
        app = create_app(url)
        port = peer.free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        peer.wait_until(lambda: server.started, 30, "the API started")
        base = f"http://127.0.0.1:{port}"
        admin = httpx.Client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
        dso_port = peer.free_port()
        peer.setup_agr(base, admin, dso_public, dso_port)
        yield Agr(base, url, admin, agr_key, agr_public, dso_key, dso_public, dso_port, port,
                  peer.next_full_day(), app)
        admin.close()
        app.state.uftp_worker.stop()
        server.should_exit = True
        thread.join(10)
        app.state.sessions.kw["bind"].dispose()


@pytest.fixture
def dso(agr: Agr) -> Iterator[peer.DsoPeer]:
    with agr.dso() as service:
        yield service


def offer_flow(agr: Agr, dso: peer.DsoPeer) -> tuple[Any, FlexOffer, float]:
    """FlexRequest → FlexRequestResponse + FlexOffer; returns (request, offer, latency s)."""
    message = peer.flex_request(agr.day)
    sent = time.monotonic()
    dso.client().send_flex_request(message)
    offer = dso.wait_for(FlexOffer, lambda m: m.flex_request_message_id == message.message_id)
    latency = time.monotonic() - sent
    response = dso.wait_for(FlexRequestResponse,
                            lambda m: m.flex_request_message_id == message.message_id)
    assert response.result == AcceptedRejected.ACCEPTED, response.rejection_reason
    return message, offer, latency


def check_offer(agr: Agr, offer: FlexOffer) -> np.ndarray:
    """The offer against the baseline and the price recomputed here; returns the baseline."""
    base = peer.reference_baseline(agr.day)
    assert base.status == "optimal"
    changes = peer.offer_changes(offer)
    for k in peer.REQUESTED:  # every requested ISP is offered, inside the requested range
        assert peer.MIN_POWER <= changes[k] <= peer.MAX_POWER
        flexed = base.total[k - 1] + changes[k] / 1000
        assert base.total[k - 1] + peer.MIN_POWER / 1000 - 1e-9 <= flexed
        assert flexed <= base.total[k - 1] + peer.MAX_POWER / 1000 + 1e-9
    stored = agr.admin.get(f"{agr.base}/api/v1/uftp/flex-offers").json()
    mine = next(o for o in stored if o["message-id"] == offer.message_id)
    np.testing.assert_allclose(mine["baseline"]["values"], base.total, atol=1e-4)
    # price = the cost of keeping the requested limits (margin 0), solved here
    limits = {k: base.total[k - 1] + peer.MAX_POWER / 1000 for k in peer.REQUESTED}
    floors = {k: -(base.total[k - 1] + peer.MIN_POWER / 1000) for k in peer.REQUESTED}
    flexed = portfolio_reference(peer.portfolio_request(agr.day, [{
        "max-consumption": peer.segments(agr.day, limits),
        "max-production": peer.segments(agr.day, floors)}]))
    assert float(offer.offer_options[0].price) == pytest.approx(
        flexed.cost - base.cost, rel=1e-4, abs=2e-4)
    return np.asarray(base.total)


def schedules_sum(agr: Agr, job: str) -> np.ndarray:
    rows = agr.rows("SELECT \"values\" FROM schedules WHERE job_id = :j AND device_name IS NULL",
                    j=job)
    return np.sum([json.loads(v) if isinstance(v, str) else v for (v,) in rows], axis=0)


def counts(agr: Agr) -> tuple[int, int, int]:
    return (
        agr.rows("SELECT COUNT(*) FROM schedules")[0][0],
        agr.rows("SELECT COUNT(*) FROM uftp_commitments")[0][0],
        agr.rows("SELECT COUNT(*) FROM scheduling_jobs")[0][0],
    )


def test_flex_request_offer_order_commitment(agr: Agr, dso: peer.DsoPeer) -> None:
    flex_flow(agr, dso)


def flex_flow(agr: Agr, dso: peer.DsoPeer) -> None:
    """FlexRequest → checked FlexOffer → FlexOrder → accepted, committed, rescheduled within
    the ordered limits, honoured by a later portfolio job."""
    _, offer, latency = offer_flow(agr, dso)
    base = check_offer(agr, offer)
    print(f"FlexRequest -> FlexOffer latency {latency:.2f} s (3 sites, 96 ISPs)")
    order = peer.order_for(offer)
    dso.client().send_flex_order(order)
    response = dso.wait_for(FlexOrderResponse,
                            lambda m: m.flex_order_message_id == order.message_id)
    assert response.result == AcceptedRejected.ACCEPTED, response.rejection_reason
    prognosis = dso.wait_for(DPrognosis, lambda m: m.conversation_id == order.conversation_id)
    # the stored schedule at the congestion point keeps the ordered limits at every ISP
    (job,) = agr.rows("SELECT job_id FROM schedules s JOIN sites ON s.site_id = sites.id "
                      "WHERE sites.congestion_point = :cp AND s.job_id IS NOT NULL "
                      "ORDER BY s.id DESC LIMIT 1", cp=peer.CONGESTION_POINT)[0:1]
    total = schedules_sum(agr, job[0])
    lower, upper = peer.order_bounds(peer.offer_changes(offer), base)
    assert upper, "the order reduces consumption somewhere"
    for k, bound in upper.items():
        assert total[k - 1] <= bound + 1e-6, (k, total[k - 1], bound)
    for k, bound in lower.items():
        assert total[k - 1] >= bound - 1e-6, (k, total[k - 1], bound)
    # and it is the optimum under those limits, recomputed here
    committed = portfolio_reference(peer.portfolio_request(agr.day, [{
        "max-consumption": peer.segments(agr.day, upper),
        **({"max-production": peer.segments(agr.day, {k: -v for k, v in lower.items()})}
           if lower else {})}]))
    result = agr.admin.get(f"{agr.base}/api/v1/scheduling-job/{job[0]}").json()
    assert result["status"] == "finished"
    assert result["result"]["portfolio"]["cost"]["value"] == pytest.approx(committed.cost,
                                                                           rel=1e-6, abs=1e-6)
    assert {i.start: i.power for i in prognosis.isps} == pytest.approx(
        {k + 1: round(v * 1000) for k, v in enumerate(total)}, abs=1)
    commitments = agr.admin.get(f"{agr.base}/api/v1/uftp/commitments").json()
    assert order.message_id in [c["order-message-id"] for c in commitments]
    # a later portfolio job of the account keeps the commitment
    site_ids = [s["id"] for s in agr.admin.get(f"{agr.base}/api/v1/sites").json()
                if s["congestion-point"] == peer.CONGESTION_POINT]
    portfolio = agr.admin.post(f"{agr.base}/api/v1/portfolios", json={
        "name": f"cp-{agr.day}", "sites": site_ids, "congestion-point": peer.CONGESTION_POINT})
    assert portfolio.status_code == 201, portfolio.text
    later = agr.admin.post(f"{agr.base}/api/v1/scheduling-job/portfolio", json={
        "portfolio": portfolio.json()["id"], "start": peer.day_start(agr.day).isoformat(),
        "duration": "PT24H"})
    assert later.status_code == 202, later.text
    (queued,) = agr.rows("SELECT request FROM scheduling_jobs WHERE id = :j",
                         j=later.json()["job"])
    body = json.loads(queued[0]) if isinstance(queued[0], str) else queued[0]
    assert [c.get("id") for c in body["commitments"]] == [order.message_id]
    listed = agr.admin.get(f"{agr.base}/api/v1/uftp/messages",
                           params={"conversation-id": order.conversation_id}).json()
    kinds = {(m["direction"], m["type"], m["status"]) for m in listed}
    assert ("in", "FlexOrder", "processed") in kinds
    assert ("out", "FlexOrderResponse", "sent") in kinds


def test_rejected_messages_change_nothing(agr: Agr, dso: peer.DsoPeer) -> None:
    message, offer, _ = offer_flow(agr, dso)
    before = counts(agr)
    # a forged signature: signed with a key that is not the DSO's registered one
    forged_key, _ = peer.keypair()
    forger = ShapeshifterDsoAgrClient(peer.DSO_DOMAIN, forged_key, peer.AGR_DOMAIN,
                                      dso.agr_endpoint, agr.agr_public)
    with pytest.raises(ClientTransportException) as forged:
        forger.send_flex_order(peer.order_for(offer))
    assert forged.value.response.status_code == 401
    # an unknown sender
    stranger = ShapeshifterDsoAgrClient("stranger.vpp-test.org", agr.dso_key, peer.AGR_DOMAIN,
                                        dso.agr_endpoint, agr.agr_public)
    with pytest.raises(ClientTransportException) as unknown:
        stranger.send_flex_order(peer.order_for(offer))
    assert unknown.value.response.status_code == 419
    # a replayed FlexRequest (same MessageID, same content)
    dso.client().send_flex_request(message)
    replay = dso.wait_for(FlexRequestResponse, lambda m: m.flex_request_message_id == message
                          .message_id and m.result == AcceptedRejected.REJECTED)
    assert replay.rejection_reason == "Already Submitted"
    # a FlexOrder whose ISPs differ from the offer's
    wrong = peer.order_for(offer, lambda start, power: power - 1000 if start == 13 else power)
    dso.client().send_flex_order(wrong)
    mismatch = dso.wait_for(FlexOrderResponse,
                            lambda m: m.flex_order_message_id == wrong.message_id)
    assert mismatch.result == AcceptedRejected.REJECTED
    assert "differ" in mismatch.rejection_reason
    assert counts(agr) == before
    stored = agr.admin.get(f"{agr.base}/api/v1/uftp/messages",
                           params={"direction": "in", "status": "rejected"}).json()
    reasons = {m["rejection-reason"] for m in stored}
    assert {"Invalid Signature", "Unknown Sender", "Already Submitted"} <= reasons
    assert any("differ" in (r or "") for r in reasons)
    # the replay is stored next to the original, which alone was processed
    copies = agr.rows("SELECT duplicate, status FROM uftp_messages WHERE message_id = :m "
                      "AND direction = 'in' ORDER BY duplicate", m=message.message_id)
    assert [tuple(c) for c in copies] == [(0, "processed"), (1, "rejected")]


def test_malformed_and_misdirected(agr: Agr, dso: peer.DsoPeer) -> None:
    endpoint = dso.agr_endpoint
    assert httpx.post(endpoint, content=b"<not-xml", timeout=10).status_code == 400
    before = counts(agr)
    client = dso.client()
    client.recipient_domain = "someone-else.vpp-test.org"
    test = TestMessage()
    client.send_test_message(test)
    answer = dso.wait_for(TestMessageResponse, lambda m: m.conversation_id == test.conversation_id)
    assert answer.result == AcceptedRejected.REJECTED
    assert answer.rejection_reason == "Unknown Recipient"
    assert counts(agr) == before


def test_test_message(agr: Agr, dso: peer.DsoPeer) -> None:
    test = TestMessage()
    dso.client().send_test_message(test)
    answer = dso.wait_for(TestMessageResponse, lambda m: m.conversation_id == test.conversation_id)
    assert answer.result == AcceptedRejected.ACCEPTED


def test_a_peer_that_is_down_gets_the_message_when_back(agr: Agr) -> None:
    """The DSO is down: the D-Prognosis waits in the outbox, retried, and arrives once the
    DSO is back (the retry wait is capped at 1 s here)."""
    response = agr.admin.post(f"{agr.base}/api/v1/uftp/d-prognosis", json={
        "congestion-point": peer.CONGESTION_POINT, "date": agr.day.isoformat()})
    assert response.status_code == 202, response.text
    message_id = response.json()["message-id"]

    def attempts() -> int:
        rows = agr.rows("SELECT attempts, status FROM uftp_messages WHERE message_id = :m",
                        m=message_id)
        return int(rows[0][0]) if rows and rows[0][1] != "sent" else 0

    peer.wait_until(lambda: attempts() >= 2, 60, "two failed delivery attempts")
    started = time.monotonic()
    with agr.dso() as service:
        prognosis = service.wait_for(DPrognosis, lambda m: m.message_id == message_id, 30)
    print(f"queued D-Prognosis delivered {time.monotonic() - started:.2f} s after the DSO "
          "came back")
    assert len(prognosis.isps) == 96
    (status,) = agr.rows("SELECT status FROM uftp_messages WHERE message_id = :m", m=message_id)
    assert status[0] == "sent"


def test_admin_api(agr: Agr) -> None:
    url = f"{agr.base}/api/v1/uftp/participants"
    bad = agr.admin.post(url, json={"domain": "Not A Domain", "role": "BRP", "public-key": "x",
                                    "endpoint": "ftp://x"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert {e["field"] for e in bad.json()["errors"]} == {"domain", "role", "public-key",
                                                           "endpoint"}
    cro_key = peer.keypair()[1]
    body = {"domain": "cro.vpp-test.org", "role": "CRO", "public-key": cro_key,
            "endpoint": "http://127.0.0.1:9/shapeshifter/api/v3/message"}
    assert agr.admin.post(url, json=body).status_code == 201
    assert agr.admin.post(url, json=body).status_code == 409
    assert "cro.vpp-test.org" in [p["domain"] for p in agr.admin.get(url).json()]
    query = agr.admin.post(f"{agr.base}/api/v1/uftp/agr-portfolio-update",
                           json={"start-period": agr.day.isoformat()})
    assert query.status_code == 202, query.text
    assert sorted(query.json()["connections"]) == sorted(
        f"ean.{s['ean']}" for s in peer.sites())
    assert agr.admin.delete(f"{url}/cro.vpp-test.org").status_code == 204
    assert agr.admin.delete(f"{url}/cro.vpp-test.org").status_code == 404
    assert httpx.get(url).status_code == 401
    missing = agr.admin.post(f"{agr.base}/api/v1/uftp/d-prognosis", json={
        "congestion-point": "ean.999999999999", "date": agr.day.isoformat()})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "congestion-point"



def test_revoked_offer_cannot_be_ordered(agr: Agr, dso: peer.DsoPeer) -> None:
    _, offer, _ = offer_flow(agr, dso)
    offers = agr.admin.get(f"{agr.base}/api/v1/uftp/flex-offers").json()
    stored = next(o for o in offers if o["message-id"] == offer.message_id)
    assert stored["state"] == "open"
    revoked = agr.admin.post(f"{agr.base}/api/v1/uftp/flex-offers/{stored['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    notice = dso.wait_for(FlexOfferRevocation,
                          lambda m: m.flex_offer_message_id == offer.message_id)
    assert notice.sender_domain == peer.AGR_DOMAIN
    again = agr.admin.post(f"{agr.base}/api/v1/uftp/flex-offers/{stored['id']}/revoke")
    assert again.status_code == 409
    before = counts(agr)
    order = peer.order_for(offer)
    dso.client().send_flex_order(order)
    answer = dso.wait_for(FlexOrderResponse,
                          lambda m: m.flex_order_message_id == order.message_id)
    assert (answer.result, answer.rejection_reason) == (AcceptedRejected.REJECTED,
                                                         "Reference Message Revoked")
    assert counts(agr) == before


def test_settlement_and_reservation_update(agr: Agr, dso: peer.DsoPeer) -> None:
    _, offer, _ = offer_flow(agr, dso)
    order = peer.order_for(offer)
    dso.client().send_flex_order(order)
    accepted = dso.wait_for(FlexOrderResponse,
                            lambda m: m.flex_order_message_id == order.message_id)
    assert accepted.result == AcceptedRejected.ACCEPTED, accepted.rejection_reason
    changes = peer.offer_changes(offer)
    period = XmlDate(agr.day.year, agr.day.month, agr.day.day)

    def settled(reference: str, power: Callable[[int], int]) -> FlexOrderSettlement:
        return FlexOrderSettlement(
            order_reference=reference, period=period, congestion_point=peer.CONGESTION_POINT,
            price=order.price, net_settlement=order.price,
            isps=[FlexOrderSettlementISP(start=k, baseline_power=0, ordered_flex_power=power(k),
                                         actual_power=0, delivered_flex_power=power(k))
                  for k in sorted(changes)])

    settlement = FlexSettlement(
        period_start=period, period_end=period, currency="EUR",
        flex_order_settlements=[
            settled(order.order_reference, lambda k: changes[k]),
            settled(order.order_reference + "-x", lambda k: changes[k]),
            settled(order.order_reference, lambda k: changes[k] + 1),
        ],
        contract_settlements=[ContractSettlement(periods=[ContractSettlementPeriod(
            period=period, isps=[ContractSettlementISP(start=1, reserved_power=0)])])],
    )
    dso.client().send_flex_settlement(settlement)
    response = dso.wait_for(FlexSettlementResponse,
                            lambda m: m.flex_settlement_message_id == settlement.message_id)
    assert [s.disposition for s in response.flex_order_settlement_statuses] == [
        AcceptedDisputed.ACCEPTED, AcceptedDisputed.DISPUTED, AcceptedDisputed.DISPUTED]
    update = FlexReservationUpdate(
        isp_duration=XmlDuration("PT15M"), period=period, congestion_point=peer.CONGESTION_POINT,
        contract_id="contract-1", reference="r-1",
        isps=[FlexReservationUpdateISP(power=0, start=1, duration=96)])
    before = counts(agr)
    dso.client().send_flex_reservation_update(update)
    ack = dso.wait_for(FlexReservationUpdateResponse,
                       lambda m: m.flex_reservation_update_message_id == update.message_id)
    assert ack.result == AcceptedRejected.ACCEPTED
    assert counts(agr) == before


def test_python_client(agr: Agr) -> None:
    import asyncio

    from vpp.client import AsyncClient, Client, ConflictError, InvalidRequestError

    public = peer.keypair()[1]
    with Client(agr.base, token=ADMIN_TOKEN) as vpp:
        added = vpp.add_uftp_participant("cro2.vpp-test.org", "CRO", public,
                                         "http://127.0.0.1:9/shapeshifter/api/v3/message")
        assert (added["domain"], added["role"], added["public-key"]) == (
            "cro2.vpp-test.org", "CRO", public)
        with pytest.raises(ConflictError):
            vpp.add_uftp_participant("cro2.vpp-test.org", "CRO", public, "http://127.0.0.1:9/")
        with pytest.raises(InvalidRequestError) as bad:
            vpp.add_uftp_participant("cro3.vpp-test.org", "CRO", "short", "http://127.0.0.1:9/")
        assert [e["field"] for e in bad.value.errors] == ["public-key"]
        queued = vpp.agr_portfolio_query(agr.day, cro="cro2.vpp-test.org")
        outbound = vpp.uftp_messages("AGRPortfolioQuery", direction="out")
        assert queued["message-id"] in [m["message-id"] for m in outbound]
        assert all(m["direction"] == "out" for m in outbound)
        vpp.delete_uftp_participant("cro2.vpp-test.org")
    domains = asyncio.run(_async_domains(AsyncClient, agr.base))
    assert "cro2.vpp-test.org" not in domains and peer.DSO_DOMAIN in domains


async def _async_domains(client_class: Any, base: str) -> list[str]:
    async with client_class(base, token=ADMIN_TOKEN) as vpp:
        return [p["domain"] for p in await vpp.uftp_participants()]


def test_metering_from_a_stored_sensor(agr: Agr, dso: peer.DsoPeer) -> None:
    site = next(s for s in agr.admin.get(f"{agr.base}/api/v1/sites").json()
                if s["name"] == "home-1")
    sensor = agr.admin.post(f"{agr.base}/api/v1/sensors", json={
        "name": f"meter-{agr.day}", "unit": "kW", "resolution": "PT5M", "site": site["id"]})
    assert sensor.status_code == 201, sensor.text
    values = [round(1.5 + np.sin(i / 7.0), 3) for i in range(288)]  # 5-minute kW
    upload = agr.admin.post(f"{agr.base}/api/v1/sensors/{sensor.json()['id']}/data", json={
        "start": peer.day_start(agr.day).isoformat(), "values": values})
    assert upload.status_code < 300, upload.text
    sent = agr.admin.post(f"{agr.base}/api/v1/uftp/metering", json={
        "site": site["id"], "sensor": sensor.json()["id"], "date": agr.day.isoformat()})
    assert sent.status_code == 202, sent.text
    metering = dso.wait_for(Metering, lambda m: m.message_id == sent.json()["message-id"])
    assert metering.ean == f"E{site['ean']}"
    got = [float(i.value) for i in sorted(metering.profiles[0].isps, key=lambda i: i.start)]
    expected = [sum(values[3 * k: 3 * k + 3]) / 3 for k in range(96)]
    np.testing.assert_allclose(got, expected, atol=5e-4)
    empty = agr.admin.post(f"{agr.base}/api/v1/uftp/metering", json={
        "site": site["id"], "sensor": sensor.json()["id"],
        "date": (agr.day + timedelta(days=400)).isoformat()})
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "sensor"


def test_a_new_worker_takes_over_a_dead_workers_message(agr: Agr, dso: peer.DsoPeer) -> None:
    """A worker died while sending (the row stays ``sending``): once its lease has passed,
    the worker of a restarted process claims the row and delivers it."""
    from api.uftp.worker import UftpWorker

    agr.app.state.uftp_worker.stop()
    response = agr.admin.post(f"{agr.base}/api/v1/uftp/d-prognosis", json={
        "congestion-point": peer.CONGESTION_POINT, "date": agr.day.isoformat()})
    assert response.status_code == 202, response.text
    message_id = response.json()["message-id"]
    agr.execute("UPDATE uftp_messages SET status = 'sending', attempts = 1, "
                "next_attempt_at = :past WHERE message_id = :m",
                past=datetime.now(UTC) - timedelta(seconds=1), m=message_id)
    agr.app.state.uftp_worker = UftpWorker(agr.app.state.sessions).start()
    prognosis = dso.wait_for(DPrognosis, lambda m: m.message_id == message_id, 30)
    assert prognosis.revision >= 1

    def row() -> tuple[Any, ...]:
        (found,) = agr.rows("SELECT status, attempts FROM uftp_messages WHERE message_id = :m",
                            m=message_id)
        return tuple(found)

    peer.wait_until(lambda: row()[0] == "sent", 10, "the message marked sent")
    assert row() == ("sent", 2)


def test_a_role_we_do_not_take_a_message_from(agr: Agr, dso: peer.DsoPeer) -> None:
    """A registered CRO sends a FlexRequest (a DSO's message): rejected, nothing changes."""
    from shapeshifter_uftp import ShapeshifterCroAgrClient

    cro_key, cro_public = peer.keypair()
    registered = agr.admin.post(f"{agr.base}/api/v1/uftp/participants", json={
        "domain": "cro-role.vpp-test.org", "role": "CRO", "public-key": cro_public,
        "endpoint": f"http://127.0.0.1:{peer.free_port()}{peer.PATH}"})
    assert registered.status_code == 201, registered.text
    before = counts(agr)
    cro = ShapeshifterCroAgrClient("cro-role.vpp-test.org", cro_key, peer.AGR_DOMAIN,
                                   dso.agr_endpoint, agr.agr_public)
    message = peer.flex_request(agr.day)
    cro._send_message(message)  # the package's signing and transport, as a CRO
    stored = peer.wait_until(lambda: agr.rows(
        "SELECT status, rejection_reason FROM uftp_messages WHERE message_id = :m",
        m=message.message_id), 10, "the message stored")
    assert tuple(stored[0]) == ("rejected", "Invalid Message: 'FlexRequest'")
    assert counts(agr) == before
    assert agr.admin.delete(
        f"{agr.base}/api/v1/uftp/participants/cro-role.vpp-test.org").status_code == 204


def test_no_offer_when_the_portfolio_cannot_deliver(agr: Agr, dso: peer.DsoPeer) -> None:
    """Three homes cannot cut 200 kW (their batteries give 30 kW at most): no FlexOffer, the
    FlexRequestResponse says why; an unknown congestion point is rejected as such."""
    offers_before = len(agr.admin.get(f"{agr.base}/api/v1/uftp/flex-offers").json())
    message = peer.flex_request(agr.day)
    message.isps[1].max_power, message.isps[1].min_power = -200_000, -300_000
    dso.client().send_flex_request(message)
    answer = dso.wait_for(FlexRequestResponse,
                          lambda m: m.flex_request_message_id == message.message_id)
    assert answer.result == AcceptedRejected.REJECTED
    assert answer.rejection_reason.startswith("no flexibility offered: ")
    elsewhere = peer.flex_request(agr.day)
    elsewhere.congestion_point = "ean.871685900000000999"
    dso.client().send_flex_request(elsewhere)
    unknown = dso.wait_for(FlexRequestResponse,
                           lambda m: m.flex_request_message_id == elsewhere.message_id)
    assert (unknown.result, unknown.rejection_reason) == (AcceptedRejected.REJECTED,
                                                          "Invalid Congestion Point")
    assert len(agr.admin.get(f"{agr.base}/api/v1/uftp/flex-offers").json()) == offers_before
    assert not [m for m in dso.inbox if isinstance(m, FlexOffer)
                and m.flex_request_message_id in (message.message_id, elsewhere.message_id)]
