"""Which HRH device is exported to which client: a pure model, no I/O.

A rule names a busid (or ``*``) and the clients it is exported to: IP networks
(``10.0.0.0/8``, ``127.0.0.1``) or identities (a TLS certificate's common name,
once the tunnel carries one).  Deny by default: a device no rule names is
exported to nobody, and a refused import is answered ST_NODEV so that a client
cannot probe which devices exist.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AllowRule:
    """Export ``busid`` (``*`` for all) to the listed networks and identities."""

    busid: str
    networks: tuple[Network, ...] = ()
    identities: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, busid: str, clients: Iterable[str]) -> AllowRule:
        """``clients`` entries are addresses/networks, or other text taken as identities."""
        nets: list[Network] = []
        ids: set[str] = set()
        for c in clients:
            try:
                nets.append(ipaddress.ip_network(c, strict=False))
            except ValueError:
                ids.add(c)
        return cls(busid, tuple(nets), frozenset(ids))

    def matches(self, busid: str, address: str | None, identity: str | None) -> bool:
        if self.busid not in ("*", busid):
            return False
        if identity is not None and (identity in self.identities or "*" in self.identities):
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in self.networks)


@dataclass(frozen=True)
class AllowList:
    """An ordered set of :class:`AllowRule`; a client sees the union of its matches."""

    rules: tuple[AllowRule, ...] = ()

    @classmethod
    def open_to(cls, *clients: str) -> AllowList:
        """Every device to the given clients (e.g. ``AllowList.open_to("127.0.0.0/8")``)."""
        return cls((AllowRule.parse("*", clients),))

    @classmethod
    def from_mapping(cls, mapping: dict[str, list[str]]) -> AllowList:
        """``{"1-1": ["10.0.0.2", "isp-fn-7"], "*": ["127.0.0.1"]}`` (e.g. from YAML)."""
        return cls(tuple(AllowRule.parse(b, c) for b, c in mapping.items()))

    def permits(
        self, busid: str, *, address: str | None = None, identity: str | None = None
    ) -> bool:
        return any(r.matches(busid, address, identity) for r in self.rules)

    def visible(
        self, busids: Iterable[str], *, address: str | None = None, identity: str | None = None
    ) -> list[str]:
        """The busids this client may list and import, in the given order."""
        return [b for b in busids if self.permits(b, address=address, identity=identity)]
