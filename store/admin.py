"""The admin's way in: the bootstrap token of ``vpp serve`` and ``vpp admin token``.

Whatever happened, the admin gets back in:

* A first start (the admin never held a token) prints a new token, but stores it only once
  the server is up (:func:`prepare_admin`, then :func:`store_bootstrap_token`): a start that
  fails before (a taken port) stores nothing, so the next start prints a token again.
* A revoked ``VPP_ADMIN_TOKEN`` no longer authenticates; the server logs that and starts
  anyway (refusing to start would lock out the one person who can fix it).
* ``vpp admin token``, with access to the database, mints a new token for the admin
  (:func:`mint_admin_token`).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.tables import ApiToken, utcnow

__all__ = [
    "BOOTSTRAP_TOKEN_NAME",
    "REVOKED_ADMIN_TOKEN",
    "AdminBootstrap",
    "database_unreachable",
    "mint_admin_token",
    "prepare_admin",
    "store_bootstrap_token",
]


logger = logging.getLogger(__name__)

BOOTSTRAP_TOKEN_NAME = "bootstrap"
REVOKED_ADMIN_TOKEN = (
    "VPP_ADMIN_TOKEN was revoked and no longer authenticates; starting without it. "
    "Mint a new admin token with `vpp admin token` (same VPP_DATABASE_URL) and set "
    "VPP_ADMIN_TOKEN to it, or unset it"
)


@dataclass(frozen=True)
class AdminBootstrap:
    """What :func:`prepare_admin` found."""

    user_id: int
    pending_token: str | None
    """A first start's token, not stored yet: store it once the server is up."""
    revoked: bool
    """``VPP_ADMIN_TOKEN`` is set but revoked (logged; it does not authenticate)."""


def prepare_admin(sessions: sessionmaker[Session], configured: str | None) -> AdminBootstrap:
    """Make sure the admin account and user exist (:func:`repo.ensure_admin`) and that the
    user holds ``configured`` (``VPP_ADMIN_TOKEN``) if given.

    A revoked ``configured`` token is logged as an error, not raised. Without ``configured``
    and when the admin has never held a token, the result carries a new token to store with
    :func:`store_bootstrap_token` after a successful start. Raises ``ValueError`` for a
    configured token that is empty or another user's.
    """
    if configured is not None:
        try:
            with sessions.begin() as session:
                user, _ = repo.ensure_admin(session, token=configured)
                return AdminBootstrap(user.id, None, revoked=False)
        except repo.RevokedTokenError:
            logger.error(REVOKED_ADMIN_TOKEN)
        # the failed transaction was rolled back: the admin itself still has to exist
        with sessions.begin() as session:
            user, _ = repo.ensure_admin(session, issue=False)
            return AdminBootstrap(user.id, None, revoked=True)
    with sessions.begin() as session:
        user, _ = repo.ensure_admin(session, issue=False)
        held = session.scalar(
            select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id)
        )
        # Any token ever held, revoked ones included, means the bootstrap is done: a fresh
        # token on every start of an admin who revoked theirs would put secrets in logs.
        pending = repo.TOKEN_PREFIX + secrets.token_urlsafe(32) if held == 0 else None
        return AdminBootstrap(user.id, pending, revoked=False)


def store_bootstrap_token(sessions: sessionmaker[Session], bootstrap: AdminBootstrap) -> None:
    """Store the pending token of :func:`prepare_admin` (a no-op without one)."""
    if bootstrap.pending_token is None:
        return
    with sessions.begin() as session:
        row = ApiToken(
            user_id=bootstrap.user_id,
            name=BOOTSTRAP_TOKEN_NAME,
            token_hash=repo.hash_token(bootstrap.pending_token),
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        logger.info("stored the bootstrap token (id %s) of user id %s", row.id, row.user_id)


def mint_admin_token(session: Session, name: str) -> tuple[ApiToken, str]:
    """A new token ``name`` for the admin (created first if missing): the row and the plain
    token, which is not stored and cannot be shown again."""
    user, _ = repo.ensure_admin(session, issue=False)
    row, token = repo.issue_token(session, user, name)
    logger.info(
        "minted admin token %r (id %s) for user %r of account %r",
        name,
        row.id,
        user.name,
        user.account.name,
    )
    return row, token


def database_unreachable(database_url: str, err: OperationalError) -> str:
    """One line for an operator: which database (password hidden) and the driver's reason."""
    reason = str(err.orig if err.orig is not None else err).strip().splitlines()
    where = make_url(database_url).render_as_string(hide_password=True)
    return f"cannot use the database {where} (VPP_DATABASE_URL): {reason[0] if reason else err}"
