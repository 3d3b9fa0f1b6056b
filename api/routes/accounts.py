"""Accounts, users and API tokens.

* Every caller sees its own account; a **consultancy** account also sees (and its admins
  manage) its client accounts. The account made by ``vpp serve`` on first start is the
  platform's consultancy account: its admin creates the other accounts.
* Roles: ``admin`` manages users and tokens, ``operator`` also writes sites, series and jobs,
  ``viewer`` reads. Another account's things answer 404, not 403.
* Tokens are shown once, when issued; the database keeps only their SHA-256.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response

from api import schemas
from api.deps import AdminDep, Caller, CallerDep, KnownQuery, SessionDep
from api.fields import IdPath, Name
from api.problems import errors, link
from store import Account, ApiToken, User
from store import repository as repo
from vpp.device import Spec
from vpp.errors import ConflictError, NotFoundError, PermissionDeniedError

__all__ = [
    "AccountIn",
    "TokenIn",
    "UserIn",
    "account_json",
    "create_account",
    "create_user",
    "issue_token",
    "list_accounts",
    "list_users",
    "me",
    "revoke_token",
    "router",
]

router = APIRouter(prefix="/api/v1", tags=["accounts"], dependencies=[KnownQuery])


class AccountIn(Spec):
    name: Name
    kind: Literal["aggregator", "consultancy", "dso"] = "aggregator"


class UserIn(Spec):
    name: Name
    role: Literal["admin", "operator", "viewer"] = "operator"


class TokenIn(Spec):
    name: Name = "api"


def account_json(a: Account) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "kind": a.kind, "parent": a.parent_account_id}


@router.get("/me", response_model=schemas.Me)
def me(caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    account = session.get(Account, caller.account_id)
    assert account is not None
    return {
        "user": caller.user,
        "role": caller.role,
        "platform-admin": caller.platform_admin,
        "account": account_json(account),
        "visible-accounts": list(caller.visible),
    }


@router.get("/accounts", response_model=list[schemas.Account])
def list_accounts(caller: CallerDep, session: SessionDep) -> list[dict[str, Any]]:
    return [account_json(a) for a in (session.get(Account, i) for i in caller.visible) if a]


@router.post(
    "/accounts",
    status_code=201,
    response_model=schemas.Account,
    responses=errors(
        e403="you are not an admin, or not of a consultancy account",
        e409="an account of that name exists",
    ),
)
def create_account(body: AccountIn, caller: AdminDep, session: SessionDep) -> dict[str, Any]:
    """A client account of the caller's consultancy account."""
    parent = session.get(Account, caller.account_id)
    assert parent is not None
    if parent.kind != "consultancy":
        raise PermissionDeniedError("only a consultancy account's admins create accounts")
    if session.query(Account).filter(Account.name == body.name).first() is not None:
        raise ConflictError(f"an account named {body.name!r} exists")
    return account_json(repo.get_or_create_account(session, body.name, body.kind, parent=parent))


def _managed_account(session: Any, caller: Caller, account_id: int) -> Account:
    account: Account | None = session.get(Account, account_id)
    if account is None or not caller.may_see(account.id):
        raise NotFoundError(f"no account {account_id}")
    return account


@router.post(
    "/accounts/{account_id}/users",
    status_code=201,
    response_model=schemas.User,
    responses=errors(403, 404, e409="the account has a user of that name"),
)
def create_user(
    account_id: IdPath, body: UserIn, caller: AdminDep, session: SessionDep
) -> dict[str, Any]:
    account = _managed_account(session, caller, account_id)
    try:
        user = repo.create_user(session, account, body.name, body.role)
    except repo.RecordExistsError as err:
        raise ConflictError(str(err)) from None
    return {"id": user.id, "name": user.name, "role": user.role, "account": account.id}


@router.get(
    "/accounts/{account_id}/users",
    response_model=list[schemas.User],
    responses=errors(403, 404),
)
def list_users(account_id: IdPath, caller: AdminDep, session: SessionDep) -> list[dict[str, Any]]:
    account = _managed_account(session, caller, account_id)
    users = session.query(User).filter(User.account_id == account.id).order_by(User.id)
    return [{"id": u.id, "name": u.name, "role": u.role, "account": account.id} for u in users]


@router.post(
    "/users/{user_id}/tokens",
    status_code=201,
    response_model=schemas.Token,
    responses=errors(403, 404),
)
def issue_token(
    user_id: IdPath, body: TokenIn, caller: AdminDep, session: SessionDep
) -> dict[str, Any]:
    """A new API token for the user; its text is in this response only."""
    user = session.get(User, user_id)
    if user is None or not caller.may_see(user.account_id):
        raise NotFoundError(f"no user {user_id}")
    row, plain = repo.issue_token(session, user, body.name)
    return {"id": row.id, "name": row.name, "user": user.id, "token": plain}


@router.delete("/tokens/{token_id}", status_code=204, responses=errors(403, 404))
def revoke_token(token_id: IdPath, caller: AdminDep, session: SessionDep) -> Response:
    row = session.get(ApiToken, token_id)
    if row is None or not caller.may_see(row.user.account_id):
        raise NotFoundError(f"no token {token_id}")
    repo.revoke_token(session, token_id)
    return Response(status_code=204)


link(("POST", "/api/v1/accounts", 201), "CreateUser",
     ("POST", "/api/v1/accounts/{account_id}/users"), account_id="$response.body#/id")
link(("POST", "/api/v1/accounts", 201), "ListUsers",
     ("GET", "/api/v1/accounts/{account_id}/users"), account_id="$response.body#/id")
link(("POST", "/api/v1/accounts/{account_id}/users", 201), "IssueToken",
     ("POST", "/api/v1/users/{user_id}/tokens"), user_id="$response.body#/id")
link(("POST", "/api/v1/users/{user_id}/tokens", 201), "RevokeToken",
     ("DELETE", "/api/v1/tokens/{token_id}"), token_id="$response.body#/id")
