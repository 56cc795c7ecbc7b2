"""What the vHG knows about its PN's devices: dnsmasq leases and the neighbour table.

dnsmasq lease file (one lease per line, `dhcp-leasefile`, see dnsmasq(8) and
its lease.c `lease_update_file`):

    <expiry epoch seconds> <MAC> <IPv4> <hostname or *> <client-id or *>

e.g. `1763712000 02:00:00:00:00:01 192.168.1.100 tv *`. Lines that do not
parse are skipped (the file is written by another process and may be partial).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class Lease:
    expires: int
    mac: str
    ip: str
    hostname: str | None

    def to_device(self) -> dict[str, str | None]:
        return {"name": self.hostname, "ip": self.ip, "mac": self.mac, "source": "lease"}


def parse_leases(text: str) -> list[Lease]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        expiry, mac, ip, host = parts[:4]
        try:
            exp = int(expiry)
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            continue
        mac = mac.lower()
        if not _MAC.match(mac):
            continue
        name = (
            host if host != "*" and re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", host) else None
        )
        out.append(Lease(exp, mac, str(addr), name))
    return out
