"""What the vHG knows about its PN's devices from its dnsmasq's lease file.

The file is read by the platform's one reader of it (`netfate.proto.dnsmasq`):
lines that are not leases as dnsmasq writes them are passed over (the file is
written by another process and may be partial).
"""

from __future__ import annotations

from netfate.proto.dnsmasq import parse_lease_file


def lease_devices(text: str, now: float) -> dict[str, dict[str, str | None]]:
    """The devices the leases in force at `now` name, by address (expiry 0: a lease
    that never ends)."""
    leases, _refused = parse_lease_file(text)
    return {
        le.ip: {"name": le.hostname, "ip": le.ip, "mac": le.mac, "source": "lease"}
        for le in leases
        if le.expires == 0 or le.expires > now
    }
