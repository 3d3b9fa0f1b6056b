"""Repository functions for UFTP (ShapeShifter): participants, messages, offers, commitments.

Like :mod:`store.repository`, every function takes an open session, flushes, never commits.

Messages double as the inbox and the outbox. A worker claims a row by moving it from its
ready status (``received`` inbound, ``queued`` outbound) to its claimed status
(``processing``, ``sending``) with ``next_attempt_at`` set to the end of a lease; a claimed
row whose lease has passed belongs to a worker that died and is claimed again, so a crash
never loses a message. On PostgreSQL candidates are locked with ``FOR UPDATE SKIP LOCKED``;
elsewhere a conditional ``UPDATE`` wins the row (see :func:`store.repository.claim_next_job`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.repository import RecordExistsError, RecordNotFoundError
from store.tables import (
    UFTP_ROLES,
    UftpCommitment,
    UftpFlexOffer,
    UftpMessage,
    UftpParticipant,
    utcnow,
)

__all__ = [
    "CLAIMS",
    "add_participant",
    "claim",
    "commitment_for_offer",
    "count_outbound",
    "delete_participant",
    "enqueue",
    "finish",
    "get_offer",
    "get_offer_by_id",
    "get_participant",
    "list_commitments",
    "list_messages",
    "list_offers",
    "list_participants",
    "next_due",
    "record_inbound",
    "retry_later",
    "save_commitment",
    "save_offer",
]


logger = logging.getLogger(__name__)

CLAIMS: Final = {"in": ("received", "processing"), "out": ("queued", "sending")}


# --------------------------------------------------------------------------- participants
def add_participant(
    session: Session,
    domain: str,
    role: str,
    public_key: str,
    endpoint: str,
    account_id: int | None = None,
) -> UftpParticipant:
    """Register a peer; ``RecordExistsError`` if its domain is registered already (by this
    account or another: a domain has one key and one endpoint, so one account)."""
    if role not in UFTP_ROLES:
        raise ValueError(f"unknown UFTP role {role!r}; expected one of {', '.join(UFTP_ROLES)}")
    held = get_participant(session, domain)
    if held is not None:
        # which account holds it is not the caller's business
        whose = "your account" if held.account_id == account_id else "another account"
        raise RecordExistsError(f"participant {domain!r} is registered already, by {whose}")
    row = UftpParticipant(
        domain=domain,
        role=role,
        public_key=public_key,
        endpoint=endpoint,
        account_id=account_id,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    logger.info("registered UFTP %s %s at %s", role, domain, endpoint)
    return row


def get_participant(session: Session, domain: str | None) -> UftpParticipant | None:
    if not domain:
        return None
    return session.scalar(select(UftpParticipant).where(UftpParticipant.domain == domain))


def list_participants(
    session: Session, account_ids: Iterable[int] | None = None
) -> list[UftpParticipant]:
    """The peers registered by the given accounts (None: every peer, also those whose
    account is gone), oldest first."""
    query = select(UftpParticipant).order_by(UftpParticipant.id)
    if account_ids is not None:
        query = query.where(UftpParticipant.account_id.in_(list(account_ids)))
    return list(session.scalars(query))


def delete_participant(
    session: Session, domain: str, account_ids: Iterable[int] | None = None
) -> None:
    """Forget a peer (its messages stay); ``RecordNotFoundError`` if unknown, or registered
    by none of ``account_ids`` (when given)."""
    row = get_participant(session, domain)
    if row is None or (account_ids is not None and row.account_id not in set(account_ids)):
        raise RecordNotFoundError(f"no participant {domain!r}")
    session.delete(row)
    session.flush()
    logger.info("removed UFTP participant %s", domain)


# --------------------------------------------------------------------------- messages
def record_inbound(
    session: Session,
    *,
    message_type: str,
    xml: str,
    status: str,
    message_id: str | None = None,
    conversation_id: str | None = None,
    sender_domain: str | None = None,
    recipient_domain: str | None = None,
    congestion_point: str | None = None,
    reference_message_id: str | None = None,
    rejection_reason: str | None = None,
) -> tuple[UftpMessage, UftpMessage | None]:
    """Store an inbound message; returns ``(row, original)``.

    ``original`` is the earlier message with the same sender and MessageID when this one is
    a replay: the replay is then stored as ``rejected`` (with ``duplicate`` > 0) whatever
    ``status`` was asked for, its ``rejection_reason`` left to the caller to fill in.
    """
    fields: dict[str, Any] = {
        "direction": "in",
        "type": message_type,
        "xml": xml,
        "message_id": message_id,
        "conversation_id": conversation_id,
        "sender_domain": sender_domain,
        "recipient_domain": recipient_domain,
        "congestion_point": congestion_point,
        "reference_message_id": reference_message_id,
        "rejection_reason": rejection_reason,
    }
    fields["account_id"] = _account_of(session, sender_domain)
    original = _first_copy(session, sender_domain, message_id)
    if original is None:
        row = UftpMessage(**fields, status=status, duplicate=0, created_at=utcnow())
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # the same message arrived concurrently: we are the replay
            original = _first_copy(session, sender_domain, message_id)
        else:
            if status == "received":
                row.next_attempt_at = row.created_at
            _stamp_done(row)
            session.flush()
            return row, None
    return _store_replay(session, fields, original), original


def _account_of(session: Session, domain: str | None) -> int | None:
    """The account that registered the peer ``domain`` (None: unknown peer, or none)."""
    peer = get_participant(session, domain)
    return peer.account_id if peer is not None else None


def _first_copy(session: Session, sender: str | None, message_id: str | None) -> UftpMessage | None:
    if sender is None or message_id is None:
        return None
    return session.scalar(
        select(UftpMessage).where(
            UftpMessage.sender_domain == sender,
            UftpMessage.message_id == message_id,
            UftpMessage.duplicate == 0,
        )
    )


def _store_replay(
    session: Session, fields: dict[str, Any], original: UftpMessage | None
) -> UftpMessage:
    for _ in range(5):  # concurrent replays race for the next duplicate number
        highest = session.scalar(
            select(func.max(UftpMessage.duplicate)).where(
                UftpMessage.sender_domain == fields["sender_domain"],
                UftpMessage.message_id == fields["message_id"],
            )
        )
        row = UftpMessage(
            **fields, status="rejected", duplicate=int(highest or 0) + 1, created_at=utcnow()
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            continue
        _stamp_done(row)
        logger.warning(
            "replayed UFTP message %s from %s (original %s)",
            fields["message_id"],
            fields["sender_domain"],
            original.id if original is not None else None,
        )
        return row
    raise RuntimeError("could not store a replayed message")


def _stamp_done(row: UftpMessage) -> None:
    if row.status in ("processed", "rejected", "failed", "sent"):
        row.done_at = row.done_at or utcnow()


def enqueue(
    session: Session,
    *,
    message_type: str,
    xml: str,
    message_id: str,
    conversation_id: str,
    sender_domain: str,
    recipient_domain: str,
    congestion_point: str | None = None,
    reference_message_id: str | None = None,
) -> UftpMessage:
    """Put an outbound message (its payload XML, unsigned) in the outbox, due now."""
    now = utcnow()
    row = UftpMessage(
        direction="out",
        type=message_type,
        xml=xml,
        message_id=message_id,
        conversation_id=conversation_id,
        reference_message_id=reference_message_id,
        sender_domain=sender_domain,
        recipient_domain=recipient_domain,
        account_id=_account_of(session, recipient_domain),
        congestion_point=congestion_point,
        duplicate=0,
        status="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    logger.info("queued %s %s to %s", message_type, message_id, recipient_domain)
    return row


def claim(session: Session, direction: str, lease: timedelta) -> UftpMessage | None:
    """Claim the oldest due message of ``direction`` (``in``: to process, ``out``: to send).

    Due: in the ready status with ``next_attempt_at`` passed, or in the claimed status with
    an expired lease. The claimed row gets one more ``attempts`` and a lease until
    ``now + lease``. Safe with several workers (no row is claimed twice at once).
    """
    ready, claimed = CLAIMS[direction]
    now = utcnow()
    due = and_(
        UftpMessage.direction == direction,
        UftpMessage.status.in_((ready, claimed)),
        or_(UftpMessage.next_attempt_at.is_(None), UftpMessage.next_attempt_at <= now),
    )
    oldest_first = (UftpMessage.next_attempt_at, UftpMessage.id)
    if session.get_bind(UftpMessage).dialect.name == "postgresql":
        row = session.scalar(
            select(UftpMessage)
            .where(due)
            .order_by(*oldest_first)
            .limit(1)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        if row is None:
            return None
        row.status, row.attempts, row.next_attempt_at = claimed, row.attempts + 1, now + lease
        session.flush()
        return row
    candidates = session.scalars(
        select(UftpMessage.id).where(due).order_by(*oldest_first).limit(10)
    ).all()
    for row_id in candidates:
        won = session.execute(
            update(UftpMessage)
            .where(UftpMessage.id == row_id, due)
            .values(status=claimed, attempts=UftpMessage.attempts + 1, next_attempt_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if cast("CursorResult[Any]", won).rowcount == 1:
            return session.scalar(
                select(UftpMessage)
                .where(UftpMessage.id == row_id)
                .execution_options(populate_existing=True)
            )
    return None


def finish(
    session: Session,
    row_id: int,
    status: str,
    *,
    rejection_reason: str | None = None,
    error: str | None = None,
    congestion_point: str | None = None,
) -> UftpMessage:
    """End a claimed message: ``processed`` / ``rejected`` / ``failed`` / ``sent``."""
    row = _get_message(session, row_id)
    row.status = status
    row.next_attempt_at = None
    if rejection_reason is not None:
        row.rejection_reason = rejection_reason
    if error is not None:
        row.last_error = error
    if congestion_point is not None:
        row.congestion_point = congestion_point
    row.done_at = utcnow()
    session.flush()
    return row


def retry_later(session: Session, row_id: int, error: str, delay: timedelta) -> UftpMessage:
    """A delivery attempt failed: back to ``queued``, due again after ``delay``."""
    row = _get_message(session, row_id)
    row.status = "queued"
    row.last_error = error[:2000]
    row.next_attempt_at = utcnow() + delay
    session.flush()
    logger.warning(
        "delivery of %s %s to %s failed (attempt %d), next in %.0f s: %s",
        row.type,
        row.message_id,
        row.recipient_domain,
        row.attempts,
        delay.total_seconds(),
        error,
    )
    return row


def _get_message(session: Session, row_id: int) -> UftpMessage:
    row = session.get(UftpMessage, row_id, populate_existing=True)
    if row is None:
        raise RecordNotFoundError(f"no UFTP message {row_id}")
    return row


def next_due(session: Session) -> datetime | None:
    """When the next inbound or outbound message becomes due (None: nothing pending)."""
    return session.scalar(
        select(func.min(UftpMessage.next_attempt_at)).where(
            UftpMessage.status.in_(("received", "processing", "queued", "sending"))
        )
    )


def list_messages(
    session: Session,
    *,
    message_type: str | None = None,
    conversation_id: str | None = None,
    direction: str | None = None,
    status: str | None = None,
    account_ids: Iterable[int] | None = None,
    limit: int = 200,
    before_id: int | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[UftpMessage]:
    """Newest first, filtered (``account_ids``: the messages of those accounts' peers;
    None: every message, also those of unknown senders; created in
    ``[created_after, created_before)``); ``before_id``: only those with a lower id (the
    last id of the previous page)."""
    query = select(UftpMessage)
    if account_ids is not None:
        query = query.where(UftpMessage.account_id.in_(list(account_ids)))
    if message_type is not None:
        query = query.where(UftpMessage.type == message_type)
    if conversation_id is not None:
        query = query.where(UftpMessage.conversation_id == conversation_id)
    if direction is not None:
        query = query.where(UftpMessage.direction == direction)
    if status is not None:
        query = query.where(UftpMessage.status == status)
    if before_id is not None:
        query = query.where(UftpMessage.id < before_id)
    if created_after is not None:
        query = query.where(UftpMessage.created_at >= created_after)
    if created_before is not None:
        query = query.where(UftpMessage.created_at < created_before)
    query = query.order_by(UftpMessage.id.desc()).limit(limit)
    return list(session.scalars(query))


def count_outbound(session: Session, message_type: str, congestion_point: str, period: str) -> int:
    """How many ``message_type`` messages we sent (or queued) for a congestion point and
    period (their XML names the period): the next revision number is this plus one."""
    rows = session.scalars(
        select(UftpMessage.xml).where(
            UftpMessage.direction == "out",
            UftpMessage.type == message_type,
            UftpMessage.congestion_point == congestion_point,
        )
    )
    return sum(1 for xml in rows if f'Period="{period}"' in xml)


# --------------------------------------------------------------------------- offers
def save_offer(session: Session, **fields: Any) -> UftpFlexOffer:
    row = UftpFlexOffer(**fields, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def get_offer(session: Session, message_id: str | None) -> UftpFlexOffer | None:
    if not message_id:
        return None
    return session.scalar(select(UftpFlexOffer).where(UftpFlexOffer.message_id == message_id))


def get_offer_by_id(session: Session, offer_id: int) -> UftpFlexOffer:
    row = session.get(UftpFlexOffer, offer_id)
    if row is None:
        raise RecordNotFoundError(f"no flex offer {offer_id}")
    return row


def list_offers(session: Session, account_ids: Iterable[int] | None = None) -> list[UftpFlexOffer]:
    query = select(UftpFlexOffer).order_by(UftpFlexOffer.id.desc())
    if account_ids is not None:
        query = query.where(UftpFlexOffer.account_id.in_(list(account_ids)))
    return list(session.scalars(query))


# --------------------------------------------------------------------------- commitments
def save_commitment(session: Session, **fields: Any) -> UftpCommitment:
    row = UftpCommitment(**fields, created_at=utcnow())
    session.add(row)
    session.flush()
    logger.info(
        "committed order %s at %s (%s)",
        row.order_message_id,
        row.congestion_point,
        row.period,
    )
    return row


def commitment_for_offer(session: Session, offer_id: int) -> UftpCommitment | None:
    return session.scalar(select(UftpCommitment).where(UftpCommitment.offer_id == offer_id))


def list_commitments(
    session: Session,
    *,
    account_ids: Iterable[int] | None = None,
    congestion_points: Sequence[str] | None = None,
    overlapping: tuple[datetime, datetime] | None = None,
) -> list[UftpCommitment]:
    """Commitments, oldest first; optionally of some accounts, at some congestion points,
    and overlapping the interval ``[start, end)``."""
    query = select(UftpCommitment).order_by(UftpCommitment.id)
    if account_ids is not None:
        query = query.where(UftpCommitment.account_id.in_(list(account_ids)))
    if congestion_points is not None:
        query = query.where(UftpCommitment.congestion_point.in_(list(congestion_points)))
    if overlapping is not None:
        start, end = overlapping
        query = query.where(UftpCommitment.start < end, UftpCommitment.end > start)
    return list(session.scalars(query))
