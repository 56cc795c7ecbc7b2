"""Sans-I/O RADIUS server core: datagram + peer + now in, events and datagrams out.

    core = ServerCore({"127.0.0.1": b"secret"})
    for event in core.receive(data, peer, now):
        AccessRequested   -> the application checks the password, then calls
                             core.accept(event, attrs) or core.reject(event)
                             and sends the bytes returned to event.peer
        AccountingReceived -> record it, then send core.accounting_response(event)
        PacketDropped      -> log it; nothing is sent (RFC 2865: silently discard)

Safety rules it enforces (BlastRADIUS, CVE-2024-3596): an Access-Request without
a valid Message-Authenticator is dropped, and every response carries one, first.
A request from an address with no configured client is dropped. Retransmissions
(same peer, identifier and authenticator within `dup_window` seconds) get the
cached answer again instead of a second decision (RFC 5080 section 2.2.2).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from netfate.proto.radius.errors import RadiusError
from netfate.proto.radius.events import (
    AccessRequested,
    AccountingReceived,
    Address,
    PacketDropped,
)
from netfate.proto.radius.packet import (
    HEADER,
    MIN_LENGTH,
    ZERO16,
    Attr,
    Code,
    Packet,
    Value,
    encode_response,
    reveal_password,
    verify_access_request,
    verify_accounting_request,
)

Event = AccessRequested | AccountingReceived | PacketDropped


@dataclass
class _Cached:
    at: float
    answer: bytes | None  # None: decision pending


class ServerCore:
    def __init__(
        self,
        clients: dict[str, bytes] | Callable[[str], bytes | None],
        dup_window: float = 5.0,
        max_cache: int = 65536,
    ) -> None:
        # A dict (address -> secret) or a function, e.g. one that matches subnets.
        self.secret_for: Callable[[str], bytes | None] = (
            dict(clients).get if isinstance(clients, dict) else clients
        )
        self.dup_window = dup_window
        self.max_cache = max_cache
        self._cache: OrderedDict[tuple[str, int, int, bytes], _Cached] = OrderedDict()
        self._out: list[tuple[bytes, Address]] = []
        self.counters = {"accepts": 0, "rejects": 0, "drops": 0, "accounting": 0}

    def pending(self) -> list[tuple[bytes, Address]]:
        """Datagrams to send (answers to retransmitted requests)."""
        out, self._out = self._out, []
        return out

    def _key(self, data: bytes, peer: Address) -> tuple[str, int, int, bytes]:
        return (peer[0], peer[1], data[1], bytes(data[4:20]))

    def _expire(self, now: float) -> None:
        while self._cache:
            _k, c = next(iter(self._cache.items()))
            if now - c.at <= self.dup_window and len(self._cache) <= self.max_cache:
                break
            self._cache.popitem(last=False)

    def _drop(self, peer: Address, reason: str) -> list[Event]:
        self.counters["drops"] += 1
        return [PacketDropped(peer, reason)]

    def receive(self, data: bytes, peer: Address, now: float) -> list[Event]:
        self._expire(now)
        secret = self.secret_for(peer[0])
        if secret is None:
            return self._drop(peer, f"no RADIUS client configured for {peer[0]}")
        if len(data) < MIN_LENGTH:
            return self._drop(peer, f"datagram of {len(data)} octets")
        key = self._key(data, peer)
        cached = self._cache.get(key)
        if cached is not None:
            if cached.answer is not None:
                self._out.append((cached.answer, peer))
            return []  # a retransmission: answered again, or still being decided
        code = data[0]
        try:
            if code == Code.ACCESS_REQUEST:
                req = verify_access_request(data, secret)
                user = req.text(Attr.USER_NAME)
                hidden = req.raw(Attr.USER_PASSWORD)
                if user is None:
                    raise RadiusError("Access-Request without User-Name")
                if hidden is None:
                    raise RadiusError("Access-Request without User-Password (only PAP here)")
                password = reveal_password(hidden, secret, req.authenticator)
                self._cache[key] = _Cached(now, None)
                return [AccessRequested(req, peer, user, password)]
            if code == Code.ACCOUNTING_REQUEST:
                req = verify_accounting_request(data, secret)
                status = req.integer(Attr.ACCT_STATUS_TYPE)
                session = req.text(Attr.ACCT_SESSION_ID)
                if status is None or session is None:
                    raise RadiusError("Accounting-Request without Acct-Status-Type/Session-Id")
                self._cache[key] = _Cached(now, None)
                self.counters["accounting"] += 1
                return [
                    AccountingReceived(req, peer, status, session, req.text(Attr.USER_NAME) or "")
                ]
            return self._drop(peer, f"unsupported code {code}")
        except RadiusError as e:
            return self._drop(peer, str(e))

    def _answer(self, ev: AccessRequested, code: Code, attrs: list[tuple[int, Value]]) -> bytes:
        secret = self.secret_for(ev.peer[0])
        if secret is None:  # the client was removed while the decision was pending
            raise RadiusError(f"client {ev.peer[0]} no longer configured")
        pkt = Packet(code, ev.request.identifier)
        for t, v in attrs:
            pkt.add(t, v)
        for ps in ev.request.all_raw(Attr.PROXY_STATE):  # RFC 2865 section 5.33
            pkt.add(Attr.PROXY_STATE, ps)
        wire = encode_response(pkt, ev.request.authenticator, secret)
        self._remember(ev.peer, ev.request, wire)
        return wire

    def accounting_response(
        self, ev: AccountingReceived, attrs: list[tuple[int, Value]] | None = None
    ) -> bytes:
        """The Accounting-Response to send to ev.peer (extra attributes: VSAs)."""
        secret = self.secret_for(ev.peer[0])
        if secret is None:
            raise RadiusError(f"client {ev.peer[0]} no longer configured")
        pkt = Packet(Code.ACCOUNTING_RESPONSE, ev.request.identifier)
        for t, v in attrs or []:
            pkt.add(t, v)
        for ps in ev.request.all_raw(Attr.PROXY_STATE):
            pkt.add(Attr.PROXY_STATE, ps)
        wire = encode_response(pkt, ev.request.authenticator, secret, ma_vector=ZERO16)
        self._remember(ev.peer, ev.request, wire)
        return wire

    def _remember(self, peer: Address, req: Packet, wire: bytes) -> None:
        key = (peer[0], peer[1], req.identifier, req.authenticator)
        self._cache[key] = _Cached(self._cache[key].at if key in self._cache else 0.0, wire)

    def accept(self, ev: AccessRequested, attrs: list[tuple[int, Value]]) -> bytes:
        self.counters["accepts"] += 1
        return self._answer(ev, Code.ACCESS_ACCEPT, attrs)

    def reject(self, ev: AccessRequested, message: str | None = None) -> bytes:
        self.counters["rejects"] += 1
        return self._answer(
            ev, Code.ACCESS_REJECT, [(Attr.REPLY_MESSAGE, message)] if message else []
        )

    def forget(self, ev: AccessRequested | AccountingReceived) -> None:
        """Drop the pending entry of a request that will never be answered."""
        key = (ev.peer[0], ev.peer[1], ev.request.identifier, ev.request.authenticator)
        with contextlib.suppress(KeyError):
            del self._cache[key]


def peek_code(data: bytes) -> int | None:
    return data[0] if len(data) >= HEADER.size else None
