"""A congestion point's (or a list of connections') portfolio, built from the stored sites.

A grid operator names the connections it needs flexibility from by the congestion point
they sit behind (an EAN, as UFTP and GOPACS use them) or by their own connection EANs. The
portfolio is every stored site of the given accounts that matches, each site as it is
stored (devices and flex-context, :func:`api.references.site_as_request`) with its
``{"sensor": id}`` references filled in for the window (:func:`api.references.expand_sensors`).

The result is a portfolio request JSON (``vpp.portfolio``) ready for
``vpp.portfolio.validate_portfolio``; a site's ``id`` is its stored name (suffixed
``@<account id>`` where two accounts use the same name).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from api.references import AccountScope, expand_sensors, site_as_request
from store import Site
from vpp.errors import NotFoundError, RequestValidationError
from vpp.timeseries import iso_duration

__all__ = ["entry_ids", "matching_sites", "portfolio_for_connections"]


logger = logging.getLogger(__name__)


def portfolio_for_connections(
    session: Session,
    account_ids: list[int] | tuple[int, ...],
    *,
    congestion_point: str | None = None,
    eans: list[str] | None = None,
    start: datetime | str,
    duration: timedelta | str,
    resolution: timedelta | str = "PT15M",
    commitments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The portfolio request of the accounts' sites behind ``congestion_point`` (their
    ``congestion_point`` equals it) or with a connection EAN in ``eans`` (exactly one of the
    two), over ``[start, start + duration)``.

    Raises :class:`RequestValidationError` (422) when neither or both selectors are given,
    :class:`NotFoundError` (404) when no site matches, or (for ``eans``) when an EAN has no
    site of these accounts.
    """
    sites = matching_sites(session, account_ids, congestion_point=congestion_point, eans=eans)
    entries = [
        {"id": entry_id, **site_as_request(site)} for entry_id, site in entry_ids(sites).items()
    ]
    body: dict[str, Any] = {
        "start": start.isoformat() if isinstance(start, datetime) else start,
        "duration": iso_duration(duration) if isinstance(duration, timedelta) else duration,
        "resolution": iso_duration(resolution) if isinstance(resolution, timedelta) else resolution,
        "sites": entries,
        "target": None,
    }
    if commitments:
        body["commitments"] = [dict(c) for c in commitments]
    # the accounts' own view: sensors of these accounts only
    viewer = AccountScope(tuple(account_ids))
    logger.info(
        "portfolio of %d sites for %s",
        len(entries),
        f"congestion point {congestion_point}" if congestion_point else f"{len(eans or [])} EANs",
    )
    return expand_sensors(session, viewer, body)


def entry_ids(sites: list[Site]) -> dict[str, Site]:
    """The portfolio entry id of each site: its name, or ``name@account`` where two accounts
    use the same name."""
    names = [s.name for s in sites]
    return {
        (s.name if names.count(s.name) == 1 else f"{s.name}@{s.account_id}"): s for s in sites
    }


def matching_sites(
    session: Session,
    account_ids: list[int] | tuple[int, ...],
    *,
    congestion_point: str | None = None,
    eans: list[str] | None = None,
) -> list[Site]:
    """The stored sites selected as in :func:`portfolio_for_connections`, by id."""
    if (congestion_point is None) == (eans is None):
        raise RequestValidationError.single(
            "congestion-point", "give a congestion point or a list of connection EANs"
        )
    if not account_ids:
        raise NotFoundError("no account to look for sites in")
    query = select(Site).where(Site.account_id.in_(list(account_ids))).order_by(Site.id)
    query = query.options(selectinload(Site.devices))
    if congestion_point is not None:
        if not congestion_point.strip():
            raise RequestValidationError.single("congestion-point", "must not be empty")
        sites = list(session.scalars(query.where(Site.congestion_point == congestion_point)))
        if not sites:
            raise NotFoundError(f"no site behind congestion point {congestion_point!r}")
        return sites
    assert eans is not None
    if not eans:
        raise RequestValidationError.single("connections", "give at least one EAN")
    sites = list(session.scalars(query.where(Site.ean.in_(eans))))
    missing = [e for e in dict.fromkeys(eans) if e not in {s.ean for s in sites}]
    if missing:
        raise NotFoundError(f"no site with connection EAN {', '.join(map(repr, missing))}")
    return sites
