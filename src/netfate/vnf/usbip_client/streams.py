"""Python API for the streaming devices: HID reports and isochronous packets.

Both keep ``depth`` URBs in flight so that nothing is lost between two reads
(a HID device's report waits in a parked URB; an isochronous stream is consumed
at its own pace) and yield results in submission order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from netfate.proto.usbip import IsoPacket, UsbipProtocolError

from .client import Completion, RemoteDevice, TransferError, UsbipError


def _unlink_rest(dev: RemoteDevice, window: deque[tuple[int, asyncio.Future[Completion]]]) -> None:
    for seq, fut in window:
        if not fut.done():
            # The connection may be gone already (closed, or the reason we stopped).
            with contextlib.suppress(UsbipError, UsbipProtocolError):
                dev.unlink(seq)


async def hid_reports(
    dev: RemoteDevice, *, ep: int = 0x81, size: int = 8, depth: int = 2, interval: int = 10
) -> AsyncIterator[bytes]:
    """Yield input reports from a HID interrupt IN endpoint, forever.

    Use it under ``contextlib.aclosing`` so that breaking out unlinks the URBs
    still in flight at once (otherwise when the generator is collected).
    """
    window: deque[tuple[int, asyncio.Future[Completion]]] = deque(
        dev.submit_nowait(ep, True, length=size, interval=interval) for _ in range(depth)
    )
    try:
        while True:
            _seq, fut = window[0]
            done = await fut
            window.popleft()
            if done.status != 0:
                raise TransferError(done.status)
            window.append(dev.submit_nowait(ep, True, length=size, interval=interval))
            yield done.data
    finally:
        _unlink_rest(dev, window)


async def iso_packets(
    dev: RemoteDevice,
    *,
    ep: int = 0x81,
    packet_size: int = 192,
    packets_per_urb: int = 8,
    depth: int = 4,
) -> AsyncIterator[tuple[IsoPacket, bytes]]:
    """Yield (descriptor, payload) for every isochronous IN packet, forever.

    A lost packet comes with its error status in the descriptor and no payload.
    Use under ``contextlib.aclosing``, as :func:`hid_reports`.
    """
    layout = tuple(IsoPacket(k * packet_size, packet_size) for k in range(packets_per_urb))
    total = packet_size * packets_per_urb

    def submit() -> tuple[int, asyncio.Future[Completion]]:
        return dev.submit_nowait(ep, True, length=total, iso_packets=layout)

    window = deque(submit() for _ in range(depth))
    try:
        while True:
            _seq, fut = window[0]
            done = await fut
            window.popleft()
            window.append(submit())
            if done.status != 0:
                raise TransferError(done.status)
            # The server sends the packets' bytes back to back, without padding.
            pos = 0
            for p in done.iso_packets:
                yield p, done.data[pos : pos + p.actual_length]
                pos += p.actual_length
    finally:
        _unlink_rest(dev, window)
