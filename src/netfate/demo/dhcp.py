"""A host asks for a DHCP lease on its LAN as a person's device does (busybox
udhcpc in the host's namespace), for the demos that show a vHG's or a portal's
dnsmasq at work.

`lease` either takes the lease (address, and the server as default router: the host
now lives on it) or only records what it was offered, leaving the host's topology
address in place (the rest of a demo reaches it there). Either way the host's
resolv.conf is never touched.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from netfate.demo.platform import DemoFailed
from netfate.host import netns

# udhcpc event script: take the lease (address, the server as default router) and
# record it.
TAKE_LEASE = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    ip route replace default via "$router" dev "$interface"
    echo "$ip $router" > "$LEASE_OUT"
    ;;
esac
exit 0
"""

# udhcpc event script: record the lease it was given (address, router) and configure
# nothing.
RECORD_LEASE = """#!/bin/sh
case "$1" in
  bound|renew) echo "$ip $router" > "$LEASE_OUT" ;;
esac
exit 0
"""


def lease(ns: str, host: str, *, take: bool, timeout: float = 30.0) -> tuple[str, str]:
    """(address, router) of a lease `host` (in namespace `ns`) is given on eth0.
    Retried until `timeout`: on secure bridges the controller installs the flows
    shortly after the intents are stored."""
    with tempfile.TemporaryDirectory(prefix="netfate-lease-") as d:
        script, out = Path(d) / "lease.sh", Path(d) / "lease.txt"
        script.write_text(TAKE_LEASE if take else RECORD_LEASE)
        script.chmod(0o755)
        deadline = time.monotonic() + timeout
        while True:
            netns.run_in(
                ns,
                ["env", f"LEASE_OUT={out}", "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f",
                 "-t", "3", "-T", "1", "-s", str(script), "-x", f"hostname:{host}"],
                check=False, timeout=30,
            )  # fmt: skip
            if out.exists():
                ip, router = out.read_text().split()
                return ip, router
            if time.monotonic() > deadline:
                raise DemoFailed(f"{host} got no DHCP lease within {timeout:.0f} s")
