"""Sign-in and accounts, mounted under /api/v1:

    POST   /auth/token               name + password -> an API token (PUBLIC; 429 past
                                     the failure limits)
    DELETE /auth/token               revoke the token this request carries
    POST   /auth/session             name + password -> the web session cookie (HttpOnly,
                                     SameSite=Strict, Secure over TLS) and its CSRF token
                                     (also in the netfate_csrf cookie) (PUBLIC)
    DELETE /auth/session             sign out: revoke the session, clear its cookies
    GET    /auth/me                  who this credential is
    GET    /accounts                 (operator) every account
    POST   /accounts                 (operator) an operator, provider or user; a password
                                     is made and shown once when none is given
    GET    /accounts/{name}          (operator)
    PATCH  /accounts/{name}          (operator) {disabled}: disabling revokes its tokens
    POST   /accounts/{name}/password (operator) a new password (made when none is given);
                                     revokes its tokens
    POST   /accounts/agents          (operator) a node agent's token (one live per node)
    POST   /accounts/controllers     (operator) an SDN controller's token

A token is shown once, when it is made; the store keeps its SHA-256 only.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, Strict
from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.contract import Role
from netfate.model.events import SignedIn
from netfate.orchestrator.api.deps import SessionDep
from netfate.orchestrator.api.errors import errors
from netfate.orchestrator.identity import accounts, tokens
from netfate.orchestrator.identity.accounts import AccountError
from netfate.orchestrator.identity.guard import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Identity,
    PrincipalDep,
)
from netfate.orchestrator.identity.tokens import Principal
from netfate.store.events import ACTOR, record
from netfate.store.tables import AccountRow, NodeRow

router = APIRouter(tags=["identity"])

MAX_TTL_S = 30 * accounts.DAY
MAX_MACHINE_TTL_S = 10 * 365 * accounts.DAY


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Numbers and flags taken strictly, as the core API's inputs (api/schemas.py): true is
# not a lifetime, "1" is not a flag.
Lifetime = Annotated[float, Strict()]


class SignIn(_In):
    name: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    ttl_s: Lifetime | None = Field(
        default=None, gt=0, le=MAX_TTL_S, description="Lifetime (default 12 hours)"
    )


class AccountIn(_In):
    name: str = Field(min_length=1, max_length=254)
    role: Role = Field(description="operator, provider or user")
    password: str | None = Field(
        default=None, max_length=1024, description="Omit to have one made (shown once)"
    )


class AccountPatch(_In):
    disabled: Annotated[bool, Strict()]


class PasswordIn(_In):
    password: str | None = Field(default=None, max_length=1024)


class AgentIn(_In):
    node: str = Field(min_length=1, max_length=64)
    ttl_s: Lifetime | None = Field(default=None, gt=0, le=MAX_MACHINE_TTL_S)


class ControllerIn(_In):
    name: str = Field(default="sdn", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    ttl_s: Lifetime | None = Field(default=None, gt=0, le=MAX_MACHINE_TTL_S)


def _identity(request: Request) -> Identity:
    ident: Identity = request.app.state.identity
    return ident


def _fail(e: AccountError) -> HTTPException:
    headers = None
    if e.retry_after is not None:
        headers = {"Retry-After": str(max(1, round(e.retry_after)))}
    return HTTPException(e.status, detail=str(e), headers=headers)


def _sign_in(request: Request, session: Session, body: SignIn, kind: str) -> dict[str, Any]:
    ident = _identity(request)
    now = time.time()
    client = request.client.host if request.client else "?"
    try:
        acct = accounts.sign_in(session, body.name, body.password, client, ident.limits, now)
    except AccountError as e:
        raise _fail(e) from None
    ttl = body.ttl_s or ident.limits.token_ttl_s
    token, row = tokens.issue(session, acct, kind, ttl, now)
    ACTOR.set(acct.name)
    record(session, SignedIn(account=acct.name, via=kind))
    session.commit()
    return {"token": token, "expires_at": row.expires_at, "account": accounts.view(acct)}


def me_view(p: Principal) -> dict[str, Any]:
    return {"name": p.name, "role": p.role.value, "node": p.node, "via": p.via,
            "expires_at": p.expires_at}  # fmt: skip


@router.post("/auth/token", responses=errors(401, 409, 429))
def sign_in_token(body: SignIn, request: Request, session: SessionDep) -> dict[str, Any]:
    """Sign in with a name and password: an API token, shown once (send it as
    ``Authorization: Bearer TOKEN``)."""
    return _sign_in(request, session, body, tokens.API)


@router.post("/auth/session", responses=errors(401, 409, 429))
def sign_in_session(
    body: SignIn, request: Request, response: Response, session: SessionDep
) -> dict[str, Any]:
    """Sign in for the web: the session cookie, and the CSRF token that state-changing
    requests made with it send in the X-CSRF-Token header."""
    return start_web_session(request, response, session, body)


def start_web_session(
    request: Request, response: Response, session: Session, body: SignIn
) -> dict[str, Any]:
    """Sign in (AccountError's HTTPException on failure) and set the web session's
    cookies on `response`: the session (HttpOnly) and its CSRF token (readable by the
    origin's scripts). Also the sign-in page's (identity/pages.py)."""
    out = _sign_in(request, session, body, tokens.SESSION)
    token = out.pop("token")
    csrf = tokens.csrf_for(token)
    max_age = max(1, int(out["expires_at"] - time.time()))
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", secure=secure,
                        httponly=True, samesite="strict")  # fmt: skip
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, path="/", secure=secure,
                        httponly=False, samesite="strict")  # fmt: skip
    return {**out, "csrf": csrf}


def _revoke_own(request: Request, session: Session, p: Principal) -> None:
    if p.token_id is not None:
        tokens.revoke(session, p.token_id, time.time())
        session.commit()
        _identity(request).cache.drop_token(p.token_id)


@router.delete("/auth/token")
def sign_out_token(request: Request, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """Revoke the credential this request carries."""
    _revoke_own(request, session, p)
    return {"revoked": True}


@router.delete("/auth/session")
def sign_out_session(
    request: Request, response: Response, session: SessionDep, p: PrincipalDep
) -> dict[str, Any]:
    """Sign out of the web: the session is revoked and its cookies cleared."""
    _revoke_own(request, session, p)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"revoked": True}


@router.get("/auth/me")
def me(p: PrincipalDep) -> dict[str, Any]:
    return me_view(p)


# ------------------------------------------------------------------ accounts (operator)


def _account(session: Session, name: str) -> AccountRow:
    acct = accounts.get(session, name)
    if acct is None:
        raise HTTPException(404, detail=f"no account {name!r}")
    return acct


@router.get("/accounts")
def list_accounts(session: SessionDep) -> list[dict[str, Any]]:
    rows = session.scalars(select(AccountRow).order_by(AccountRow.name))
    return [accounts.view(a) for a in rows]


@router.post("/accounts", status_code=201, responses=errors(409))
def create_account(body: AccountIn, session: SessionDep) -> dict[str, Any]:
    """An operator's, provider's or user's account. Without a password one is made,
    and this answer is the only place it is shown."""
    try:
        acct, made = accounts.create(session, body.name, body.role, body.password, time.time())
    except AccountError as e:
        raise _fail(e) from None
    session.commit()
    out = accounts.view(acct)
    if made is not None:
        out["password"] = made
    return out


@router.get("/accounts/{name}", responses=errors(404))
def get_account(name: str, session: SessionDep) -> dict[str, Any]:
    return accounts.view(_account(session, name))


@router.patch("/accounts/{name}", responses=errors(404, 409))
def patch_account(
    name: str, body: AccountPatch, request: Request, session: SessionDep, p: PrincipalDep
) -> dict[str, Any]:
    """Disable (every token of it revoked at once) or enable an account."""
    if body.disabled and name == p.name:
        raise HTTPException(409, detail="an operator cannot disable their own account")
    try:
        acct = accounts.set_disabled(session, name, body.disabled, time.time())
    except AccountError as e:
        raise _fail(e) from None
    session.commit()
    _identity(request).cache.drop_account(acct.id)
    return accounts.view(acct)


@router.post("/accounts/{name}/password", responses=errors(404, 409))
def reset_password(
    name: str, body: PasswordIn, request: Request, session: SessionDep
) -> dict[str, Any]:
    """A new password (made and shown once when none is given); every token of the
    account is revoked."""
    try:
        acct, made = accounts.reset_password(session, name, body.password, time.time())
    except AccountError as e:
        raise _fail(e) from None
    session.commit()
    _identity(request).cache.drop_account(acct.id)
    out = accounts.view(acct)
    if made is not None:
        out["password"] = made
    return out


def _machine(
    request: Request, session: Session, name: str, role: Role, node: str | None, ttl: float | None
) -> dict[str, Any]:
    ident = _identity(request)
    now = time.time()
    try:
        token, row, acct = accounts.machine_credential(
            session, name, role, node, ttl or ident.limits.machine_ttl_s, now
        )
    except AccountError as e:
        raise _fail(e) from None
    session.commit()
    ident.cache.drop_account(acct.id)
    return {"token": token, "expires_at": row.expires_at, "account": accounts.view(acct)}


@router.post("/accounts/agents", status_code=201, responses=errors(404, 409))
def agent_credential(body: AgentIn, request: Request, session: SessionDep) -> dict[str, Any]:
    """The token of NODE's agent, shown once: it may read only that node's desired
    state and report only for it. Any earlier token of that agent is revoked."""
    if session.get(NodeRow, body.node) is None:
        raise HTTPException(404, detail=f"unknown node {body.node!r}")
    name = accounts.agent_name(body.node)
    return _machine(request, session, name, Role.AGENT, body.node, body.ttl_s)


@router.post("/accounts/controllers", status_code=201, responses=errors(409))
def controller_credential(
    body: ControllerIn, request: Request, session: SessionDep
) -> dict[str, Any]:
    """An SDN controller's token, shown once: it may read the network view and post
    SDN events. Any earlier token of that controller is revoked."""
    name = accounts.controller_name(body.name)
    return _machine(request, session, name, Role.CONTROLLER, None, body.ttl_s)
