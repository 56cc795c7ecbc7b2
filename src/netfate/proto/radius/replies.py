"""What the two answering cores share (ServerCore: Access/Accounting; DasCore: the
NAS side of Disconnect): the client table, answers built from a request, and the
duplicate-detection cache. Sans-I/O: `now` comes from the caller.

Duplicate detection (RFC 5080 section 2.2.2; RFC 5176 section 2.3): a request is
known by (peer address, peer port, Identifier, Request Authenticator). The first
copy is marked "being decided" (answer None); the answer, once built, is stored
under the same key. A copy arriving within `dup_window` seconds is never decided
again: it gets the stored answer (queued for `take()`), or nothing while the
first copy is still being decided. Entries go oldest first, after `dup_window`
seconds or when there are more than `max_cache`.

    key = cache.key(data, peer)
    if cache.replay(key, peer): return []      # a retransmission, answered or not
    ... verify, then cache.deciding(key, now) and hand the request out ...
    wire = answer(req, code, attrs, secret); cache.store(peer, req, wire)
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from netfate.proto.radius.events import Address
from netfate.proto.radius.packet import Attr, Code, Packet, Value, encode_response

Key = tuple[str, int, int, bytes]
SecretFor = Callable[[str], bytes | None]


def secret_lookup(clients: dict[str, bytes] | SecretFor) -> SecretFor:
    """A dict (peer address -> shared secret) or a function (e.g. one matching subnets)."""
    return dict(clients).get if isinstance(clients, dict) else clients


def answer(
    req: Packet,
    code: Code,
    attrs: Sequence[tuple[int, Value]],
    secret: bytes,
    ma_vector: bytes | None = None,
) -> bytes:
    """The response `code` to `req`: `attrs`, then the request's Proxy-State copied in
    order (RFC 2865 section 5.33, RFC 5176 section 3.5), Message-Authenticator first."""
    pkt = Packet(code, req.identifier)
    for t, v in attrs:
        pkt.add(t, v)
    for ps in req.all_raw(Attr.PROXY_STATE):
        pkt.add(Attr.PROXY_STATE, ps)
    return encode_response(pkt, req.authenticator, secret, ma_vector=ma_vector)


@dataclass
class _Cached:
    at: float
    answer: bytes | None  # None: the application is deciding


class ReplyCache:
    def __init__(self, dup_window: float, max_cache: int) -> None:
        self.dup_window = dup_window
        self.max_cache = max_cache
        self._entries: OrderedDict[Key, _Cached] = OrderedDict()
        self._out: list[tuple[bytes, Address]] = []

    @staticmethod
    def key(data: bytes, peer: Address) -> Key:
        """The key of a datagram of at least the header's 20 octets."""
        return (peer[0], peer[1], data[1], bytes(data[4:20]))

    @staticmethod
    def key_of(peer: Address, req: Packet) -> Key:
        return (peer[0], peer[1], req.identifier, req.authenticator)

    def expire(self, now: float) -> None:
        while self._entries:
            c = next(iter(self._entries.values()))
            if now - c.at <= self.dup_window and len(self._entries) <= self.max_cache:
                break
            self._entries.popitem(last=False)

    def replay(self, key: Key, peer: Address) -> bool:
        """True for a retransmission: its stored answer (if any yet) is queued again."""
        cached = self._entries.get(key)
        if cached is None:
            return False
        if cached.answer is not None:
            self._out.append((cached.answer, peer))
        return True

    def deciding(self, key: Key, now: float) -> None:
        """The request under `key` is handed to the application (copies: no answer)."""
        self._entries[key] = _Cached(now, None)

    def store(self, peer: Address, req: Packet, wire: bytes) -> None:
        """`wire` answers `req` from now on (retransmissions get it again)."""
        key = self.key_of(peer, req)
        old = self._entries.get(key)
        self._entries[key] = _Cached(old.at if old is not None else 0.0, wire)

    def forget(self, peer: Address, req: Packet) -> None:
        """Drop the entry of a request that will not be answered."""
        with contextlib.suppress(KeyError):
            del self._entries[self.key_of(peer, req)]

    def send(self, wire: bytes, peer: Address) -> None:
        """Queue an answer the core gave by itself."""
        self._out.append((wire, peer))

    def take(self) -> list[tuple[bytes, Address]]:
        """The queued datagrams, once."""
        out, self._out = self._out, []
        return out
