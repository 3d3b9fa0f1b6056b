"""What each accepted inbound message does (as the AGR), run by the worker.

A handler works in the worker's transaction: the outbound messages it queues, the offers and
commitments it stores and the schedules it writes commit together with the message's
``processed`` status, or not at all. A :class:`~api.uftp.protocol.RejectionError` rolls that
back and answers the message Rejected with its reason instead.

* ``TestMessage`` → ``TestMessageResponse``.
* ``FlexRequest``, ``FlexOrder``: :mod:`api.uftp.flex`.
* ``FlexReservationUpdate`` → stored (the message) and answered Accepted: vpp holds no
  bilateral reservation contracts whose reserved volume would change a schedule.
* ``FlexSettlement`` → ``FlexSettlementResponse``, one status per FlexOrderSettlement:
  Accepted when its OrderReference is a commitment of ours with that DSO and its
  OrderedFlexPower per ISP equals the ordered Power, Disputed (with the reason) otherwise.
* Responses (FlexOfferResponse, FlexOfferRevocationResponse, D-PrognosisResponse,
  MeteringResponse, AGRPortfolioUpdateResponse, AGRPortfolioQueryResponse,
  TestMessageResponse): stored; a Rejected one is logged with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shapeshifter_uftp.uftp import (
    AcceptedDisputed,
    AcceptedRejected,
    FlexOrder,
    FlexOrderSettlementStatus,
    FlexRequest,
    FlexReservationUpdate,
    FlexSettlement,
    PayloadMessage,
    PayloadMessageResponse,
    TestMessage,
)
from sqlalchemy.orm import Session

from api.uftp import flex, protocol
from api.uftp.protocol import UftpConfig
from api.uftp.verify import queue_response
from store import uftp as store
from store.tables import UftpParticipant

__all__ = ["HANDLERS", "Handler", "handle"]


logger = logging.getLogger(__name__)

Handler = Callable[[Session, Any, UftpParticipant, UftpConfig], str]


def handle(
    session: Session, message: PayloadMessage, participant: UftpParticipant, cfg: UftpConfig
) -> str:
    """Process one accepted message; returns a short outcome for the log and metrics."""
    for cls, handler in HANDLERS:
        if isinstance(message, cls):
            return handler(session, message, participant, cfg)
    if isinstance(message, PayloadMessageResponse):
        return _response(message)
    raise protocol.RejectionError(f"Invalid Message: '{type(message).__name__}'")


def _test_message(
    session: Session, message: TestMessage, participant: UftpParticipant, cfg: UftpConfig
) -> str:
    queue_response(session, message, participant.domain, None, cfg)
    return "answered"


def _reservation_update(
    session: Session, message: FlexReservationUpdate, participant: UftpParticipant,
    cfg: UftpConfig,
) -> str:
    day = protocol.isp_day(message.period, message.time_zone, message.isp_duration)
    protocol.expand(message.isps, day.count)  # ISPs must be on the day's grid
    queue_response(session, message, participant.domain, None, cfg)
    return "stored"


def _settlement(
    session: Session, message: FlexSettlement, participant: UftpParticipant, cfg: UftpConfig
) -> str:
    ours = {
        c.order_reference: c
        for c in store.list_commitments(session)
        # the account too: a re-registered domain settles only its own account's orders
        if c.dso_domain == participant.domain and c.account_id == participant.account_id
    }
    statuses = []
    for item in message.flex_order_settlements:
        commitment = ours.get(item.order_reference or "")
        reason = _settlement_problem(item, commitment)
        statuses.append(
            FlexOrderSettlementStatus(
                order_reference=item.order_reference,
                disposition=AcceptedDisputed.DISPUTED if reason else AcceptedDisputed.ACCEPTED,
                dispute_reason=reason,
            )
        )
    queue_response(session, message, participant.domain, None, cfg,
                   flex_order_settlement_statuses=statuses)
    disputed = sum(s.disposition == AcceptedDisputed.DISPUTED for s in statuses)
    return f"{len(statuses) - disputed} accepted, {disputed} disputed"


def _settlement_problem(item: Any, commitment: Any) -> str | None:
    if commitment is None:
        return f"no FlexOrder with OrderReference {item.order_reference!r}"
    if protocol.to_date(item.period).isoformat() != commitment.period:
        return f"the order is for {commitment.period}"
    if item.congestion_point != commitment.congestion_point:
        return f"the order is at {commitment.congestion_point}"
    ordered = {int(i["start"]) + j: int(i["power"]) for i in commitment.isps
               for j in range(int(i.get("duration", 1)))}
    settled: dict[int, int] = {}
    for isp in item.isps:
        for k in range(int(isp.start), int(isp.start) + int(isp.duration or 1)):
            settled[k] = int(isp.ordered_flex_power)
    wrong = sorted(k for k in settled if settled[k] != ordered.get(k, 0))
    if wrong:
        return f"OrderedFlexPower differs from the order at ISP {wrong[0]}"
    return None


def _response(message: PayloadMessageResponse) -> str:
    if message.result == AcceptedRejected.REJECTED:
        logger.warning("%s %s rejected our %s: %s", protocol.type_name(message),
                       message.message_id, message.conversation_id, message.rejection_reason)
        return "peer rejected"
    return "peer accepted"


HANDLERS: list[tuple[type, Handler]] = [
    (TestMessage, _test_message),
    (FlexRequest, flex.handle_flex_request),
    (FlexOrder, flex.handle_flex_order),
    (FlexReservationUpdate, _reservation_update),
    (FlexSettlement, _settlement),
]
