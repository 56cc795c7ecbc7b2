"""The embedded RADIUS server's sans-I/O core: datagrams + listener + peer + `now`
in; events, and datagrams to send, out. Never a socket, a clock or the database:
the asyncio driver (radius.py) does the I/O, logins.py the decisions.

    core = RadiusCore(clients.secret_for)
    for event in core.receive(data, peer, listener, now):
        AccessRequested     -> decide (logins.py), then core.server.accept/reject
        AccountingReceived  -> account (logins.py), then core.server.accounting_response
        PacketDropped       -> log it (core.dropped keeps the last 50)
        DisconnectAcked, DisconnectNaked -> record it (disconnect.py)
    for listener, wire, to in core.datagrams_to_send(): send from that listener

What comes in on a listener is either a request of a NAS (Access-Request,
Accounting-Request: ServerCore, which checks the client, the authenticators, and
answers retransmissions from its cache) or an answer to our Disconnect-Request
(Disconnect-ACK/NAK: DisconnectCore, which takes it only from where the request
went). Anything malformed becomes PacketDropped; nothing raises.
"""

from __future__ import annotations

import ipaddress
import logging

from netfate.proto.radius import (
    AccessRequested,
    AccountingReceived,
    Code,
    PacketDropped,
    RadiusError,
    ServerCore,
)
from netfate.services.firewall.disconnect import Datagram, DisconnectCore, DmEvent
from netfate.services.firewall.nas_sessions import ListenerKey

log = logging.getLogger("netfate.radius")
DM_ANSWERS = (bytes([Code.DISCONNECT_ACK]), bytes([Code.DISCONNECT_NAK]))
MAX_DROPPED = 50

Event = AccessRequested | AccountingReceived | PacketDropped | DmEvent


class Clients:
    """Address or subnet -> secret (the rows of firewall_radius_clients)."""

    def __init__(self) -> None:
        self.exact: dict[str, bytes] = {}
        self.nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, bytes]] = []

    def load(self, rows: list[tuple[str, str]]) -> None:
        exact, nets = {}, []
        for addr, secret in rows:
            if "/" in addr:
                try:
                    nets.append((ipaddress.ip_network(addr, strict=False), secret.encode()))
                except ValueError:
                    log.warning("ignoring RADIUS client with bad subnet %r", addr)
            else:
                exact[addr] = secret.encode()
        # Longest prefix first, so a specific client's secret wins over a subnet's.
        nets.sort(key=lambda n: n[0].prefixlen, reverse=True)
        self.exact, self.nets = exact, nets

    def secret_for(self, addr: str) -> bytes | None:
        s = self.exact.get(addr)
        if s is not None:
            return s
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return None
        for net, secret in self.nets:
            if ip in net:
                return secret
        return None


class RadiusCore:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.server = ServerCore(clients.secret_for)
        self.dm = DisconnectCore()
        self.dropped: list[str] = []  # recent drop reasons (bounded), for the API
        self._out: list[Datagram] = []

    @property
    def counters(self) -> dict[str, int]:
        """The server's (accepts, rejects, drops, accounting)."""
        return self.server.counters

    def datagrams_to_send(self) -> list[Datagram]:
        out, self._out = self._out, []
        return out + self.dm.datagrams_to_send()

    def receive(
        self, data: bytes, peer: tuple[str, int], listener: ListenerKey, now: float
    ) -> list[Event]:
        events: list[Event]
        if data[:1] in DM_ANSWERS:
            outcomes = self.dm.receive(listener, data, peer, now)
            if outcomes is None:
                reason = "Disconnect answer matching no request, or not verifying (forged?)"
                events = [PacketDropped(peer, reason)]
            else:
                events = list(outcomes)
        else:
            try:
                events = list(self.server.receive(data, peer, now))
            except RadiusError as e:  # the core drops instead; this is a second net
                events = [PacketDropped(peer, str(e))]
            self._out += [(listener, wire, to) for wire, to in self.server.pending()]
        for ev in events:
            if isinstance(ev, PacketDropped):
                self.dropped = [*self.dropped[-(MAX_DROPPED - 1) :], f"{ev.peer[0]}: {ev.reason}"]
        return events
