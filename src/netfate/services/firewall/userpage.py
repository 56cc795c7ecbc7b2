"""The user's own page: see and edit one's personal firewall rules.

    GET /api/v1/firewall/me            the page, behind sign-in (a browser without a
                                       web session is sent to /signin first)
    GET /api/v1/firewall/me/rules      the signed-in user's rule set
    PUT /api/v1/firewall/me/rules      replace it (validated whole; on a fault nothing changes)

The page's requests carry the platform's web session (a user account, signed in at
/signin): its firewall user is the one of the account's name (404 without one), and a
change carries the session's CSRF token. An API client, or the page for an account
with no firewall user of its name, may instead sign in with the credentials the user
logs in to the captive portal with (HTTP Basic, checked against the stored hash). An
unknown user costs the same hash check as a wrong password, so the answer does not
tell which; repeated failures from one client are refused for a while (429).
"""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import HTMLResponse

from netfate.contract import Role
from netfate.model.ratelimit import WindowCounter
from netfate.orchestrator.api.deps import SessionDep
from netfate.orchestrator.api.errors import errors
from netfate.orchestrator.identity import Principal, WebSessionDep
from netfate.services.firewall import policy
from netfate.services.firewall.passwords import hash_password, verify_password
from netfate.services.firewall.tables import FirewallUserRow
from netfate.vnf.firewall.rules import RuleError

router = APIRouter()

PAGE = Path(__file__).resolve().parent / "templates" / "me.html"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
MAX_FAILURES = 5
WINDOW_S = 60.0
MAX_CLIENTS = 4096
"""Clients whose failures are remembered at once (see netfate.model.ratelimit)."""
_DUMMY_HASH = hash_password("not a password")


def _failures(request: Request) -> WindowCounter:
    """This app's failed sign-ins per client address, in bounded memory."""
    st = request.app.state
    if not hasattr(st, "netfate_signin_failures"):
        st.netfate_signin_failures = WindowCounter(MAX_FAILURES, WINDOW_S, MAX_CLIENTS)
    failures: WindowCounter = st.netfate_signin_failures
    return failures


def _signed_in(request: Request, session: SessionDep) -> FirewallUserRow:
    client = request.client.host if request.client else "?"
    failures = _failures(request)
    if failures.limited(client, time.monotonic()):
        raise HTTPException(
            429, detail="too many failed sign-ins; wait a minute", headers={"Retry-After": "60"}
        )
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    name = password = ""
    if scheme.lower() == "basic" and len(value) <= 1024:
        try:
            name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name = password = ""
    user = session.get(FirewallUserRow, name) if name and len(name) <= 64 else None
    ok = verify_password(password.encode(), user.password_hash if user else _DUMMY_HASH)
    if user is None or not ok:
        failures.record(client, time.monotonic())
        # No WWW-Authenticate header: the page signs in by itself, and the header would
        # make browsers pop up their own password dialog over it.
        raise HTTPException(401, detail="wrong user name or password")
    return user


def _user_of(request: Request, session: SessionDep, web: Principal | None) -> FirewallUserRow:
    """The web session's user (the firewall user of its account's name), else HTTP Basic's."""
    if web is None:
        return _signed_in(request, session)
    if web.role is not Role.USER:
        raise HTTPException(403, detail=f"not for the {web.role.value} role")
    user = session.get(FirewallUserRow, web.name)
    if user is None:
        raise HTTPException(404, detail=f"no personal firewall is registered for {web.name}")
    return user


@router.get("/me", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}  # fmt: skip
    return HTMLResponse(PAGE.read_text(), headers=headers)


@router.get("/me/rules", responses=errors(401, 403, 404, 429))
def my_rules(request: Request, web: WebSessionDep, session: SessionDep) -> dict[str, Any]:
    user = _user_of(request, session, web)
    return {
        "user": user.name,
        "version": user.rules_version,
        "rules": user.rules or policy.DEFAULT_RULES,
        "status": user.status,
        "access_node": user.access_node,
    }


@router.put("/me/rules", responses=errors(401, 403, 404, 429))
def put_my_rules(
    request: Request, web: WebSessionDep, session: SessionDep, body: dict[str, Any] = Body(...)
) -> dict[str, Any]:
    """Replace the signed-in user's rule set; a set that does not parse changes nothing."""
    user = _user_of(request, session, web)
    try:
        policy.set_rules(session, user, body)
    except (RuleError, policy.PolicyError) as e:
        raise HTTPException(422, detail=str(e)) from None
    session.commit()
    return {"user": user.name, "version": user.rules_version, "rules": user.rules}
