"""Request-scoped dependencies: a database session and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.dependencies.utils import get_flat_dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from store import repository as repo
from vpp.errors import (
    AuthenticationError,
    FieldIssue,
    PermissionDeniedError,
    RequestValidationError,
)

__all__ = [
    "ROLE_RANK",
    "AdminDep",
    "Caller",
    "CallerDep",
    "KnownQuery",
    "OperatorDep",
    "SessionDep",
    "bearer",
    "get_caller",
    "get_session",
    "known_query",
    "require",
]


ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed as soon as the route returns (before the
    response is sent, so a client never reads ahead of its own write)."""
    with request.app.state.sessions.begin() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True)
class Caller:
    user_id: int
    user: str
    role: str
    account_id: int
    account_kind: str
    visible: tuple[int, ...]  # account ids this caller may see (own + consultancy clients)
    platform_admin: bool = False  # the explicit role for operations across every account

    def may_see(self, account_id: int | None) -> bool:
        return account_id is not None and account_id in self.visible

    def may_operate(self, account_id: int | None) -> bool:
        """Platform-wide records (UFTP peers, messages, offers, commitments): those of the
        visible accounts, or, for a platform admin, of every account and of none."""
        return self.platform_admin or self.may_see(account_id)

    @property
    def platform_scope(self) -> list[int] | None:
        """The account ids to filter platform-wide records by (None: all, platform admin)."""
        return None if self.platform_admin else list(self.visible)


# declares the ``bearer`` security scheme in the OpenAPI spec (Swagger's Authorize) and each
# route's security; the header itself is checked below, so that a missing or bad token gets
# our 401 problem+json (auto_error=False: this never answers by itself)
bearer = HTTPBearer(auto_error=False, description="an API token: `Authorization: Bearer <token>`")


def get_caller(
    request: Request,
    session: SessionDep,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("send a bearer token: 'Authorization: Bearer <token>'")
    user = repo.user_for_token(session, token.strip())
    if user is None:
        raise AuthenticationError("unknown or revoked token")
    account = user.account
    return Caller(
        user.id,
        user.name,
        user.role,
        account.id,
        account.kind,
        tuple(repo.visible_account_ids(session, account)),
        platform_admin=user.platform_admin and user.role == "admin",
    )


CallerDep = Annotated[Caller, Depends(get_caller)]


def require(role: str) -> Callable[[Caller], Caller]:
    """Dependency: the caller's role is at least ``role`` (viewer < operator < admin)."""

    def check(caller: CallerDep) -> Caller:
        if ROLE_RANK[caller.role] < ROLE_RANK[role]:
            raise PermissionDeniedError(f"this needs the {role} role; you are {caller.role}")
        return caller

    return check


OperatorDep = Annotated[Caller, Depends(require("operator"))]
AdminDep = Annotated[Caller, Depends(require("admin"))]


def _query_names(route: APIRoute) -> frozenset[str]:
    return frozenset(p.alias for p in get_flat_dependant(route.dependant).query_params)


def known_query(request: Request) -> None:
    """A router dependency: a query parameter the route does not read is a 422 naming it.
    Ignored, a mistyped filter (``?stauts=failed``) would answer everything."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _query_names(route))
    if unknown:
        raise RequestValidationError(
            [FieldIssue(name, "is not a parameter of this operation") for name in unknown]
        )


KnownQuery = Depends(known_query)
"""For ``APIRouter(dependencies=[KnownQuery])``."""
