"""Who may use each route (DESIGN.md, convention 12), as data.

The core's routes are declared here, each service's in its contract
(``Service.roles``, paths below its prefix). ``matrix()`` joins them with the
routes the app really has when the app is built: a route nobody declared, or a
declaration for a route that does not exist, is a ContractError, so no route is
added without saying who it is for. The OpenAPI document carries each
operation's roles as ``x-roles`` (and, unless PUBLIC, the credentials it takes
and its 401 and 403 answers); ``app.state.roles`` holds the matrix, which the
identity layer (orchestrator/identity/guard.py) enforces on every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute

from netfate.contract import ContractError, Role, Roles, Service

API = "/api/v1"
OPERATOR, PROVIDER, USER, AGENT, CONTROLLER, PUBLIC = (
    Role.OPERATOR,
    Role.PROVIDER,
    Role.USER,
    Role.AGENT,
    Role.CONTROLLER,
    Role.PUBLIC,
)
ANYONE_SIGNED_IN = (OPERATOR, PROVIDER, USER, AGENT, CONTROLLER)

# A provider sees its own instances, with abstract locations only: never node names,
# infrastructure addresses or the topology (the topology, nodes, hosts, links,
# migrations and SDN intents are the operator's). Agents act for their own node only
# (the identity layer checks {node}); the controller reads the view, posts events.
CORE: Mapping[str, Roles] = {
    # The dashboard: each principal's own (its data comes from the API below, which
    # shows each only its own). A browser without a session is sent to sign in.
    "GET /": (OPERATOR, PROVIDER, USER),
    "GET /signin": (PUBLIC,),
    "POST /signin": (PUBLIC,),
    f"GET {API}/openapi.json": (PUBLIC,),
    f"GET {API}/health": (PUBLIC,),
    "GET /metrics": (OPERATOR,),  # Prometheus's scrape, for the operator's monitoring
    f"GET {API}/services": (OPERATOR,),
    f"GET {API}/topology": (OPERATOR,),
    f"PUT {API}/topology": (OPERATOR,),
    f"GET {API}/hosts": (OPERATOR,),
    f"GET {API}/links": (OPERATOR,),
    f"GET {API}/nodes": (OPERATOR,),
    f"GET {API}/nodes/{{name}}": (OPERATOR,),
    f"PUT {API}/nodes/{{name}}/power": (OPERATOR,),
    f"PUT {API}/nodes/{{name}}/predeploy": (OPERATOR,),
    f"GET {API}/predeploy": (OPERATOR,),
    f"POST {API}/agents/{{node}}/register": (AGENT,),
    f"POST {API}/agents/{{node}}/report": (AGENT,),
    f"GET {API}/agents/{{node}}/desired": (AGENT,),
    f"GET {API}/descriptors": (OPERATOR, PROVIDER),
    f"POST {API}/descriptors": (OPERATOR, PROVIDER),
    f"GET {API}/instances": (OPERATOR, PROVIDER, USER),  # a user's: its own (its vHG)
    f"POST {API}/instances": (OPERATOR, PROVIDER),
    f"GET {API}/instances/{{iid}}": (OPERATOR, PROVIDER, USER),
    f"DELETE {API}/instances/{{iid}}": (OPERATOR, PROVIDER),
    f"PATCH {API}/instances/{{iid}}": (OPERATOR, PROVIDER),
    f"POST {API}/instances/{{iid}}/migrate": (OPERATOR,),  # names a node
    f"GET {API}/migrations": (OPERATOR,),
    f"GET {API}/events": (OPERATOR, PROVIDER, USER),  # each sees its own
    f"GET {API}/events/stream": (OPERATOR, PROVIDER, USER),
    # identity (orchestrator/identity/routes.py)
    f"POST {API}/auth/token": (PUBLIC,),
    f"DELETE {API}/auth/token": ANYONE_SIGNED_IN,
    f"POST {API}/auth/session": (PUBLIC,),
    f"DELETE {API}/auth/session": ANYONE_SIGNED_IN,
    f"GET {API}/auth/me": ANYONE_SIGNED_IN,
    f"GET {API}/accounts": (OPERATOR,),
    f"POST {API}/accounts": (OPERATOR,),
    f"GET {API}/accounts/{{name}}": (OPERATOR,),
    f"PATCH {API}/accounts/{{name}}": (OPERATOR,),
    f"POST {API}/accounts/{{name}}/password": (OPERATOR,),
    f"POST {API}/accounts/agents": (OPERATOR,),
    f"POST {API}/accounts/controllers": (OPERATOR,),
    # the SDN controller's API (orchestrator/sdn/api.py). Intents name hosts, nodes
    # and subnets: the operator's until intents have owners.
    f"POST {API}/intents": (OPERATOR,),
    f"GET {API}/intents": (OPERATOR,),
    f"GET {API}/intents/{{intent_id}}": (OPERATOR,),
    f"DELETE {API}/intents/{{intent_id}}": (OPERATOR,),
    f"POST {API}/sdn/fabric": (OPERATOR,),
    f"GET {API}/sdn/view": (CONTROLLER,),
    f"GET {API}/sdn/status": (OPERATOR, CONTROLLER),
    f"POST {API}/sdn/events": (CONTROLLER,),
    f"GET {API}/nodes/{{node}}/flows": (OPERATOR,),
}
"""The core's routes: full paths."""

IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})


def declared(services: Sequence[Service]) -> dict[str, Roles]:
    """Every declaration, as ``"METHOD /full/path"``; a service's roles must name
    at least one role and stay below its own prefix."""
    out: dict[str, Roles] = dict(CORE)
    for svc in services:
        for key, roles in svc.roles.items():
            method, _, path = key.partition(" ")
            if not roles or not path.startswith("/") or method != method.upper():
                raise ContractError(f"service {svc.name}: bad role declaration {key!r}: {roles}")
            full = f"{method} {API}{svc.prefix}{path}"
            out[full] = tuple(Role(r) for r in roles)
    return out


def pages(services: Sequence[Service]) -> list[str]:
    """The web pages, as ``"GET /full/path"``: the dashboard and each service's
    `pages`. A browser that opens one without a session is sent to sign in."""
    return ["GET /", *(f"GET {API}{svc.prefix}{p}" for svc in services for p in svc.pages.values())]


def served(routes: Iterable[BaseRoute]) -> set[str]:
    """``"METHOD /path"`` of every route the app answers (mounts excluded)."""
    keys: set[str] = set()
    for rc in iter_route_contexts(list(routes)):
        path = rc.path
        if path is None:
            continue
        for method in rc.methods or ():
            if method not in IGNORED_METHODS:
                keys.add(f"{method} {path}")
    return keys


def matrix(routes: Iterable[BaseRoute], services: Sequence[Service]) -> dict[str, Roles]:
    """The role of every route of the app; ContractError if one is missing or extra."""
    want = declared(services)
    have = served(routes)
    missing = sorted(have - set(want))
    extra = sorted(set(want) - have)
    if missing or extra:
        parts = []
        if missing:
            parts.append("routes without declared roles: " + ", ".join(missing))
        if extra:
            parts.append("roles declared for routes that do not exist: " + ", ".join(extra))
        raise ContractError("; ".join(parts))
    return {k: want[k] for k in sorted(have)}


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "A token from POST /api/v1/auth/token (or an agent's or "
               "controller's from the operator)"},
    "session": {"type": "apiKey", "in": "cookie", "name": "netfate_session",
                "description": "The web session from POST /api/v1/auth/session; "
                "state-changing requests also send its CSRF token in X-CSRF-Token"},
}  # fmt: skip
REFUSALS = {
    "401": {"description": "No credentials, or malformed, unknown, expired or revoked ones"},
    "403": {"description": "Not for this principal's role (or another node's, another "
            "provider's object, a missing CSRF token)"},
}  # fmt: skip


def annotate(schema: dict[str, Any], roles: Mapping[str, Roles]) -> dict[str, Any]:
    """Add ``x-roles`` to every operation of an OpenAPI document; an operation that
    is not PUBLIC also names the credentials it takes and its 401 and 403."""
    # OpenAPI writes "{address}" where the route says "{address:path}".
    plain = {re.sub(r"\{(\w+):\w+\}", r"{\1}", k): v for k, v in roles.items()}
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            key = f"{method.upper()} {path}"
            if key in plain and isinstance(op, dict):
                op["x-roles"] = [r.value for r in plain[key]]
                if Role.PUBLIC not in plain[key]:
                    op["security"] = [{"bearer": []}, {"session": []}]
                    for code, answer in REFUSALS.items():
                        op.setdefault("responses", {}).setdefault(code, dict(answer))
    return schema
