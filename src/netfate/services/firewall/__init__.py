"""The firewall service (the NetFATE paper's system): captive-portal login with
RADIUS, and a personal firewall that follows its user.

See README.md in this folder. Plugs into the platform by its contract, SERVICE.
"""

from __future__ import annotations

from pathlib import Path

from netfate.contract import Demo, Loop, Role, Service
from netfate.services.firewall import reconcile
from netfate.services.firewall.api import lifespan, router

OPERATOR, USER, PUBLIC = Role.OPERATOR, Role.USER, Role.PUBLIC

SERVICE = Service(
    name="firewall",
    summary="Captive-portal login with RADIUS, and a personal firewall that follows its user "
    "(the NetFATE paper).",
    folder=Path(__file__).parent,
    api=router,
    api_aliases=("netfate",),  # the API's prefix until the service had one name
    roles={
        "GET /tables": (OPERATOR,),
        "GET /users": (OPERATOR,),
        "POST /users": (OPERATOR,),
        "GET /users/{name}": (OPERATOR,),
        "PATCH /users/{name}": (OPERATOR,),
        "DELETE /users/{name}": (OPERATOR,),
        "GET /users/{name}/rules": (OPERATOR,),
        "PUT /users/{name}/rules": (OPERATOR,),
        "POST /users/{name}/logout": (OPERATOR,),
        "GET /functions": (OPERATOR,),
        "GET /forwarding": (OPERATOR,),
        "GET /accounting": (OPERATOR,),
        "GET /settings": (OPERATOR,),
        "PUT /settings": (OPERATOR,),
        "GET /radius/clients": (OPERATOR,),
        "POST /radius/clients": (OPERATOR,),
        "DELETE /radius/clients/{address:path}": (OPERATOR,),
        "POST /radius/listeners": (OPERATOR,),
        "GET /radius/status": (OPERATOR,),
        # The user's own page, behind sign-in (a browser without a session is sent to
        # /signin). Its data routes take the page's web session (the firewall user of
        # the account's name) or sign the caller in by themselves (HTTP Basic with the
        # portal credentials, checked against the service's own users), so the platform
        # lets every request reach them.
        "GET /me": (USER,),
        "GET /me/rules": (PUBLIC,),
        "PUT /me/rules": (PUBLIC,),
    },
    descriptors=(
        {
            "name": "personal-firewall",
            "function": "netfate.vnf.firewall:Firewall",
            # Forwarding is the kernel's and costs the process nothing; the CPU share is
            # for the state export (conntrack/nft subprocesses inherit the cgroup): at
            # 0.1 core the export on a migration's critical path took ~150 ms.
            "cpu": 0.5,
            "memory_mb": 64,
            "stateful": True,
            "description": "A user's personal firewall (nftables, stateful); its rule set "
            "and conntrack entries migrate with it.",
        },
        {
            "name": "captive-portal",
            "function": "netfate.vnf.portal:Portal",
            "cpu": 0.2,
            "memory_mb": 96,
            "stateful": False,
            "description": "Captive portal of a CPE: login page, RFC 8908 API, RFC 8910 DHCP "
            "announcement, RADIUS PAP with Message-Authenticator and accounting.",
        },
    ),
    lifespan=lifespan,  # the RADIUS server
    loops=(Loop("policy", reconcile.step, interval_s=reconcile.INTERVAL_S),),
    cli="netfate.services.firewall.cli:app",
    demos=(Demo("firewall", "netfate.services.firewall.demo", aliases=("netfate",)),),
    benches=("radius", "handover"),
    panels=("panel.js",),
    pages={"My firewall rules": "/me"},
    door=("/me",),  # the users' pages and what they call
)

__all__ = ["SERVICE"]
