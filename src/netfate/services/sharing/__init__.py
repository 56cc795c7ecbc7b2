"""Personal Networks and smart-device sharing through Virtual Presence VNFs (issue 5).

See README.md. API under /api/v1/sharing, CLI `netfate sharing ...`, demo
`netfate demo sharing`, VNFs `vhg` and `virtual-presence`.
"""

from __future__ import annotations

from typing import Any

from .router import router

DESCRIPTORS: list[dict[str, Any]] = [
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
]
DEMO = "netfate.services.sharing.demo"
CLI = "netfate.services.sharing.cli:app"

__all__ = ["CLI", "DEMO", "DESCRIPTORS", "router"]
