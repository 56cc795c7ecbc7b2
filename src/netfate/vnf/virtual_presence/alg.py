"""The discovery ALG of VP1 (PN2 side): SSDP, mDNS and HTTP of a shared media server.

An IP-header rewrite alone breaks DLNA: the server's SSDP LOCATION, its
description and the content URLs of its Browse answers name its PN1 address.
So VP1 handles three things in Python (DESIGN: Python touches packets only
where no kernel function exists):

- SSDP and mDNS from the device (UDP port 1900 / 5353, either end: NOTIFYs
  leave from an ephemeral port, search answers from 1900) arriving on the
  EI: a packet tap reads them (taps see frames before netdev ingress, where the
  kernel path drops them), the reference translator applies VP1's EI rule,
  LOCATION/AL or A records are rewritten to the alias, and the packet leaves on
  the VI through a raw IP socket. M-SEARCH from PN2 needs nothing: the kernel
  path relays it to the device like any discovery datagram.
- HTTP to the alias on the device's HTTP ports: the kernel delivers it locally
  (VP1's prerouting leaves those ports unmarked), and this reverse proxy
  forwards each request through the overlay to VP2's EI address, where VP2
  NATs it to the device. Text bodies (XML, SOAP) get the device's address
  rewritten and Content-Length recomputed; other bodies (media) stream as they
  are. One request per connection (`Connection: close` both ways) keeps the
  proxy simple and correct.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
from collections import Counter
from typing import Any

from netfate.proto import ipv4
from netfate.proto.ssdp import AlgError, parse_head, rewrite_a_records, rewrite_body, rewrite_ssdp

from .tap import (
    JEQ_K,
    JSET_K,
    LD_B_ABS,
    LD_H_ABS,
    LD_H_IND,
    LD_W_ABS,
    LDX_B_MSH,
    RET_K,
    Program,
    incoming,
    open_tap,
)
from .translator import Forward, Role, Side, Translator

log = logging.getLogger("netfate.vnf.vp.alg")
SSDP_PORT, MDNS_PORT = 1900, 5353
TEXT_TYPES = ("xml", "text", "json", "soap")
MAX_TEXT_BODY = 4 << 20


def tap_filter(device: bytes) -> Program:
    """src == device, UDP, first fragment, source or destination port 1900 or 5353."""
    dev = int.from_bytes(device, "big")
    return [
        (LD_W_ABS, 0, 0, 12),  # 0  A = src address
        (JEQ_K, 0, 12, dev),  # 1  != device -> drop (14)
        (LD_B_ABS, 0, 0, 9),  # 2  A = protocol
        (JEQ_K, 0, 10, ipv4.UDP),  # 3  not UDP -> drop
        (LD_H_ABS, 0, 0, 6),  # 4  A = flags + fragment offset
        (JSET_K, 8, 0, 0x1FFF),  # 5  a later fragment -> drop
        (LDX_B_MSH, 0, 0, 0),  # 6  X = IP header length
        (LD_H_IND, 0, 0, 0),  # 7  A = source port
        (JEQ_K, 4, 0, SSDP_PORT),  # 8  -> accept (13)
        (JEQ_K, 3, 0, MDNS_PORT),  # 9  -> accept
        (LD_H_IND, 0, 0, 2),  # 10 A = destination port
        (JEQ_K, 1, 0, SSDP_PORT),  # 11 -> accept
        (JEQ_K, 0, 1, MDNS_PORT),  # 12 -> accept / drop
        (RET_K, 0, 0, 0xFFFF),  # 13 accept
        (RET_K, 0, 0, 0),  # 14 drop
    ]


def datagram_alg(tr: Translator, packet: bytes, device: str, alias: str) -> bytes | None:
    """VP1's EI rule plus the payload rewrite, for one SSDP/mDNS datagram (sans-I/O).

    Returns the IPv4 packet to send on the VI, or None (dropped by the rule, or
    not a first-fragment UDP datagram the ALG understands: then it is dropped,
    as the kernel path already dropped it).
    """
    v = tr.handle(Side.EI, packet)
    if not isinstance(v, Forward):
        return None
    pkt = ipv4.parse(v.packet)
    if pkt.proto != ipv4.UDP or pkt.is_fragment or len(pkt.payload) < 8:
        return None
    sport, dport = struct.unpack_from("!HH", pkt.payload)
    data = pkt.payload[8:]
    try:
        if SSDP_PORT in (sport, dport):
            data = rewrite_ssdp(data, device, alias)
        elif MDNS_PORT in (sport, dport):
            data, _ = rewrite_a_records(data, device, alias)
    except AlgError:
        tr.counters["alg_unparsed"] += 1  # passed through unchanged
    return ipv4.build_udp(
        pkt.src, pkt.dst, sport, dport, data, ttl=pkt.ttl, ident=pkt.ident, tos=pkt.tos,
        flags_frag=pkt.flags_frag,
    )  # fmt: skip


class DiscoveryAlg:
    def __init__(
        self, tr: Translator, ei: str, vi: str, alias: str, upstream: str, http_ports: list[int]
    ) -> None:
        if tr.role is not Role.IMPORTER:
            raise ValueError("the discovery ALG runs in VP1")
        self.tr = tr
        self.ei, self.vi = ei, vi
        self.alias = alias
        self.device = str(tr.att.shared_device)
        self._device_packed = tr.att.shared_device.packed
        self.upstream = upstream
        self.http_ports = http_ports
        self.counters: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._tap: socket.socket | None = None

    # ------------------------------------------------------------ datagrams

    def _tap_loop(self) -> None:
        tap = self._tap
        if tap is None:
            return
        out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.vi.encode())
        try:
            # The tap's filter (tap_filter) lets only the device's SSDP/mDNS through;
            # datagram_alg parses and checks each one again as untrusted bytes.
            for frame in incoming(tap, self._stop):
                try:
                    pkt = datagram_alg(self.tr, frame, self.device, self.alias)
                except ipv4.IPv4Error:
                    self.counters["malformed"] += 1
                    continue
                if pkt is None:
                    self.counters["dropped"] += 1
                    continue
                sent = ipv4.parse(pkt)
                dst = str(sent.dst)
                ports = struct.unpack_from("!HH", sent.payload)
                try:
                    out.sendto(pkt, (dst, 0))
                    self.counters["ssdp" if SSDP_PORT in ports else "mdns"] += 1
                except OSError as e:
                    self.counters["send_error"] += 1
                    log.warning("ALG send to %s: %s", dst, e)
        finally:
            out.close()

    # ------------------------------------------------------------ HTTP

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await r.read(65536):
                w.write(chunk)
                await w.drain()

    async def _read_head(self, r: asyncio.StreamReader) -> tuple[Any, bytes]:
        buf = b""
        while True:
            parsed = parse_head(buf)
            if parsed is not None:
                head, used = parsed
                return head, buf[used:]
            chunk = await r.read(65536)
            if not chunk:
                raise AlgError("closed", "connection closed before the head ended")
            buf += chunk

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        port = cw.get_extra_info("sockname")[1]
        sw: asyncio.StreamWriter | None = None
        try:
            head, rest = await self._read_head(cr)
            n = head.content_length() or 0
            body = rest + (await cr.readexactly(n - len(rest)) if n > len(rest) else b"")
            head.set("Host", f"{self.device}:{port}")
            head.set("Connection", "close")
            sr, sw = await asyncio.open_connection(self.upstream, port)
            sw.write(head.encode() + body)
            await sw.drain()
            rhead, rrest = await self._read_head(sr)
            rhead.set("Connection", "close")
            ctype = (rhead.get("content-type") or "").lower()
            chunked = "chunked" in (rhead.get("transfer-encoding") or "").lower()
            if any(t in ctype for t in TEXT_TYPES) and not chunked:
                length = rhead.content_length()
                if length is None:
                    data = rrest + await sr.read(MAX_TEXT_BODY)
                else:
                    data = rrest + await sr.readexactly(max(0, length - len(rrest)))
                data = rewrite_body(rhead, data, self.device, self.alias)
                cw.write(rhead.encode() + data)
                self.counters["http_rewritten"] += 1
            else:
                cw.write(rhead.encode() + rrest)
                await self._pipe(sr, cw)
                self.counters["http_streamed"] += 1
            await cw.drain()
        except (AlgError, ConnectionError, asyncio.IncompleteReadError, OSError) as e:
            self.counters["http_error"] += 1
            log.info("HTTP ALG: %s", e)
        finally:
            for w in (cw, sw):
                if w is not None:
                    w.close()

    # ------------------------------------------------------------ life

    async def start(self) -> None:
        self._tap = open_tap(self.ei, tap_filter(self._device_packed))
        self._thread = threading.Thread(target=self._tap_loop, name="vp-alg", daemon=True)
        self._thread.start()
        for port in self.http_ports:
            srv = await asyncio.start_server(self._client, self.alias, port)
            self._servers.append(srv)

    async def stop(self) -> None:
        self._stop.set()
        for srv in self._servers:
            srv.close()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2)
        if self._tap is not None:
            self._tap.close()

    def stats(self) -> dict[str, int]:
        return dict(self.counters + self.tr.counters)
