"""The service catalog of the INPUT/pyroclast seed (issue 15): providers publish
service chains as YAML descriptors, users subscribe, and the conduit places each
subscription with the platform's placement engine and keeps it near its user.

See README.md. Plugs into the platform by its contract, SERVICE.
"""

from __future__ import annotations

from pathlib import Path

from netfate.contract import Demo, Experiment, Loop, Role, Service

from .api import CONDUIT, NIGHT, WHEREIS, router

OPERATOR, PROVIDER, USER = Role.OPERATOR, Role.PROVIDER, Role.USER
INTERVAL_S = 1.0

SERVICE = Service(
    name="catalog",
    summary="A catalog of service chains: providers publish them (YAML, versioned), users "
    "subscribe, and the conduit places each subscription with the placement engine and "
    "re-places it when its user moves.",
    folder=Path(__file__).parent,
    api=router,
    roles={
        "POST /chains": (OPERATOR, PROVIDER),
        "GET /chains/{name}/versions": (OPERATOR, PROVIDER),
        "GET /chains/{name}/versions/{version}": (OPERATOR, PROVIDER),
        "GET /providers/{provider}/subscriptions": (OPERATOR, PROVIDER),
        "GET /services": (OPERATOR, PROVIDER, USER),
        "POST /subscriptions": (USER,),
        "GET /subscriptions": (OPERATOR, USER),
        "GET /subscriptions/{sid}": (OPERATOR, USER),
        "POST /subscriptions/{sid}/upgrade": (USER,),
        "DELETE /subscriptions/{sid}": (OPERATOR, USER),
        # which of the user's devices join their Personal Network (the sharing service's)
        "PUT /users/{user}/devices": (OPERATOR, USER),
        "GET /positions": (OPERATOR, PROVIDER, USER),
        "GET /positions/{user}": (OPERATOR, PROVIDER, USER),
        # active subscriptions at abstract sites ("edge near you"): no node names
        "GET /placements": (OPERATOR, PROVIDER, USER),
        # the page of both: a browser without a session is sent to sign in first
        "GET /where": (OPERATOR, PROVIDER, USER),
        "GET /settings": (OPERATOR,),
        "PUT /settings": (OPERATOR,),
        "POST /consolidate": (OPERATOR,),
        "GET /consolidation": (OPERATOR,),
        "PUT /night": (OPERATOR,),
        "DELETE /night": (OPERATOR,),
    },
    descriptors=(
        {
            "name": "vo-host",
            "function": "netfate.vnf.vo.function:VoHost",
            "cpu": 0.2,
            "memory_mb": 64,
            "stateful": True,
            "description": "A PaaS-like host of per-user Virtual Objects, each collecting one "
            "sensor's readings (the HRH's CDC-ACM sensor over USB/IP). Moved state-only: "
            "its freeze exports only what changed since the snapshot.",
        },
    ),
    loops=(
        Loop("conduit", CONDUIT.step, interval_s=INTERVAL_S, wake_on_change=True),
        Loop("night", NIGHT.step, interval_s=INTERVAL_S),
        # Positions for the history of every user (the conduit reads its users' itself).
        Loop("whereis", WHEREIS.step, interval_s=INTERVAL_S),
    ),
    cli="netfate.services.catalog.cli:app",
    demos=(Demo("catalog", "netfate.services.catalog.demo"),),
    experiments=(Experiment("migration", "netfate.services.catalog.experiment:command"),),
    # placements and their reasons, live (operator: panel.js); where each user is, and
    # (provider, user) where their services run at abstract sites (where.js)
    panels=("panel.js", "where.js"),
    pages={"Where each user is": "/where"},
    # the users' page and the routes they call
    door=("/where", "/services", "/subscriptions", "/positions", "/placements", "/users"),
)

__all__ = ["SERVICE"]
