"""NetFATE: captive-portal login with RADIUS, and a personal firewall that follows its user.

See README.md in this folder. Plugs into the platform by the names below
(netfate.services): router, DESCRIPTORS, DEMO, CLI.
"""

from __future__ import annotations

from typing import Any

from netfate.services.firewall.api import router

DESCRIPTORS: list[dict[str, Any]] = [
    {
        "name": "personal-firewall",
        "function": "netfate.vnf.firewall:Firewall",
        # Forwarding is the kernel's and costs the process nothing; the CPU share is
        # for the state export (conntrack/nft subprocesses inherit the cgroup): at
        # 0.1 core the export on a migration's critical path took ~150 ms.
        "cpu": 0.5,
        "memory_mb": 64,
        "stateful": True,
        "description": "A user's personal firewall (nftables, stateful); its rule set and "
        "conntrack entries migrate with it.",
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
]
DEMO = "netfate.services.firewall.demo"
DEMO_NAME = "netfate"  # `netfate demo netfate`, as the paper's system is called
CLI = "netfate.services.firewall.cli:app"

__all__ = ["CLI", "DEMO", "DEMO_NAME", "DESCRIPTORS", "router"]
