"""A real DSO peer for the UFTP tests: shapeshifter-uftp's DSO service and DSO→AGR client,
on 127.0.0.1, with keys and endpoints injected (no DNS), plus the example congestion point
and the independent reference computations the tests compare with.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from base64 import b64encode
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
from conftest import price_curve
from nacl.bindings import crypto_sign_keypair
from reference import portfolio_reference
from shapeshifter_uftp import ShapeshifterDsoService
from shapeshifter_uftp.uftp import (
    AvailableRequested,
    FlexOffer,
    FlexOrder,
    FlexOrderISP,
    FlexRequest,
    FlexRequestISP,
)
from xsdata.models.datatype import XmlDate, XmlDuration

AGR_DOMAIN = "agr.vpp-test.org"
DSO_DOMAIN = "dso.vpp-test.org"
CONGESTION_POINT = "ean.871685900000000001"
ZONE = ZoneInfo("Europe/Amsterdam")
PATH = "/shapeshifter/api/v3/message"
REQUESTED = range(13, 17)  # ISPs 13..16: 03:00-04:00, when the batteries charge
MAX_POWER = -6000  # W: reduce the congestion point's consumption by 6 to 20 kW then
MIN_POWER = -20000


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set ``VPP_*`` variables (``VPP_UFTP_DOMAIN=...``) for vpp's settings, restored after."""
    from vpp.settings import get_settings

    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def agr_environment(signing_key: str, **more: str) -> contextlib.AbstractContextManager[None]:
    """The AGR's UFTP settings of the tests (retries at most 1 s apart, no margin)."""
    return environment(VPP_UFTP_DOMAIN=AGR_DOMAIN, VPP_UFTP_SIGNING_KEY=signing_key,
                       VPP_UFTP_RETRY_MAX="1", VPP_UFTP_MARGIN="0", **more)


def migrate_with_admin(url: str, token: str) -> None:
    """Migrate the database at ``url`` and make sure its admin has ``token``."""
    from store import make_engine, session_factory, upgrade
    from store import repository as repo

    engine = make_engine(url)
    try:
        upgrade(engine)
        with session_factory(engine).begin() as session:
            repo.ensure_admin(session, token=token)
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keypair() -> tuple[str, str]:
    """(private, public), base64, as shapeshifter-uftp takes them."""
    public, private = crypto_sign_keypair()
    return b64encode(private).decode(), b64encode(public).decode()


def next_full_day() -> date:
    """The first day from tomorrow (Amsterdam) with 96 quarter-hours (no clock change)."""
    day = datetime.now(ZONE).date() + timedelta(days=1)
    while True:
        start = datetime(day.year, day.month, day.day, tzinfo=ZONE)
        following = day + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=ZONE)
        if end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=24):
            return day
        day = following


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZONE)


# --------------------------------------------------------------------------- the sites
def house_load(i: int) -> list[float]:
    hours = np.arange(96) / 4.0
    load = 0.4 + 0.3 * i + 2.5 * np.exp(-((hours - 19.0) ** 2) / 3.0) + 0.8 * np.exp(
        -((hours - 8.0) ** 2) / 2.0
    )
    return [round(float(v), 3) for v in load]


def sites() -> list[dict[str, Any]]:
    """Three homes with a battery behind the congestion point (the API's site bodies)."""
    out = []
    for i in range(3):
        out.append(
            {
                "name": f"home-{i}",
                "ean": f"87168590000000010{i}",
                "congestion-point": CONGESTION_POINT,
                "flex-model": [
                    {
                        "name": "battery",
                        "type": "storage",
                        "soc-at-start": f"{10 + 5 * i} kWh",
                        "soc-min": "0 kWh",
                        "soc-max": "40 kWh",
                        "power-capacity": "10 kW",
                        "charging-efficiency": "95%",
                        "discharging-efficiency": "95%",
                    }
                ],
                "flex-context": {
                    "consumption-price": {"values": price_curve(), "unit": "EUR/MWh"},
                    "site-power-capacity": "25 kW",
                    "inflexible-devices": {"house": {"values": house_load(i), "unit": "kW"}},
                },
            }
        )
    return out


def portfolio_request(day: date, commitments: list[dict[str, Any]] | None = None) -> dict:
    """The congestion point's portfolio for ``day``, written here from :func:`sites`."""
    return {
        "start": day_start(day).isoformat(),
        "duration": "PT24H",
        "resolution": "PT15M",
        "sites": [
            {"id": s["name"], "flex-model": s["flex-model"], "flex-context": s["flex-context"]}
            for s in sites()
        ],
        "target": None,
        "commitments": commitments or [],
    }


def segments(day: date, bounds: dict[int, float]) -> list[dict[str, str]]:
    """``{isp number: kW}`` as one-ISP segments of a commitment series."""
    start = day_start(day).astimezone(UTC)
    return [
        {
            "start": (start + (k - 1) * timedelta(minutes=15)).isoformat(),
            "end": (start + k * timedelta(minutes=15)).isoformat(),
            "value": f"{float(v)!r} kW",
        }
        for k, v in sorted(bounds.items())
    ]


def reference_baseline(day: date) -> Any:
    return portfolio_reference(portfolio_request(day))


def setup_agr(base: str, admin: httpx.Client, dso_public: str, dso_port: int) -> None:
    """Register the DSO and the congestion point's sites through the admin API."""
    body = {"domain": DSO_DOMAIN, "role": "DSO", "public-key": dso_public,
            "endpoint": f"http://127.0.0.1:{dso_port}{PATH}"}
    response = admin.post(f"{base}/api/v1/uftp/participants", json=body)
    assert response.status_code == 201, response.text
    for site in sites():
        response = admin.post(f"{base}/api/v1/sites", json=site)
        assert response.status_code == 201, response.text


# --------------------------------------------------------------------------- the DSO peer
class DsoPeer(ShapeshifterDsoService):
    """shapeshifter-uftp's DSO service; every message it receives is kept in ``inbox``."""

    def __init__(self, port: int, signing_key: str, agr_public: str, agr_port: int) -> None:
        self.inbox: list[Any] = []
        self.arrived = threading.Condition()
        self.agr_public = agr_public
        self.agr_endpoint = f"http://127.0.0.1:{agr_port}{PATH}"
        # the package's own service: its HTTP route, verification, routing and processing;
        # only the key and endpoint lookups are ours (from the test, never DNS)
        super().__init__(
            sender_domain=DSO_DOMAIN,
            signing_key=signing_key,
            key_lookup_function=self._key,
            endpoint_lookup_function=self._endpoint,
            host="127.0.0.1",
            port=port,
            path=PATH,
        )

    def _key(self, domain: str, role: str) -> str | None:
        return self.agr_public if (domain, str(role)) == (AGR_DOMAIN, "AGR") else None

    def _endpoint(self, domain: str, role: str) -> str:
        if (domain, str(role)) != (AGR_DOMAIN, "AGR"):
            raise LookupError(f"unknown participant {domain} {role}")
        return self.agr_endpoint

    def _keep(self, message: Any) -> None:
        with self.arrived:
            self.inbox.append(message)
            self.arrived.notify_all()

    def wait_for(
        self, kind: type, where: Callable[[Any], bool] = lambda m: True, timeout: float = 120
    ) -> Any:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for message in self.inbox:
                    if isinstance(message, kind) and where(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [type(m).__name__ for m in self.inbox]
                    raise AssertionError(f"no {kind.__name__} within {timeout} s; got {seen}")
                self.arrived.wait(left)

    def client(self) -> Any:
        return self.agr_client(AGR_DOMAIN)

    process_d_prognosis = _keep
    process_flex_request_response = _keep
    process_flex_offer = _keep
    process_flex_order_response = _keep
    process_flex_offer_revocation = _keep
    process_flex_reservation_update_response = _keep
    process_flex_settlement_response = _keep
    process_dso_portfolio_query_response = _keep
    process_dso_portfolio_update_response = _keep
    process_metering = _keep
    process_test_message_response = _keep


# --------------------------------------------------------------------------- messages
def flex_request(day: date, expires_in: timedelta = timedelta(hours=1)) -> FlexRequest:
    isps = [
        FlexRequestISP(disposition=AvailableRequested.AVAILABLE, min_power=-1_000_000,
                       max_power=1_000_000, start=1, duration=REQUESTED.start - 1),
        FlexRequestISP(disposition=AvailableRequested.REQUESTED, min_power=MIN_POWER,
                       max_power=MAX_POWER, start=REQUESTED.start, duration=len(REQUESTED)),
        FlexRequestISP(disposition=AvailableRequested.AVAILABLE, min_power=-1_000_000,
                       max_power=1_000_000, start=REQUESTED.stop, duration=97 - REQUESTED.stop),
    ]
    return FlexRequest(
        isp_duration=XmlDuration("PT15M"),
        period=XmlDate(day.year, day.month, day.day),
        congestion_point=CONGESTION_POINT,
        revision=1,
        expiration_date_time=(datetime.now(UTC) + expires_in).isoformat(timespec="seconds"),
        isps=isps,
        message_id=str(uuid.uuid4()),
        conversation_id=str(uuid.uuid4()),
    )


def order_for(offer: FlexOffer, change: Callable[[int, int], int] | None = None) -> FlexOrder:
    """The FlexOrder of ``offer``'s option, ISPs copied (``change(start, power)`` alters)."""
    option = offer.offer_options[0]
    return FlexOrder(
        isp_duration=offer.isp_duration,
        period=offer.period,
        congestion_point=offer.congestion_point,
        flex_offer_message_id=offer.message_id,
        isps=[FlexOrderISP(power=change(i.start, i.power) if change else i.power,
                           start=i.start, duration=i.duration) for i in option.isps],
        price=option.price,
        currency=offer.currency,
        order_reference=f"order-{uuid.uuid4().hex[:8]}",
        option_reference=option.option_reference,
        message_id=str(uuid.uuid4()),
        conversation_id=offer.conversation_id,
    )


def offer_changes(offer: FlexOffer) -> dict[int, int]:
    return {i.start + j: i.power for i in offer.offer_options[0].isps for j in range(i.duration)}


def order_bounds(changes: dict[int, int], base: np.ndarray) -> tuple[dict, dict]:
    """The ordered profile's one-sided bounds on the summed power (kW), from ``base``."""
    upper = {k: base[k - 1] + p / 1000 for k, p in changes.items() if p < 0}
    lower = {k: base[k - 1] + p / 1000 for k, p in changes.items() if p > 0}
    return lower, upper


def wait_until(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout} s")
