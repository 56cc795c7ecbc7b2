"""Signing the tests' clients in (the orchestrator enforces every route's roles).

Accounts and tokens are made straight in the app's database with the core's own
functions (netfate.orchestrator.identity), as `netfate admin` would on the
orchestrator's host; what a request carries is then a real token the app checks.

    client(app)              a TestClient on http://127.0.0.1 (an allowed Host) whose
                             requests are signed in as a principal their route allows
                             (`AsAllowed`); a request that brings its own
                             Authorization header keeps it
    token(app, name, role)   a token of an account (made if missing); an agent's:
                             token(app, agent_name(node), AGENT, node=node)
    bearer(token)            the header
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from netfate.contract import Role
from netfate.orchestrator.identity import accounts, guard, tokens
from netfate.store.tables import AccountRow

BASE_URL = "http://127.0.0.1"
OPERATOR = "test-operator"
PROVIDER = "test-provider"
USER = "test-user"
CONTROLLER = "controller:test"
PASSWORD = "a test password"


def token(app: Any, name: str, role: Role, node: str | None = None) -> str:
    """A fresh token of account `name` (made with `role` if missing)."""
    now = time.time()
    with app.state.db.session() as s:
        if role in (Role.AGENT, Role.CONTROLLER):
            tok, _, _ = accounts.machine_credential(s, name, role, node, 3600.0, now)
            return tok
        acct = accounts.get(s, name)
        if acct is None:
            acct, _ = accounts.create(s, name, role, PASSWORD, now)
        tok, _ = tokens.issue(s, acct, tokens.API, 3600.0, now)
        return tok


def bearer(tok: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tok}"}


def account(app: Any, name: str) -> AccountRow | None:
    with app.state.db.session() as s:
        return accounts.get(s, name)


def template_regex(path: str) -> str:
    """A route's path template as a regex with a named group per parameter."""
    out = []
    for part in re.split(r"(\{\w+(?::\w+)?\})", path):
        m = re.fullmatch(r"\{(\w+)(:path)?\}", part)
        if m is None:
            out.append(re.escape(part))
        else:
            out.append(f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})")
    return "".join(out)


class AsAllowed(httpx.Auth):
    """Signs each request in as a principal its route allows: the operator when the
    route is an operator's, else the agent of the path's node, the controller, a
    user, a provider (in that order). PUBLIC routes go without credentials. A user's
    or a provider's request is signed in as the user or provider it names (a path's
    {email}, {user} or {provider}, ?pn=, ?user=, a JSON body's by, owner, email, user
    or provider: the identity layer lets each name only itself), else USER or
    PROVIDER."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.make = True
        """Make a token (and its account) on first use; False: a principal not made
        before signs in as its role's default one (`premake`), e.g. a fuzzer's random
        user name, which the identity layer then refuses (403)."""
        self._tokens: dict[tuple[str, str | None], str] = {}
        self._routes: list[tuple[str, re.Pattern[str], tuple[Role, ...]]] | None = None

    def routes(self) -> list[tuple[str, re.Pattern[str], tuple[Role, ...]]]:
        if self._routes is None:
            out = []
            for key, roles in self.app.state.roles.items():
                method, path = key.split(" ", 1)
                out.append((method, re.compile(f"^{template_regex(path)}$"), roles))
            # literal paths before parametrised ones, as the router would prefer them
            out.sort(key=lambda r: r[1].pattern.count("(?P"))
            self._routes = out
        return self._routes

    def _roles(self, method: str, path: str) -> tuple[tuple[Role, ...], dict[str, str]] | None:
        method = "GET" if method == "HEAD" else method
        for m, rx, roles in self.routes():
            if m == method and (hit := rx.match(path)):
                return roles, hit.groupdict()
        return None

    def premake(self, role: Role, names: Iterable[str | None] = (None,)) -> None:
        """Tokens of these principals of `role` (None: its default one; an agent's
        names are nodes), made now."""
        for name in names:
            if role is Role.AGENT:
                self._token(role, name)
            else:
                self._token(role, None, name)

    def _token(self, role: Role, node: str | None, named: str | None = None) -> str:
        key = (role.value, node or named)
        if key not in self._tokens and not self.make:
            key = (role.value, None)
            node = named = None
        if key not in self._tokens:
            name = {
                Role.OPERATOR: OPERATOR,
                Role.PROVIDER: named or PROVIDER,
                Role.USER: named or USER,
                Role.CONTROLLER: CONTROLLER,
            }.get(role) or accounts.agent_name(node or "?")
            self._tokens[key] = token(self.app, name, role, node)
        return self._tokens[key]

    def headers_for(self, method: str, url: str, body: bytes = b"") -> dict[str, str]:
        """The Authorization header this client sends with `method url` (a token is
        made on first use), or none for a PUBLIC route."""
        u = httpx.URL(url)
        found = self._roles(method, u.path)
        roles, params = found if found is not None else ((Role.OPERATOR,), {})
        return self.headers_as(roles, params, dict(u.params), body)

    def headers_as(
        self,
        roles: Iterable[Role],
        params: Mapping[str, Any],
        query: Mapping[str, Any],
        body: bytes = b"",
    ) -> dict[str, str]:
        """The header for a request to a route of these roles, with these path and
        query parameters and body (see the class doc)."""
        if Role.PUBLIC in roles:
            return {}
        for role in (Role.OPERATOR, Role.AGENT, Role.CONTROLLER, Role.USER, Role.PROVIDER):
            if role in roles:
                node = params.get("node") if role is Role.AGENT else None
                named = _named(role, params, query, body) if role in guard.SELF_PATH else None
                return bearer(self._token(role, None if node is None else str(node), named))
        return {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "authorization" not in request.headers:
            try:
                body = request.content
            except httpx.RequestNotRead:  # a streamed body: it names nobody here
                body = b""
            request.headers.update(self.headers_for(request.method, str(request.url), body))
        yield request


def _named(
    role: Role, params: Mapping[str, Any], query: Mapping[str, Any], body: bytes
) -> str | None:
    """The user or provider a request names (guard.SELF_PATH, SELF_QUERY, SELF_BODY),
    if any."""
    for key in guard.SELF_PATH[role]:
        if params.get(key):
            return str(params[key])
    for key in guard.SELF_QUERY[role]:
        if query.get(key):
            return str(query[key])
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in guard.SELF_BODY[role]:
            if isinstance(data.get(key), str):
                return str(data[key])
    return None


@contextmanager
def client(app: Any, *, signed_in: bool = True, **kw: Any) -> Iterator[TestClient]:
    """`with client(app) as c:` — a started TestClient, signed in per route."""
    with TestClient(app, base_url=BASE_URL, **kw) as c:
        if signed_in:
            c.auth = AsAllowed(app)
        yield c
