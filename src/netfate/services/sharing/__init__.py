"""Personal Networks and smart-device sharing through Virtual Presence VNFs (issue 5).

See README.md. Plugs into the platform by its contract, SERVICE.
"""

from __future__ import annotations

from pathlib import Path

from netfate.contract import Demo, Loop, Role, Service

from . import network, reconcile, workflow
from .router import router

OPERATOR, USER, AGENT, PUBLIC = Role.OPERATOR, Role.USER, Role.AGENT, Role.PUBLIC

SERVICE = Service(
    name="sharing",
    summary="Personal Networks, and smart-device sharing between them through Virtual "
    "Presence functions.",
    folder=Path(__file__).parent,
    api=router,
    roles={
        "POST /pns": (OPERATOR, USER),
        "GET /pns": (OPERATOR,),
        "GET /pns/{email}": (OPERATOR, USER),
        "GET /pns/{email}/devices": (OPERATOR, USER),
        "POST /pns/{email}/devices": (OPERATOR, USER),
        # what the PN's vHG sees (its leases and neighbours), reported for it
        "PUT /pns/{email}/inventory": (OPERATOR, AGENT),
        "POST /pns/{email}/vhg": (OPERATOR, USER),
        # the PN's gateway settings (LAN, DHCP, port forwards, firewall): its owner's
        "GET /pns/{email}/gateway": (OPERATOR, USER),
        "PUT /pns/{email}/gateway": (OPERATOR, USER),
        "POST /invitations": (USER,),
        "GET /invitations": (OPERATOR, USER),
        "POST /shares": (USER,),
        "GET /shares": (OPERATOR, USER),
        "GET /shares/{sid}": (OPERATOR, USER),
        "POST /shares/{sid}/accept": (USER,),
        "POST /shares/{sid}/decline": (USER,),
        "POST /shares/{sid}/revoke": (USER,),
        # the owners' page: a browser without a session is sent to sign in first
        "GET /page": (OPERATOR, USER),
        "GET /gateway-page": (OPERATOR, USER),
    },
    descriptors=(
        {
            "name": "virtual-presence",
            "function": "netfate.vnf.virtual_presence.function:VirtualPresence",
            "cpu": 0.1,
            "memory_mb": 64,
            "stateful": False,
            "description": "Virtual Presence (seed III): IP aliases for remote devices on the PN "
            "LAN, stateless nftables rewrite per the ATT, VXLAN overlay to its peer VP.",
        },
        {
            "name": "vhg",
            "function": "netfate.vnf.vhg:Vhg",
            "cpu": 0.1,
            "memory_mb": 64,
            "stateful": False,
            "description": "Virtual home gateway of a Personal Network: DHCP (dnsmasq), NAT "
            "(nftables masquerade) and a stateful firewall.",
        },
    ),
    on_instance_event=workflow.on_instance_event,  # VP1's learned ports, to the pages
    isolates=network.pn_lans,  # a Personal Network's LAN reaches nothing by default
    loops=(Loop("shares", reconcile.step, interval_s=reconcile.INTERVAL_S, wake_on_change=True),),
    cli="netfate.services.sharing.cli:app",
    demos=(Demo("sharing", "netfate.services.sharing.demo"),),
    benches=("sharing",),
    panels=("panel.js",),
    pages={"My Personal Network": "/page", "Gateway settings": "/gateway-page"},
    # the users' pages and what they call
    door=("/page", "/gateway-page", "/pns", "/invitations", "/shares"),
    # what the other services may ask for (the catalog's first subscription)
    provides={
        "personal-network": "netfate.services.sharing.provided:ensure_pn",
        "personal-network-devices": "netfate.services.sharing.provided:set_pn_devices",
    },
)

__all__ = ["SERVICE"]
