"""The synchronous receipt of an inbound UFTP message (``POST /shapeshifter/api/v3/message``).

Transport-level problems are answered with the HTTP status the UFTP specification (and the
``shapeshifter-uftp`` package) gives them, and nothing is sent back:

=====================================  ======  =========================
problem                                 HTTP    stored rejection reason
=====================================  ======  =========================
not a ``SignedMessage`` / bad XML       400     ``Invalid XML``
sender domain + role not registered     419     ``Unknown Sender``
signature does not verify               401     ``Invalid Signature``
inner message not schema-valid          400     ``Invalid XML``
=====================================  ======  =========================

Functional problems are accepted with HTTP 200 and answered asynchronously (through the
outbox) with the message's response, ``Result="Rejected"`` and the UFTP rejection reason:
``Invalid Sender`` (inner SenderDomain differs from the envelope's), ``Unknown Recipient``
(not addressed to our domain), ``Invalid Message: '<type>'`` (a type the AGR does not accept
from that role), ``Already Submitted`` / ``Duplicate Identifier`` (a replayed MessageID with
the same / different content). Everything is stored; a rejected message changes nothing.
An accepted message is stored ``received`` for the worker to process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError
from shapeshifter_uftp.exceptions import InvalidSignatureException, SchemaException
from shapeshifter_uftp.transport import unseal_message
from shapeshifter_uftp.uftp import (
    PayloadMessage,
    SignedMessage,
    TestMessage,
    TestMessageResponse,
    routing_map,
)
from sqlalchemy.orm import Session

from api.uftp import protocol
from api.uftp.protocol import RejectionError, UftpConfig
from store import uftp as store
from store.tables import UftpParticipant

logger = logging.getLogger(__name__)

ALWAYS_ACCEPTED = (TestMessage, TestMessageResponse)


@dataclass
class Receipt:
    """What the endpoint answers: the HTTP status and, for the log, what happened."""

    http_status: int
    outcome: str  # received | rejected
    message_type: str
    reason: str | None = None
    message_row: int | None = None


def accepted_types(role: str) -> set[type]:
    """The message types an AGR accepts from a peer of ``role``."""
    return {cls for cls, (origin, dest) in routing_map.items() if dest == "AGR" and origin == role}


def receive(session: Session, body: bytes, cfg: UftpConfig) -> tuple[Receipt, Any]:
    """Check an inbound message, store it, and queue a functional rejection when due.

    Returns the receipt and the payload (``None`` when it could not be read).
    """
    text = body.decode("utf-8", errors="replace")
    try:
        envelope = protocol.from_xml(body)
    except Exception:  # the XML parser raises several types for garbage
        envelope = None
    if not isinstance(envelope, SignedMessage):
        return _transport(session, text, None, 400, "Invalid XML"), None
    sender = envelope.sender_domain
    participant = store.get_participant(session, sender)
    if participant is None or participant.role != str(envelope.sender_role):
        return _transport(session, text, sender, 419, "Unknown Sender"), None
    try:
        payload = unseal_message(envelope.body, participant.public_key)
    except InvalidSignatureException:
        return _transport(session, text, sender, 401, "Invalid Signature"), None
    except (SchemaException, TypeError, ValueError):
        return _transport(session, _opened(envelope.body, participant), sender, 400,
                          "Invalid XML"), None
    if not isinstance(payload, PayloadMessage):
        return _transport(session, text, sender, 400, "Invalid XML"), None
    return _functional(session, envelope, participant, payload, cfg), payload


def _opened(body: bytes, participant: UftpParticipant) -> str:
    try:
        return bytes(crypto_sign_open(body, protocol_key(participant))).decode(
            "utf-8", errors="replace"
        )
    except (BadSignatureError, ValueError):
        return ""


def protocol_key(participant: UftpParticipant) -> bytes:
    from base64 import b64decode

    return b64decode(participant.public_key)


def _transport(
    session: Session, text: str, sender: str | None, status: int, reason: str
) -> Receipt:
    """Store a message rejected before its content could be trusted (its claimed MessageID
    is not stored: a forger must not be able to burn a real sender's identifiers)."""
    row, _ = store.record_inbound(
        session,
        message_type="SignedMessage",
        xml=text[:1_000_000],
        status="rejected",
        sender_domain=sender,
        rejection_reason=reason,
    )
    logger.warning("rejected an inbound message from %s: %s (HTTP %d)", sender, reason, status)
    return Receipt(status, "rejected", "SignedMessage", reason, row.id)


def _functional(
    session: Session,
    envelope: SignedMessage,
    participant: UftpParticipant,
    payload: PayloadMessage,
    cfg: UftpConfig,
) -> Receipt:
    name = protocol.type_name(payload)
    xml = protocol.to_xml(payload)
    reason = _functional_problem(envelope, participant, payload, cfg)
    row, original = store.record_inbound(
        session,
        message_type=name,
        xml=xml,
        status="rejected" if reason else "received",
        message_id=payload.message_id,
        conversation_id=payload.conversation_id,
        sender_domain=payload.sender_domain,
        recipient_domain=payload.recipient_domain,
        congestion_point=getattr(payload, "congestion_point", None),
        reference_message_id=_reference(payload),
        rejection_reason=reason,
    )
    if original is not None:
        reason = "Already Submitted" if original.xml == xml else "Duplicate Identifier"
        row.rejection_reason = reason
        session.flush()
    if reason is None:
        return Receipt(200, "received", name, None, row.id)
    if reason != "Invalid Sender":  # never answer a domain that did not sign the message
        queue_response(session, payload, participant.domain, reason, cfg)
    logger.warning("rejected %s %s from %s: %s", name, payload.message_id, participant.domain,
                   reason)
    return Receipt(200, "rejected", name, reason, row.id)


def _functional_problem(
    envelope: SignedMessage, participant: UftpParticipant, payload: PayloadMessage,
    cfg: UftpConfig,
) -> str | None:
    if payload.sender_domain != envelope.sender_domain:
        return "Invalid Sender"
    if payload.recipient_domain != cfg.domain:
        return "Unknown Recipient"
    if not isinstance(payload, ALWAYS_ACCEPTED) and type(payload) not in accepted_types(
        participant.role
    ):
        return f"Invalid Message: '{type(payload).__name__}'"
    return None


def _reference(payload: PayloadMessage) -> str | None:
    for name in ("flex_offer_message_id", "flex_request_message_id", "d_prognosis_message_id"):
        value = getattr(payload, name, None)
        if value:
            return str(value)
    for name, value in vars(payload).items():
        if name.endswith("_message_id") and value:
            return str(value)
    return None


def queue_response(
    session: Session,
    message: PayloadMessage,
    recipient: str,
    reason: str | None,
    cfg: UftpConfig,
    **fields: Any,
) -> bool:
    """Queue the response to ``message`` (Accepted, or Rejected with ``reason``)."""
    response = protocol.response_to(message, reason, **fields)
    if response is None:
        return False
    enqueue(session, response, recipient, cfg, message.conversation_id,
            congestion_point=getattr(message, "congestion_point", None))
    return True


def enqueue(
    session: Session,
    message: PayloadMessage,
    recipient: str,
    cfg: UftpConfig,
    conversation_id: str | None,
    congestion_point: str | None = None,
) -> str:
    """Stamp ``message`` and put it in the outbox; returns its MessageID."""
    protocol.stamp(message, cfg, recipient, conversation_id)
    store.enqueue(
        session,
        message_type=protocol.type_name(message),
        xml=protocol.to_xml(message),
        message_id=str(message.message_id),
        conversation_id=str(message.conversation_id),
        sender_domain=cfg.domain,
        recipient_domain=recipient,
        congestion_point=congestion_point or getattr(message, "congestion_point", None),
        reference_message_id=_reference(message),
    )
    return str(message.message_id)


__all__ = ["Receipt", "RejectionError", "enqueue", "queue_response", "receive"]
