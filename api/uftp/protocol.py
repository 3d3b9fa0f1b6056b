"""UFTP plumbing shared by the endpoint, the handlers and the outbox.

Sign convention (UFTP, like vpp): power is in W, consumption positive, production negative;
flexibility (FlexRequest MinPower/MaxPower, FlexOffer/FlexOrder ISP Power) is a *change* of
the congestion point's power relative to the baseline, positive = more consumption.

ISPs are numbered from 1 at local midnight of the message's ``Period`` in its ``TimeZone``;
ISP ``k`` starts ``(k - 1) * ISP-Duration`` (absolute time) after that midnight, so a day
has 92 or 100 quarter-hours when the clocks change.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shapeshifter_uftp import transport
from shapeshifter_uftp.uftp import (
    AcceptedDisputed,
    AcceptedRejected,
    FlexOrderSettlementStatus,
    FlexSettlement,
    FlexSettlementResponse,
    PayloadMessage,
    SignedMessage,
    UsefRole,
    request_response_map,
)
from xsdata.models.datatype import XmlDate, XmlDuration

from vpp.errors import ServiceUnavailableError, VppError
from vpp.settings import get_settings

__all__ = [
    "VERSION",
    "IspDay",
    "RejectionError",
    "UftpConfig",
    "UftpNotConfiguredError",
    "config",
    "duration",
    "expand",
    "from_xml",
    "is_configured",
    "isp_day",
    "new_id",
    "now_text",
    "parse_time",
    "response_to",
    "signed_envelope",
    "snake_case",
    "stamp",
    "to_date",
    "to_xml",
    "type_name",
    "xml_date",
    "xml_duration",
]


logger = logging.getLogger(__name__)

VERSION = "3.1.0"


class UftpNotConfiguredError(ServiceUnavailableError):
    """``VPP_UFTP_DOMAIN`` or ``VPP_UFTP_SIGNING_KEY`` is not set."""


class RejectionError(VppError):
    """A functional rejection: answered with the message's response, Result=Rejected (over
    REST, where an operator triggers the message, a 409 with the reason)."""

    http_status = 409
    title = "Rejected"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class UftpConfig:
    domain: str
    signing_key: str
    margin: float  # EUR per MWh of offered flexibility energy
    offer_validity: timedelta
    retry_max: timedelta


def config() -> UftpConfig:
    """Our UFTP identity and options from the settings (read at call time)."""
    settings = get_settings()
    if not settings.uftp_domain or not settings.uftp_signing_key:
        raise UftpNotConfiguredError(
            "UFTP is not configured: set VPP_UFTP_DOMAIN and VPP_UFTP_SIGNING_KEY "
            "(`vpp uftp keygen` prints a key pair)"
        )
    return UftpConfig(
        domain=settings.uftp_domain,
        signing_key=settings.uftp_signing_key,
        margin=float(settings.uftp_margin),
        offer_validity=timedelta(seconds=float(settings.uftp_offer_validity)),
        retry_max=timedelta(seconds=float(settings.uftp_retry_max)),
    )


def is_configured() -> bool:
    settings = get_settings()
    return bool(settings.uftp_domain and settings.uftp_signing_key)


# --------------------------------------------------------------------------- names and ids
def type_name(message: Any) -> str:
    """The XML element name of a message (``FlexRequest``, ``D-Prognosis``, ...)."""
    cls = message if isinstance(message, type) else type(message)
    meta = getattr(cls, "Meta", None)
    return str(getattr(meta, "name", cls.__name__))


def snake_case(text: str) -> str:
    return re.sub(r"(.)([A-Z][a-z])", r"\1_\2", text).lower()


def new_id() -> str:
    return str(uuid.uuid4())


def now_text(now: datetime) -> str:
    return now.isoformat(timespec="seconds")


def parse_time(text: str) -> datetime:
    """An ISO 8601 date-time of a message (``Z`` or an offset)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"date-time without time zone: {text!r}")
    return value


# --------------------------------------------------------------------------- ISPs
@dataclass(frozen=True)
class IspDay:
    """The ISPs of one ``Period``: ``count`` steps of ``resolution`` from ``start`` (UTC)."""

    period: date
    time_zone: str
    start: datetime
    resolution: timedelta
    count: int

    def at(self, isp: int) -> datetime:
        """Start of ISP number ``isp`` (1-based)."""
        return self.start + (isp - 1) * self.resolution

    @property
    def end(self) -> datetime:
        return self.start + self.count * self.resolution


def isp_day(period: Any, time_zone: str, isp_duration: Any) -> IspDay:
    """The ISP grid of a message; ``RejectionError`` for an unknown zone or a bad duration."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise RejectionError("TimeZone Rejected") from None
    resolution = duration(isp_duration)
    if resolution <= timedelta(0) or timedelta(days=1) % resolution:
        raise RejectionError("ISP Duration Rejected")
    day = to_date(period)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    length = end.astimezone(ZoneInfo("UTC")) - start.astimezone(ZoneInfo("UTC"))
    if length % resolution:
        raise RejectionError("ISP Duration Rejected")
    return IspDay(day, time_zone, start.astimezone(ZoneInfo("UTC")), resolution,
                  int(length / resolution))


def duration(value: Any) -> timedelta:
    """A ``XmlDuration`` (or its text) as a timedelta (hours, minutes, seconds only)."""
    d = value if isinstance(value, XmlDuration) else XmlDuration(str(value))
    if d.years or d.months or d.days:
        raise RejectionError("ISP Duration Rejected")
    return timedelta(hours=d.hours or 0, minutes=d.minutes or 0, seconds=float(d.seconds or 0))


def to_date(value: Any) -> date:
    if isinstance(value, XmlDate):
        return value.to_date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def xml_date(value: date) -> XmlDate:
    return XmlDate(value.year, value.month, value.day)


def xml_duration(value: timedelta) -> XmlDuration:
    minutes = int(value.total_seconds() // 60)
    return XmlDuration(f"PT{minutes}M")


def expand(isps: Iterable[Any], count: int, field: str = "power") -> dict[int, Any]:
    """ISP elements (``start``, ``duration`` and a value) as ``{isp number: value}``.

    ``RejectionError`` for ISPs outside ``1..count`` or given twice.
    """
    out: dict[int, Any] = {}
    for isp in isps:
        first, length = int(isp.start), int(isp.duration or 1)
        if first < 1 or length < 1 or first + length - 1 > count:
            raise RejectionError("ISPs Out Of Bounds")
        for k in range(first, first + length):
            if k in out:
                raise RejectionError("ISP Conflict")
            out[k] = isp if field == "*" else getattr(isp, field)
    return out


# --------------------------------------------------------------------------- XML and signing
def to_xml(message: PayloadMessage) -> str:
    return str(transport.to_xml(message))


def from_xml(xml: str | bytes) -> Any:
    return transport.from_xml(xml)


def stamp(
    message: PayloadMessage, cfg: UftpConfig, recipient: str, conversation_id: str | None
) -> PayloadMessage:
    """Fill the common attributes of an outbound message."""
    message.version = VERSION
    message.sender_domain = cfg.domain
    message.recipient_domain = recipient
    message.time_stamp = message.time_stamp or now_text(datetime.now(ZoneInfo("UTC")))
    message.message_id = message.message_id or new_id()
    message.conversation_id = conversation_id or message.conversation_id or new_id()
    return message


def signed_envelope(payload_xml: str, cfg: UftpConfig) -> str:
    """The ``SignedMessage`` XML carrying ``payload_xml`` sealed with our key (NaCl)."""
    payload = from_xml(payload_xml)
    sealed = transport.seal_message(payload, cfg.signing_key)
    envelope = SignedMessage(sender_domain=cfg.domain, sender_role=UsefRole.AGR, body=sealed)
    return str(transport.to_xml(envelope))


def response_to(message: PayloadMessage, reason: str | None, **fields: Any) -> Any:
    """The response message to ``message``: Accepted (``reason`` None) or Rejected; ``None``
    when its type has no response (it is itself a response)."""
    response_type = request_response_map.get(type(message))
    if response_type is None:
        return None
    reference = snake_case(type(message).__name__) + "_message_id"
    content: dict[str, Any] = {
        "conversation_id": message.conversation_id,
        "result": AcceptedRejected.ACCEPTED if reason is None else AcceptedRejected.REJECTED,
        "rejection_reason": reason,
        **fields,
    }
    if reference in {f.name for f in dataclasses.fields(response_type)}:
        content[reference] = message.message_id
    if isinstance(message, FlexSettlement) and "flex_order_settlement_statuses" not in fields:
        content["flex_order_settlement_statuses"] = [
            FlexOrderSettlementStatus(
                order_reference=s.order_reference,
                disposition=AcceptedDisputed.DISPUTED,
                dispute_reason=reason,
            )
            for s in message.flex_order_settlements
        ]
    if response_type is FlexSettlementResponse and not content.get(
        "flex_order_settlement_statuses"
    ):
        return None
    return response_type(**content)
