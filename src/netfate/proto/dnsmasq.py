"""dnsmasq's lease file, sans I/O: the one reader of it in the platform (the
catalog's where-is service and the vHG's inventory both read it).

`parse_lease_file` reads dnsmasq's lease file (dnsmasq(8) --dhcp-leasefile; its
lease.c writes one lease per line):

    <expiry epoch s> <MAC> <IPv4> <hostname or *> <client-id or *>
    1763712000 02:00:00:00:00:01 192.168.1.100 tv 01:02:00:00:00:00:01

(expiry 0: an infinite lease.) A "duid ..." line is the DHCPv6 server's id, not
a lease, and is passed over. A line that is anything else is refused with its
line number and the reason, and the other lines still count: the file comes from
a function on a node, so its bytes are untrusted.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MAX_LINES = 4096
"""Lease lines read per file (a pool is at most this large; more are refused)."""
MAX_LINE = 1024
"""A lease line's longest field is a client id of 255 octets (764 characters); a line
longer than this is refused."""
SHOWN = 100
"""Characters of a refused line shown (escaped)."""
MAX_EXPIRY = 2**40
"""Far beyond any real expiry (year 36812); larger is no clock dnsmasq wrote."""
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_CLIENT_ID = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){0,254}$")


class LeaseError(ValueError):
    """A lease line that is not one dnsmasq writes (the message says why)."""


@dataclass(frozen=True)
class Lease:
    expires: int
    """Epoch seconds; 0: never."""
    mac: str
    """Lower case, colon-separated."""
    ip: str
    hostname: str | None


@dataclass(frozen=True)
class Refusal:
    line: int
    """1-based."""
    text: str
    """The line as read (escaped: ascii(), at most SHOWN characters)."""
    reason: str


def parse_lease_line(line: str) -> Lease:
    """One lease, or LeaseError saying why it is none."""
    if len(line) > MAX_LINE:
        raise LeaseError(f"longer than {MAX_LINE} characters")
    if not line.isprintable():
        raise LeaseError("holds control or non-printable characters")
    parts = line.split(" ")
    if len(parts) != 5:
        raise LeaseError(f"{len(parts)} space-separated fields, not 5")
    expiry, mac, ip, host, client = parts
    if not expiry.isascii() or not expiry.isdigit() or int(expiry) >= MAX_EXPIRY:
        raise LeaseError(f"expiry {expiry[:24]!r} is not epoch seconds")
    mac = mac.lower()
    if not _MAC.match(mac):
        raise LeaseError(f"hardware address {mac[:40]!r} is not an Ethernet MAC")
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        raise LeaseError(f"address {ip[:40]!r} is not IPv4") from None
    if host != "*" and not _HOST.match(host):
        raise LeaseError(f"hostname {host[:40]!r} is not a DNS label")
    if client != "*" and not _CLIENT_ID.match(client):
        raise LeaseError(f"client id {client[:40]!r} is not hex octets")
    return Lease(int(expiry), mac, str(addr), None if host == "*" else host)


def parse_lease_file(text: str) -> tuple[list[Lease], list[Refusal]]:
    """Every lease of the file, and each line refused with its reason (module doc)."""
    leases: list[Lease] = []
    refused: list[Refusal] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    for n, line in enumerate(lines, 1):
        if n > MAX_LINES:
            refused.append(Refusal(n, "", f"beyond {MAX_LINES} lines: {len(lines) - n + 1} unread"))
            break
        if line.startswith("duid "):
            continue
        try:
            leases.append(parse_lease_line(line))
        except LeaseError as e:
            refused.append(Refusal(n, ascii(line[:80])[:SHOWN], str(e)))
    return leases, refused
