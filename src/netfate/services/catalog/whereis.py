"""Where is user U: the sans-I/O core that merges what the platform sees of a user.

Three sources name a user at a node (whereabouts.py reads them from the tables):

    source     evidence                                  `at` (when it was true)
    ---------  ----------------------------------------  ---------------------------------
    login      a RADIUS login at a CPE (UserLoggedIn)     the event's time
    lease      a DHCP lease of one of the user's device   when dnsmasq granted or renewed
               MACs, from the dnsmasq of a function on    it: the lease's expiry minus its
               that node (its lease file, in the          length (dnsmasq sets expiry =
               function's reported stats)                 now + length on each renewal)
    host-seen  one of the user's device MACs seen at a    the sighting's time
               switch port (the SDN controller)

`locate` merges them: per user the newest evidence wins. Two pieces of evidence
at the same instant naming different nodes are a tie, broken by `RANK` (a login
is the user's own act; a lease, a device's request at that node; a sighting, a
frame that may be in flight); a lease past its expiry is stale and never wins.
Each answer's `why` says what won and why each other source lost.

`Track` keeps a user's history: a new entry when the node or the source changes,
never an entry older than the last one (the past is not rewritten), at most
`bound` entries (the oldest go first).

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

LOGIN, LEASE, HOST_SEEN = "login", "lease", "host-seen"
RANK = {LOGIN: 0, LEASE: 1, HOST_SEEN: 2}
"""Ties (the same instant, two nodes): the lower rank wins."""
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


@dataclass(frozen=True)
class Sighting:
    """One source's evidence that a user was at a node."""

    user: str
    node: str
    source: str
    """login, lease or host-seen."""
    at: float
    """When it was true (epoch seconds; module docstring)."""
    until: float | None = None
    """A lease's expiry: past it the evidence is stale (None: it does not expire)."""
    detail: str = ""
    """What it was, for the `why` (a MAC and address, the function it came from)."""


@dataclass(frozen=True)
class Fix:
    """Where a user is, as `locate` decided."""

    user: str
    node: str
    source: str
    at: float
    why: str
    """What won and why each other source lost."""


@dataclass(frozen=True)
class Entry:
    """One entry of a user's history."""

    node: str
    source: str
    at: float
    why: str = ""


def _said(s: Sighting) -> str:
    extra = f", {s.detail}" if s.detail else ""
    return f"{s.source} at {s.node} (t={s.at:.3f}{extra})"


def _order(s: Sighting) -> tuple[float, int, str, str, float]:
    until = s.until if s.until is not None else float("inf")
    return (-s.at, RANK.get(s.source, len(RANK)), s.node, s.detail, -until)


def locate(sightings: Iterable[Sighting], now: float) -> dict[str, Fix]:
    """Per user, the newest evidence that is not stale (module docstring)."""
    by_user: dict[str, list[Sighting]] = {}
    for s in sightings:
        by_user.setdefault(s.user, []).append(s)
    out: dict[str, Fix] = {}
    for user, seen in by_user.items():
        # Newest first; at the same instant the lower rank; then the node's name (and
        # the rest), so the answer never depends on the order the sources were read in.
        seen.sort(key=_order)
        fresh = [s for s in seen if s.until is None or s.until > now]
        lost = [
            f"{_said(s)} is stale: it expired at {s.until:.3f}"
            for s in seen
            if s.until is not None and s.until <= now
        ]
        if not fresh:
            continue
        win = fresh[0]
        for s in fresh[1:]:
            if s.node == win.node and s.at == win.at:
                lost.append(f"{_said(s)} agrees")
            elif s.at == win.at:
                lost.append(f"{_said(s)} ties, and {win.source} ranks first")
            else:
                lost.append(f"{_said(s)} is older")
        why = f"newest: {_said(win)}" + "".join(f"; {x}" for x in lost)
        out[user] = Fix(user, win.node, win.source, win.at, why)
    return out


class Track:
    """A user's history, newest last, at most `bound` entries (module docstring)."""

    def __init__(self, bound: int, history: Sequence[Entry] = ()) -> None:
        if bound < 1:
            raise ValueError("a history keeps at least one entry")
        self.bound = bound
        self.history: list[Entry] = list(history)[-bound:]

    @property
    def last(self) -> Entry | None:
        return self.history[-1] if self.history else None

    def observe(self, fix: Fix) -> Entry | None:
        """The entry `fix` adds (None: it says nothing new, or is older than the last)."""
        last = self.last
        if last is not None and (
            fix.at < last.at or (fix.node == last.node and fix.source == last.source)
        ):
            return None
        entry = Entry(fix.node, fix.source, fix.at, fix.why)
        self.history.append(entry)
        del self.history[: -self.bound]
        return entry


# ------------------------------------------------------------------ dnsmasq's lease file


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


def lease_sightings(
    leases: Iterable[Lease], owners: Mapping[str, str], node: str, seconds: int | None,
    source_name: str, reported_at: float,
) -> list[Sighting]:  # fmt: skip
    """The sightings the leases of one function give: a lease whose MAC belongs to a
    user (`owners`: MAC -> user) places the user at the function's `node`. `seconds`:
    the function's lease length; without it, or for an infinite lease, the lease
    counts from when the function reported it (`reported_at`)."""
    out = []
    for le in leases:
        user = owners.get(le.mac)
        if user is None:
            continue
        if le.expires == 0 or seconds is None:
            at, until = reported_at, None if le.expires == 0 else float(le.expires)
        else:
            at, until = float(le.expires - seconds), float(le.expires)
        detail = f"{le.mac} got {le.ip} from {source_name}"
        out.append(Sighting(user, node, LEASE, at, until, detail))
    return out
