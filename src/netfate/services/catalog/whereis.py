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

Leases are read by `netfate.proto.dnsmasq` (the file comes from a function on a
node, so its bytes are untrusted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from netfate.proto.dnsmasq import Lease

LOGIN, LEASE, HOST_SEEN = "login", "lease", "host-seen"
RANK = {LOGIN: 0, LEASE: 1, HOST_SEEN: 2}
"""Ties (the same instant, two nodes): the lower rank wins."""


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
