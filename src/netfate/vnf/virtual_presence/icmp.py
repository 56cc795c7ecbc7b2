"""VP2's ICMP-error path: quoted packets translated, which stateless nft cannot do.

An ICMP error quotes the packet that caused it. Crossing VP2, the quote must be
translated with the outer header, or the sender's stack cannot match the error
to its socket (a UDP client would never see "connection refused"). nftables
rewrites the outer header statelessly but neither the quoted one nor the ICMP
checksum over it, so VP2's kernel rules drop ICMP errors and this tap hands
them to the reference translator (the same code the netns tests compare the
kernel path with), then sends the result: to D2 on the VI, or into the overlay
with the share's fwmark (the policy route the kernel path uses).

Errors the VP's own kernel generates (e.g. "fragmentation needed" when the EI
MTU is below the LAN's) never cross a tap and keep the translated quote; the
MTU is set so that those do not occur (underlay MTU = LAN MTU + 50).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter

from netfate.proto import ipv4

from .tap import (
    JEQ_K,
    JSET_K,
    LD_B_ABS,
    LD_B_IND,
    LD_H_ABS,
    LDX_B_MSH,
    RET_K,
    Program,
    incoming,
    open_tap,
)
from .translator import Forward, Role, Side, Translator

log = logging.getLogger("netfate.vnf.vp.icmp")
SO_MARK = 36


def error_filter() -> Program:
    """ICMP, first fragment, type 3, 11 or 12 (from the IP header on, SOCK_DGRAM)."""
    return [
        (LD_B_ABS, 0, 0, 9),  # 0  A = protocol
        (JEQ_K, 0, 8, ipv4.ICMP),  # 1  not ICMP -> drop (10)
        (LD_H_ABS, 0, 0, 6),  # 2  A = flags + fragment offset
        (JSET_K, 6, 0, 0x1FFF),  # 3  a later fragment -> drop
        (LDX_B_MSH, 0, 0, 0),  # 4  X = IP header length
        (LD_B_IND, 0, 0, 0),  # 5  A = ICMP type
        (JEQ_K, 2, 0, 3),  # 6  -> accept (9)
        (JEQ_K, 1, 0, 11),  # 7  -> accept
        (JEQ_K, 0, 1, 12),  # 8  -> accept / drop
        (RET_K, 0, 0, 0xFFFF),  # 9  accept
        (RET_K, 0, 0, 0),  # 10 drop
    ]


class IcmpErrorTap:
    def __init__(self, tr: Translator, vi: str, ei: str, mark: int) -> None:
        if tr.role is not Role.EXPORTER:
            raise ValueError("the ICMP-error tap runs in VP2")
        self.tr = tr
        self.ifs = {Side.VI: vi, Side.EI: ei}
        self.mark = mark
        self.counters: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []

    def start(self) -> None:
        to_vi = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        to_vi.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifs[Side.VI].encode())
        to_ei = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        to_ei.setsockopt(socket.SOL_SOCKET, SO_MARK, self.mark)
        self._out = {Side.VI: to_vi, Side.EI: to_ei}
        self._socks += [to_vi, to_ei]
        for side, ifname in self.ifs.items():
            tap = open_tap(ifname, error_filter())
            self._socks.append(tap)
            t = threading.Thread(target=self._loop, args=(side, tap), daemon=True)
            t.start()
            self._threads.append(t)

    def _loop(self, side: Side, tap: socket.socket) -> None:
        for pkt in incoming(tap, self._stop):
            v = self.tr.handle(side, pkt)
            if not isinstance(v, Forward):
                self.counters["dropped"] += 1
                continue
            dst = str(ipv4.parse(v.packet).dst)
            try:
                self._out[v.out].sendto(v.packet, (dst, 0))
                self.counters["translated"] += 1
            except OSError as e:
                self.counters["send_error"] += 1
                log.warning("ICMP error to %s: %s", dst, e)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in self._socks:
            s.close()
