"""Enforcement: every route's declared roles, checked in one place.

`create_app` installs `enforce` as a dependency of the whole app, so it runs for
every route (the core's, the SDN API, every service's, the dashboard's page)
before the route's own code, with the route it matched:

    route declared PUBLIC          passes; no credential is looked at
    no credential                  401 (WWW-Authenticate: Bearer)
    malformed Authorization        401 (never 500)
    unknown/expired/revoked token  401; a disabled account's too
    role not declared for route    403
    agent, route with {node}       403 unless it is the agent's own node
    user naming another user       404 for another's {email} or {user} in the path; 403
                                   for another in ?pn=, ?user= or a JSON body's by,
                                   owner, email or user
    provider naming another        404 for another's {provider} in the path; 403 for
                                   another in a JSON body's provider
    web session, unsafe method     403 without the session's CSRF token in X-CSRF-Token,
                                   or with an Origin that is not an allowed host
    a page (the dashboard, a       401 as above to an API client; a browser (its Accept
    service's `pages`), no valid   names text/html) is sent to /signin?next=PATH
    credential                     instead (303; `SignInFirst`, identity/pages.py)
    a page, another role           403; a browser gets it as the sign-in form saying so

A credential is ``Authorization: Bearer TOKEN`` or the web session cookie; the
bearer token wins when a request has both (and needs no CSRF token: a browser
never adds it by itself). The handler gets the principal from `PrincipalDep`.

The audit: each state-changing request a person or a provider made gets a
`RequestServed` event with its actor. It is written in the request's own
transaction, by its first commit (`audit_into`, the request session's
before_commit), so it costs one more row, not one more transaction: on SQLite a
second writing transaction per request queued again for the one write lock behind
every other request's, and the answer waited for it (creates/s fell to a third
under 50 clients; bench/contention.py). A request that succeeds without committing
through its own session (a handler that writes through a session of its own) is
recorded by `Audit` after the handler, before the answer leaves. Agents' and the
controller's requests (reports and heartbeats, every second) are not recorded one
by one; the events they cause carry their actor like every event recorded while a
request is served (store/events.ACTOR).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.routing import iter_route_contexts
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netfate.contract import Role, Roles
from netfate.model.events import RequestServed
from netfate.orchestrator.identity import tokens
from netfate.orchestrator.identity.accounts import Limits
from netfate.orchestrator.identity.tokens import Principal, TokenCache
from netfate.store.db import Database
from netfate.store.events import ACTOR, READS_ALL, record, write

log = logging.getLogger("netfate.identity")

SESSION_COOKIE = "netfate_session"
CSRF_COOKIE = "netfate_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
AUDITED_ROLES = frozenset({Role.OPERATOR, Role.PROVIDER, Role.USER})
UNCHECKED = Principal(name="", role=Role.OPERATOR, account_id=0, via="unchecked")
"""The principal of every request to an app built with enforcement off."""
MAX_AUTHORIZATION = 512


class Identity:
    """The identity layer of one app: the roles of each route, the token cache, the
    sign-in limits, the hosts a browser may name."""

    def __init__(
        self,
        db: Database,
        *,
        enforce: bool = True,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self.db = db
        self.enforce = enforce
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.cache = TokenCache()
        self.limits = Limits()
        self._routes: dict[tuple[int, str], Roles] = {}
        self._pages: set[int] = set()
        """The routes (by id) that are web pages: a browser is sent to sign in."""
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}
        """Lookups under way, by token digest (used on the event loop's thread only)."""
        self.lookups = 0
        """Tokens looked up in the database (cache misses): a figure for the benchmark."""

    def bind(
        self,
        routes: Iterable[BaseRoute],
        matrix: Mapping[str, Roles],
        pages: Iterable[str] = (),
    ) -> None:
        """Map each route object (as the router hands it to a request) to its roles;
        `pages` ("GET /path") are the web pages among them."""
        page_keys = set(pages)
        for rc in iter_route_contexts(list(routes)):
            if rc.path is None:
                continue
            for method in rc.methods or ():
                key = f"{method} {rc.path}"
                if key in matrix:
                    self._routes[(id(rc.original_route), method)] = matrix[key]
                if key in page_keys:
                    self._pages.add(id(rc.original_route))

    def is_page(self, route: Any) -> bool:
        return route is not None and id(route) in self._pages

    def roles_of(self, route: Any, method: str) -> Roles | None:
        if route is None:
            return None
        return self._routes.get((id(route), "GET" if method == "HEAD" else method))

    def host_allowed(self, host: str) -> bool:
        return not self.allowed_hosts or "*" in self.allowed_hosts or host in self.allowed_hosts

    async def principal_of(self, token: str) -> Principal | None:
        """The principal of a token: the cache, else the database (in a worker thread).
        Requests that miss the cache for the same token at once share one lookup: when
        a busy client's entry ages out, its tens of requests in flight would otherwise
        each take a pooled connection and a worker thread to read the same row."""
        d = tokens.digest(token)
        now = time.time()
        got = self.cache.get(d, now)
        if got is not None:
            return got
        lookup = self._lookups.get(d)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up(d, now))
            self._lookups[d] = lookup
            lookup.add_done_callback(lambda _t: self._lookups.pop(d, None))
        return await asyncio.shield(lookup)  # one caller gone does not cancel the others'

    async def _look_up(self, d: str, now: float) -> Principal | None:
        def read() -> Principal | None:
            with self.db.session(write=False) as s:
                return tokens.lookup(s, d, now)

        self.lookups += 1
        got = await asyncio.to_thread(read)
        if got is not None:
            self.cache.put(d, got, now)
        return got


def _refuse(status: int, detail: str) -> HTTPException:
    headers = {"WWW-Authenticate": 'Bearer realm="netfate"'} if status == 401 else None
    return HTTPException(status_code=status, detail=detail, headers=headers)


def _bearer(header: str) -> str:
    """The token of an ``Authorization: Bearer TOKEN`` header; 401 if malformed."""
    if len(header) > MAX_AUTHORIZATION:
        raise _refuse(401, "malformed Authorization header")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not tokens.TOKEN_RE.match(value):
        raise _refuse(401, "malformed Authorization header: expected Bearer TOKEN")
    return value


def origin_host(request: Request) -> str | None:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin
    return (urlsplit(origin).hostname or "").lower()


class SignInFirst(Exception):
    """A browser asked for a page without a valid session: it is sent to `location`
    (the sign-in page, which comes back to the page once signed in). With `refused`,
    its session's role may not see the page: the sign-in form says so (403)."""

    def __init__(self, location: str, refused: str | None = None) -> None:
        super().__init__(location)
        self.location = location
        self.refused = refused


MAX_NEXT = 2048


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this origin, else "/". Anything that
    could leave the origin (a scheme, "//host", a backslash browsers read as a slash,
    control characters) or loop back to the sign-in page is refused: no open redirect."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return "/"
    if value.startswith("//") or "\\" in value or any(ord(c) < 0x21 or c == "\x7f" for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith("/signin"):
        return "/"
    return value


def here(request: Request) -> str:
    """The request's own path and query, as a `next` (safe_next)."""
    return safe_next(request.url.path + (f"?{request.url.query}" if request.url.query else ""))


def _wants_html(request: Request) -> bool:
    """A browser's navigation (its Accept names HTML); fetch() and API clients do not."""
    return "text/html" in request.headers.get("accept", "")


async def enforce(request: Request) -> None:
    """The app's dependency: authenticate, then check the route's roles (module doc)."""
    try:
        await _enforce(request)
    except HTTPException as e:
        ident: Identity = request.app.state.identity
        if (
            e.status_code in (401, 403)
            and request.method in ("GET", "HEAD")
            and ident.is_page(request.scope.get("route"))
            and _wants_html(request)
        ):
            location = "/signin?next=" + quote(here(request), safe="")
            refused = str(e.detail) if e.status_code == 403 else None
            raise SignInFirst(location, refused) from None
        raise


async def _enforce(request: Request) -> None:
    ident: Identity = request.app.state.identity
    route = request.scope.get("route")
    roles = ident.roles_of(route, request.method)
    if roles is None:  # every route is declared (roles.matrix): fail closed all the same
        log.error("no roles known for %s %s", request.method, request.url.path)
        raise _refuse(403, "this route declares no roles")
    if Role.PUBLIC in roles:
        return
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    principal = await _authenticate(request, ident, header, cookie)
    if principal.role not in roles:
        raise _refuse(403, f"not for the {principal.role.value} role")
    node = request.path_params.get("node")
    if principal.role is Role.AGENT and node is not None and node != principal.node:
        raise _refuse(403, f"this credential acts for node {principal.node} only")
    if principal.role in SELF_PATH:
        await _acts_as_itself(request, principal)
    request.state.principal = principal
    ACTOR.set(principal.name)
    READS_ALL.set(principal.operator)


async def _authenticate(
    request: Request, ident: Identity, header: str | None, cookie: str | None
) -> Principal:
    """The principal of the request's credential: the bearer token, else the session
    cookie (with its CSRF token and Origin on a change); 401 or 403 (module doc)."""
    if header is not None:
        token = _bearer(header)
    elif cookie is not None:
        if not tokens.TOKEN_RE.match(cookie):
            raise _refuse(401, "malformed session cookie")
        token = cookie
    else:
        raise _refuse(401, "sign in first: no credentials")
    principal = await ident.principal_of(token)
    if principal is None:
        raise _refuse(401, "invalid, expired or revoked credentials")
    if (principal.via == tokens.SESSION) != (header is None):
        # A session token in a header, or an API token in the cookie: not how each is used.
        raise _refuse(401, "invalid, expired or revoked credentials")
    if principal.via == tokens.SESSION and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), tokens.csrf_for(token).encode()):
            raise _refuse(403, f"missing or wrong CSRF token ({CSRF_HEADER} header)")
        origin = origin_host(request)
        if origin is not None and not (origin != "null" and ident.host_allowed(origin)):
            raise _refuse(403, "request from another origin")
    return principal


async def web_session(request: Request) -> Principal | None:
    """On a PUBLIC route that also signs its callers in by itself (the firewall's
    /me/rules: HTTP Basic), the web session's principal when the request carries the
    session cookie and no Authorization header, checked as `enforce` checks it (401
    dead, 403 a change without its CSRF token); None otherwise. It is the request's
    principal from then on (its actor, its audit line): a handler asks for it before
    its database session (`WebSessionDep` first)."""
    if request.headers.get("authorization") is not None or SESSION_COOKIE not in request.cookies:
        return None
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    principal = await _authenticate(request, request.app.state.identity, None,
                                    request.cookies[SESSION_COOKIE])  # fmt: skip
    request.state.principal = principal
    ACTOR.set(principal.name)
    READS_ALL.set(principal.operator)
    return principal


WebSessionDep = Annotated[Principal | None, Depends(web_session)]
"""A PUBLIC handler's parameter: the web session's principal, if the request has one."""


# Where a route names the end user or the provider it acts for. An end user may name
# only itself there (the sharing service's PNs are their owners' emails; `by` is who
# accepts, declines or revokes; the streaming and catalog services' `user`), and a
# provider only itself (the streaming and catalog services' `provider`): these are
# not the caller's to declare. A provider's ?provider= is not checked: the streaming
# schedule it filters is everyone's to read.
SELF_PATH: dict[Role, tuple[str, ...]] = {
    Role.USER: ("email", "user"),
    Role.PROVIDER: ("provider",),
}
SELF_QUERY: dict[Role, tuple[str, ...]] = {Role.USER: ("pn", "user"), Role.PROVIDER: ()}
SELF_BODY: dict[Role, tuple[str, ...]] = {
    Role.USER: ("by", "owner", "email", "user"),
    Role.PROVIDER: ("provider",),
}


async def _acts_as_itself(request: Request, p: Principal) -> None:
    """A user's or a provider's request names no other user or provider (module doc)."""
    for key in SELF_PATH[p.role]:
        said = request.path_params.get(key)
        if said is not None and said != p.name:
            raise _refuse(404, "not found")  # another's: not even whether it exists
    for key in SELF_QUERY[p.role]:
        said = request.query_params.get(key)
        if said is not None and said != p.name:
            raise _refuse(403, f"{key}: a {p.role.value} acts as itself only")
    if request.method in SAFE_METHODS:
        return
    try:
        body = json.loads(await request.body() or b"null")  # cached for the handler
    except ValueError:
        return  # not JSON: FastAPI refuses it (400 or 422) before the handler runs
    if isinstance(body, dict):
        for key in SELF_BODY[p.role]:
            said = body.get(key)
            if said is not None and said != p.name:
                raise _refuse(403, f"{key}: a {p.role.value} acts as itself only")


def owned(p: Principal, owner: str | None, what: str) -> None:
    """404 unless `p` may act on a row of this owner (an operator on every row): to
    anyone else another's row is as if it did not exist."""
    if not p.owns(owner):
        raise _refuse(404, f"unknown {what}")


async def unchecked(request: Request) -> None:
    """Enforcement off (tests, the API benchmark's baseline): everyone is an operator."""
    request.state.principal = UNCHECKED


def current(request: Request) -> Principal:
    """The request's principal; 401 on a PUBLIC route asked without one."""
    p: Principal | None = getattr(request.state, "principal", None)
    if p is None:
        raise _refuse(401, "sign in first: no credentials")
    return p


PrincipalDep = Annotated[Principal, Depends(current)]
"""A handler's parameter: who is asking (`Principal`)."""


AUDIT = "netfate_audit"
"""The key, in a request session's `info`, of the audit line its first commit writes."""
AUDITED = "netfate_audited"
"""The key, in the request's scope state, saying its audit line is written."""


def audit_into(request: Request, session: Session) -> None:
    """Have the first commit of this request's session write its audit line (module
    doc), if the request is a state-changing one of a person or a provider."""
    principal = getattr(request.state, "principal", None)
    if (
        request.method not in SAFE_METHODS
        and isinstance(principal, Principal)
        and principal.via != "unchecked"
        and principal.role in AUDITED_ROLES
    ):
        session.info[AUDIT] = (principal.name, request.method, request.url.path, request.scope)


def _write_audit(session: Session) -> None:
    """before_commit of a request's session: its audit line, once."""
    pending = session.info.pop(AUDIT, None)
    if pending is None:
        return
    actor, method, path, scope = pending
    reset = ACTOR.set(actor)
    try:
        write(session, RequestServed(method=method, path=path))  # plain INSERTs
    finally:
        ACTOR.reset(reset)
    session.info[AUDITED] = scope


def _audit_written(session: Session) -> None:
    """after_commit: the request's line is in the database; Audit need not write it."""
    scope = session.info.pop(AUDITED, None)
    if scope is not None:
        scope.setdefault("state", {})[AUDITED] = True


def audit_commits(db: Database) -> None:
    """Write the audit lines of `db`'s writing sessions as they commit (once per db)."""
    if not event.contains(db.sessions, "before_commit", _write_audit):
        event.listen(db.sessions, "before_commit", _write_audit)
        event.listen(db.sessions, "after_commit", _audit_written)


class Audit:
    """Records a `RequestServed` event for a successful state-changing request of a
    person or provider whose own session did not commit (module doc), before the
    answer's first byte."""

    def __init__(self, app: ASGIApp, db: Database) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})  # shared with the request's
        # Answers whose line is written (in the request's transaction) pass at once.
        # Others are held until the handler is done: its session (a FastAPI
        # dependency, closed after the answer is sent) may hold SQLite's write gate
        # until then, so recording while it is open would wait for itself.
        held: list[Message] = []

        async def forward(message: Message) -> None:
            if held or not state.get(AUDITED):
                held.append(message)
            else:
                await send(message)

        await self.app(scope, receive, forward)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        principal = state.get("principal")
        if (
            start is not None
            and not state.get(AUDITED)
            and isinstance(principal, Principal)
            and principal.via != "unchecked"
            and principal.role in AUDITED_ROLES
            and int(start["status"]) < 400
        ):
            method, path, status = scope["method"], scope["path"], int(start["status"])
            await asyncio.to_thread(self._record, principal, method, path, status)
        for message in held:
            await send(message)

    def _record(self, principal: Principal, method: str, path: str, status: int) -> None:
        ACTOR.set(principal.name)  # this worker thread's own context
        READS_ALL.set(principal.operator)
        try:
            with self.db.session() as s:
                record(s, RequestServed(method=method, path=path, status=status))
        except Exception:  # the change is made; losing its audit line must not hide it
            log.exception("could not record %s %s by %s", method, path, principal.name)
