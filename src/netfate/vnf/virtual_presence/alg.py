"""The discovery ALG of VP1 (PN2 side): SSDP, mDNS, HTTP and RTSP of a shared device.

An IP-header rewrite alone breaks a shared media server or camera: its SSDP
LOCATION, its mDNS records, its descriptions, the content URLs of its Browse
answers and its RTSP/SDP name its PN1 address. So VP1 handles them in Python
(DESIGN: Python touches packets only where no kernel function exists):

- Datagrams from the device arriving on the EI: SSDP (port 1900 at either end:
  NOTIFY alive/byebye from any port; search answers from 1900 or, as libupnp sends
  them, from any port to the searcher's: any UDP payload that starts "HTTP") and
  mDNS (5353 at either end: multicast answers, unicast answers to QU questions and
  legacy unicast queries). A packet tap reads them (taps see frames before netdev
  ingress, where the kernel path drops them), the reference translator applies
  VP1's EI rule, the payload is rewritten (proto.ssdp: every SSDP field; mDNS A,
  AAAA, PTR, SRV, TXT) and the packet leaves on the VI through a raw IP socket.
  M-SEARCH from PN2 needs nothing: the kernel path relays it to the device.
- TCP to the alias on a proxied port: the ports the device announces (LOCATION,
  SRV, URLs in its descriptions, SOAP answers, RTSP and SDP) are learned and
  proxied from then on, before the rewritten announcement is sent; `http_ports`
  are proxied from the start. The proxy connects to the device transparently,
  from the client's own address (kernel.py), so the device sees the client's VP2
  alias as on the kernel path, and UDP the device sends the client afterwards (RTP
  after an RTSP SETUP) takes the kernel path. HTTP/1.x and RTSP/1.0 are framed
  (proto.ssdp.framing: persistent connections, chunked, interleaved RTSP data) and
  rewritten both ways (proto.ssdp.rewriter): towards the device the alias becomes
  the device and each PN2 device its VP2 alias (Host, GENA CALLBACK, RTSP
  Transport destination); towards the client the reverse. A connection that does
  not start with an HTTP or RTSP request line is relayed as it is (a protocol whose
  server speaks first waits for the client's first bytes: not supported).

Bounds: at most MAX_PORTS learned ports (more are refused and counted), at most
MAX_CONNECTIONS proxied connections at once, clients only among the ATT's PN2
devices (VP2 would drop anyone else), text bodies up to proto.ssdp.rewriter.MAX_TEXT
(beyond: 502). mDNS and SSDP datagrams that arrive fragmented are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from netfate.proto import ipv4
from netfate.proto.ssdp import (
    AddressMap,
    AlgError,
    Framing,
    Head,
    MessageReader,
    MessageRewriter,
    rewrite_mdns,
    rewrite_ssdp,
)

from . import kernel
from .att import ATT
from .tap import (
    JEQ_K,
    JSET_K,
    LD_B_ABS,
    LD_H_ABS,
    LD_H_IND,
    LD_W_ABS,
    LD_W_IND,
    LDX_B_MSH,
    RET_K,
    Program,
    incoming,
    open_tap,
)
from .translator import Forward, Role, Side, Translator

log = logging.getLogger("netfate.vnf.vp.alg")
SSDP_PORT, MDNS_PORT = 1900, 5353
HTTP_WORD = int.from_bytes(b"HTTP", "big")
MAX_PORTS = 32
"""Learned ports beyond this many are refused (counted): a device cannot make VP1
listen on every port."""
MAX_CONNECTIONS = 256
CONNECT_TIMEOUT_S = 10.0
LEARN_TIMEOUT_S = 5.0
READ = 65536
IP_TRANSPARENT = getattr(socket, "IP_TRANSPARENT", 19)
METHOD = re.compile(rb"[A-Z][A-Z_-]*")
"""A request method as HTTP and RTSP name them (GET, M-SEARCH, GET_PARAMETER)."""


def tap_filter(device: bytes) -> Program:
    """src == device, UDP, first fragment, and port 1900 or 5353 at either end, or a
    payload that starts with "HTTP" (an SSDP search answer from any port)."""
    dev = int.from_bytes(device, "big")
    return [
        (LD_W_ABS, 0, 0, 12),  # 0  A = src address
        (JEQ_K, 0, 14, dev),  # 1  != device -> drop (16)
        (LD_B_ABS, 0, 0, 9),  # 2  A = protocol
        (JEQ_K, 0, 12, ipv4.UDP),  # 3  not UDP -> drop
        (LD_H_ABS, 0, 0, 6),  # 4  A = flags + fragment offset
        (JSET_K, 10, 0, 0x1FFF),  # 5  a later fragment -> drop
        (LDX_B_MSH, 0, 0, 0),  # 6  X = IP header length
        (LD_H_IND, 0, 0, 0),  # 7  A = source port
        (JEQ_K, 6, 0, SSDP_PORT),  # 8  -> accept (15)
        (JEQ_K, 5, 0, MDNS_PORT),  # 9  -> accept
        (LD_H_IND, 0, 0, 2),  # 10 A = destination port
        (JEQ_K, 3, 0, SSDP_PORT),  # 11 -> accept
        (JEQ_K, 2, 0, MDNS_PORT),  # 12 -> accept
        (LD_W_IND, 0, 0, 8),  # 13 A = first 4 payload bytes (none: drop)
        (JEQ_K, 0, 1, HTTP_WORD),  # 14 "HTTP" -> accept / drop
        (RET_K, 0, 0, 0xFFFF),  # 15 accept
        (RET_K, 0, 0, 0),  # 16 drop
    ]


def address_maps(att: ATT) -> tuple[AddressMap, AddressMap]:
    """(towards PN2 clients, towards the device): the device <-> its alias, and each
    PN2 device <-> its VP2 alias."""
    d2, alias = str(att.shared_device), str(att.import_alias)
    to_client = AddressMap([(d2, alias), *((str(a), str(d)) for a, d in att.entries)])
    to_device = AddressMap([(alias, d2), *((str(d), str(a)) for a, d in att.entries)])
    return to_client, to_device


def datagram_alg(
    tr: Translator, packet: bytes, amap: AddressMap, counters: Counter[str] | None = None
) -> tuple[bytes | None, set[int]]:
    """VP1's EI rule plus the payload rewrite, for one SSDP/mDNS datagram (sans-I/O).

    Returns (the IPv4 packet to send on the VI or None, the ports its URLs and SRV
    records name on the device). None: dropped by the rule, not a first-fragment UDP
    datagram, or an mDNS message that cannot be parsed or has nothing left for PN2.
    An SSDP message that cannot be parsed has the map's addresses replaced as text.
    """
    c = counters if counters is not None else tr.counters
    device = str(tr.att.shared_device)
    v = tr.handle(Side.EI, packet)
    if not isinstance(v, Forward):
        return None, set()
    pkt = ipv4.parse(v.packet)
    if pkt.proto != ipv4.UDP or pkt.is_fragment or len(pkt.payload) < 8:
        return None, set()
    sport, dport = struct.unpack_from("!HH", pkt.payload)
    data = pkt.payload[8:]
    ports: set[int] = set()
    if MDNS_PORT in (sport, dport) and SSDP_PORT not in (sport, dport):
        try:
            res = rewrite_mdns(data, amap, device)
        except AlgError:
            c["mdns_unparsed"] += 1  # binary: an address could be anywhere in it
            return None, set()
        c["mdns_records_rewritten"] += res.rewritten
        c["mdns_records_removed"] += res.removed
        if res.data is None:
            return None, res.ports
        data, ports = res.data, res.ports
    else:
        try:
            data, ports = rewrite_ssdp(data, amap, device)
        except AlgError:
            c["alg_unparsed"] += 1
            data = amap.apply(data)
    out = ipv4.build_udp(
        pkt.src, pkt.dst, sport, dport, data, ttl=pkt.ttl, ident=pkt.ident, tos=pkt.tos,
        flags_frag=pkt.flags_frag,
    )  # fmt: skip
    return out, ports


def sniff(data: bytes) -> str | None:
    """ "http" or "rtsp" when `data` starts with such a request line, "raw" when it
    cannot, None when more bytes are needed to tell."""
    line, crlf, _ = data.partition(b"\r\n")
    parts = line.split(b" ")
    if not crlf:
        if len(data) < 4096 and all(32 <= c < 127 for c in data):
            return None
        return "raw"
    if len(parts) == 3 and METHOD.fullmatch(parts[0]):
        if parts[2].startswith(b"HTTP/1."):
            return "http"
        if parts[2].startswith(b"RTSP/1."):
            return "rtsp"
    return "raw"


class DiscoveryAlg:
    def __init__(
        self,
        tr: Translator,
        cfg: kernel.KernelConfig,
        learned: Iterable[int] = (),
        on_learned: Callable[[], None] | None = None,
    ):
        if tr.role is not Role.IMPORTER:
            raise ValueError("the discovery ALG runs in VP1")
        self.tr = tr
        self.cfg = cfg
        self.alias = str(cfg.att.import_alias)
        self.device = str(cfg.att.shared_device)
        self._device_packed = cfg.att.shared_device.packed
        self.to_client, self.to_device = address_maps(cfg.att)
        self.http_ports = sorted(set(cfg.http_ports))
        self.learned: set[int] = set()
        """Ports the device named for itself (announced or in URLs it served)."""
        self._initial = sorted(set(learned))
        self._on_learned = on_learned
        """Called (in the function's loop: open_ports runs there) once new learned
        ports are proxied: the function tells the owners' pages, which have no other
        way to hear of it."""
        self.counters: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._servers: dict[int, asyncio.AbstractServer] = {}
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tap: socket.socket | None = None
        self._connections = 0

    def update(self, att: ATT) -> None:
        """A new ATT (PN2 devices came or left): the translator and the maps follow."""
        self.tr.update(att)
        self.to_client, self.to_device = address_maps(att)

    @property
    def proxied(self) -> list[int]:
        return sorted(self._servers)

    def ports(self) -> dict[str, list[int]]:
        return {"configured": self.http_ports, "learned": sorted(self.learned),
                "proxied": self.proxied}  # fmt: skip

    # ------------------------------------------------------------ learned ports

    async def open_ports(self, ports: Iterable[int], *, learned: bool = True) -> None:
        """Listen on `ports` of the alias and keep TCP to them local (the kernel set),
        before anything that names them is sent on."""
        async with self._lock:
            opened = []
            new = False
            for p in sorted(set(ports)):
                if learned and p not in self.learned:
                    self.learned.add(p)
                    self.counters["ports_learned"] += 1
                    new = True
                if p in self._servers:
                    continue
                if len(self._servers) >= max(MAX_PORTS, len(self.http_ports)):
                    self.counters["ports_refused"] += 1
                    continue
                try:
                    srv = await asyncio.start_server(self._client, self.alias, p)
                except OSError as e:
                    self.counters["port_bind_error"] += 1
                    log.warning("ALG cannot listen on %s:%d: %s", self.alias, p, e)
                    continue
                self._servers[p] = srv
                opened.append(p)
            if opened:
                await asyncio.to_thread(kernel.add_alg_ports, None, self.cfg, opened)
            if new and self._on_learned is not None:
                self._on_learned()

    def _learn_from_thread(self, ports: set[int]) -> None:
        if not ports - set(self._servers) - self.learned or self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.open_ports(ports), self._loop)
        try:
            fut.result(LEARN_TIMEOUT_S)
        except (TimeoutError, RuntimeError, OSError) as e:
            self.counters["learn_error"] += 1
            log.warning("ALG could not open ports %s: %s", sorted(ports), e)

    # ------------------------------------------------------------ datagrams

    def _tap_loop(self) -> None:
        tap = self._tap
        if tap is None:
            return
        out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.cfg.vi.encode())
        try:
            # The tap's filter (tap_filter) lets only the device's SSDP/mDNS through;
            # datagram_alg parses and checks each one again as untrusted bytes.
            for frame in incoming(tap, self._stop):
                try:
                    pkt, ports = datagram_alg(self.tr, frame, self.to_client, self.counters)
                except ipv4.IPv4Error:
                    self.counters["malformed"] += 1
                    continue
                self._learn_from_thread(ports)
                if pkt is None:
                    self.counters["dropped"] += 1
                    continue
                sent = ipv4.parse(pkt)
                dst = str(sent.dst)
                sport, dport = struct.unpack_from("!HH", sent.payload)
                mdns = MDNS_PORT in (sport, dport) and SSDP_PORT not in (sport, dport)
                try:
                    out.sendto(pkt, (dst, 0))
                    self.counters["mdns" if mdns else "ssdp"] += 1
                except OSError as e:
                    self.counters["send_error"] += 1
                    log.warning("ALG send to %s: %s", dst, e)
        finally:
            out.close()

    # ------------------------------------------------------------ TCP

    async def _connect(
        self, client: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the device from the client's own address (transparent; the
        share's mark routes it into the EI)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.cfg.mark)
            s.bind((client, 0))
            s.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(s, (self.device, port)), CONNECT_TIMEOUT_S)
        except BaseException:
            s.close()
            raise
        return await asyncio.open_connection(sock=s)

    async def _raw(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, first: bytes = b""
    ) -> None:
        if first:
            w.write(first)
        while chunk := await r.read(READ):
            w.write(chunk)
            await w.drain()
        if w.can_write_eof():
            w.write_eof()

    async def _messages(
        self,
        r: asyncio.StreamReader,
        w: asyncio.StreamWriter,
        reader: MessageReader,
        rw: MessageRewriter,
        peer: MessageReader,
        first: bytes = b"",
    ) -> None:
        """One direction: frame, rewrite, open learned ports, send; `peer` is the
        other direction's reader (told which requests went this way)."""
        data = first or await r.read(READ)
        while True:
            events = reader.feed(data) if data else reader.feed_eof()
            for ev in events:
                if isinstance(ev, Head):
                    if ev.framing is Framing.TUNNEL:
                        peer.tunnel()
                    elif not ev.is_response and reader.protocol == "http":
                        peer.expect(ev.method)
            out = rw.feed(events)
            if rw.learned:
                ports, rw.learned = set(rw.learned), set()
                await self.open_ports(ports)
            if out:
                w.write(out)
                await w.drain()
            if not data:
                if w.can_write_eof():
                    w.write_eof()
                return
            data = await r.read(READ)

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        client = str(cw.get_extra_info("peername")[0])
        port = int(cw.get_extra_info("sockname")[1])
        sw: asyncio.StreamWriter | None = None
        if self._connections >= MAX_CONNECTIONS or client not in {
            str(d) for _, d in self.tr.att.entries
        }:
            # An unknown client would be dropped at VP2 anyway (unknown sender).
            self.counters["tcp_refused"] += 1
            cw.close()
            return
        self._connections += 1
        down_rw: MessageRewriter | None = None
        proto = "raw"
        try:
            first = b""
            while (kind := sniff(first)) is None:
                chunk = await cr.read(READ)
                if not chunk:
                    break
                first += chunk
            proto = kind or "raw"
            sr, sw = await self._connect(client, port)
            if proto == "raw":
                tasks = [self._raw(cr, sw, first), self._raw(sr, cw)]
            else:
                up, down = MessageReader(proto), MessageReader(proto)
                up_rw = MessageRewriter(self.to_device, limit_encodings=proto == "http")
                down_rw = MessageRewriter(self.to_client, device=self.device)
                tasks = [
                    self._messages(cr, sw, up, up_rw, down, first),
                    self._messages(sr, cw, down, down_rw, up),
                ]
            self.counters[f"tcp_{proto}"] += 1
            await _both(tasks)
            if down_rw is not None:
                self.counters[f"{proto}_rewritten"] += down_rw.rewritten
                self.counters[f"{proto}_streamed"] += down_rw.streamed
        except AlgError as e:
            self.counters[f"{proto}_error"] += 1
            log.info("ALG %s: %s", proto, e)
            if proto == "http" and down_rw is not None and not down_rw.head_sent:
                with contextlib.suppress(ConnectionError, OSError):
                    cw.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")  # fmt: skip
                    await cw.drain()
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError) as e:
            self.counters["tcp_error"] += 1
            log.info("ALG TCP from %s to port %d: %s", client, port, e)
        finally:
            self._connections -= 1
            for w in (cw, sw):
                if w is not None:
                    w.close()

    # ------------------------------------------------------------ life

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.open_ports(self.http_ports, learned=False)
        if self._initial:
            await self.open_ports(self._initial)
        if self.cfg.alg:
            self._tap = open_tap(self.cfg.ei, tap_filter(self._device_packed))
            self._thread = threading.Thread(target=self._tap_loop, name="vp-alg", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        for srv in self._servers.values():
            srv.close()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2)
        if self._tap is not None:
            self._tap.close()

    def stats(self) -> dict[str, int]:
        return dict(self.counters + self.tr.counters)


async def _both(coros: list[Any]) -> None:
    """Run both directions; the first failure ends the other."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in done:
            exc = t.exception()
            if exc is not None:
                raise exc
    finally:
        for t in tasks:
            t.cancel()
