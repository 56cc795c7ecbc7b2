"""Packet taps of the VPs' Python paths (VP1's discovery ALG, VP2's ICMP-error tap).

A tap is an AF_PACKET SOCK_DGRAM socket on one interface with a classic BPF program
attached (SO_ATTACH_FILTER), so that only the packets the path handles are copied
to the process, not every packet of the share. On a SOCK_DGRAM packet socket the
program sees the packet from its IP header on.

    struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }   (linux/filter.h)
    struct sock_fprog  { u16 len; struct sock_filter *filter; }
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
from collections.abc import Iterator

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
# Opcodes (BPF_CLASS | BPF_SIZE | BPF_MODE, or | BPF_OP | BPF_SRC for jumps).
LD_W_ABS, LD_H_ABS, LD_B_ABS = 0x20, 0x28, 0x30
LDX_B_MSH, LD_W_IND, LD_H_IND, LD_B_IND = 0xB1, 0x40, 0x48, 0x50
JEQ_K, JSET_K, RET_K = 0x15, 0x45, 0x06

Program = list[tuple[int, int, int, int]]
"""(code, jt, jf, k) per instruction."""

_INSN = struct.Struct("HBBI")


def attach_filter(sock: socket.socket, prog: Program) -> None:
    buf = ctypes.create_string_buffer(b"".join(_INSN.pack(*ins) for ins in prog))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def open_tap(ifname: str, prog: Program) -> socket.socket:
    """A tap on `ifname` that sees only what `prog` accepts; reads time out every
    0.2 s (see `incoming`). The socket is opened for no protocol (it queues
    nothing), given the filter, then bound to `ifname` for every protocol: no
    packet, from this interface or another, arrives unfiltered."""
    tap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
    attach_filter(tap, prog)
    tap.bind((ifname, ETH_P_ALL))  # Python converts the protocol to network order
    tap.settimeout(0.2)
    return tap


def incoming(tap: socket.socket, stop: threading.Event) -> Iterator[bytes]:
    """The IPv4 packets arriving on the tap (not the ones this host sends), until
    `stop` is set or the tap is closed."""
    while not stop.is_set():
        try:
            pkt, addr = tap.recvfrom(65535)
        except TimeoutError:
            continue
        except OSError:
            return
        if addr[1] == ETH_P_IP and addr[2] != socket.PACKET_OUTGOING:
            yield pkt
