"""Export a real USB device of the HRH through libusb (pyusb), next to the virtual ones.

The HRH of the paper exports whatever dongle is plugged in.  Without the
``usbip-host`` kernel module, userspace reaches the device through libusb;
:class:`HostDevice` turns URBs into libusb transfers:

* endpoint 0 → ``ctrl_transfer``; bulk/interrupt IN → ``read``; OUT → ``write``;
* each endpoint has its own worker thread, so transfers on one endpoint stay in
  order while different endpoints (the CSW read and the next CBW, a serial
  read parked for minutes) do not block each other;
* an IN transfer is polled in slices of ``poll_ms`` so that an unlink (a
  cancelled read) takes effect within one slice — libusb's synchronous API
  cannot cancel a transfer in progress;
* isochronous endpoints are not exported (pyusb has no isochronous API); a
  URB for one stalls.

Usage with a real device (needs ``pip install pyusb`` and the libusb-1.0
library, present on Debian as ``libusb-1.0-0``)::

    dev = HostDevice.from_pyusb("1-5", vendor=0x2341, product=0x0043)
    server = UsbipServer([dev, SerialSensor("1-1")])

The backend is duck-typed (``ctrl_transfer``, ``read``, ``write`` as in pyusb),
which is how the tests drive this class with the virtual devices of this
package standing in for hardware.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import struct
import threading
from typing import Any, Protocol

from netfate.proto.usbip import Endpoint, SetupPacket, TransferType, UrbSubmitted

from .descriptors import InterfaceSpec
from .devices import EPIPE, STALL, Completer, UrbResult, VirtualDevice


class UsbBackend(Protocol):
    """The subset of ``usb.core.Device`` used here."""

    def ctrl_transfer(
        self, bmRequestType: int, bRequest: int, wValue: int, wIndex: int,
        data_or_wLength: Any, timeout: int | None = None,
    ) -> Any: ...  # fmt: skip

    def read(self, endpoint: int, size_or_buffer: int, timeout: int | None = None) -> Any: ...

    def write(self, endpoint: int, data: bytes, timeout: int | None = None) -> int: ...


class BackendTimeout(Exception):
    """Raised by a backend when a transfer timed out (pyusb: ``USBTimeoutError``)."""


def _parse_config(config: bytes) -> list[InterfaceSpec]:
    """Interfaces (alternate setting 0) and all endpoints of a configuration descriptor."""
    specs: list[InterfaceSpec] = []
    eps: list[Endpoint] = []
    current: tuple[int, int, int, int] | None = None
    i = 0
    while i + 2 <= len(config) and config[i] >= 2:
        ln, kind = config[i], config[i + 1]
        if kind == 4 and i + 9 <= len(config):
            if current is not None and config[i + 3] == 0:
                specs.append(InterfaceSpec(*current, tuple(eps)))
                eps = []
            if config[i + 3] == 0:
                current = (config[i + 2], config[i + 5], config[i + 6], config[i + 7])
        elif kind == 5 and i + 7 <= len(config):
            (mps,) = struct.unpack_from("<H", config, i + 4)
            eps.append(Endpoint(config[i + 2], TransferType(config[i + 3] & 3), mps & 0x7FF))
        i += ln
    if current is not None:
        specs.append(InterfaceSpec(*current, tuple(eps)))
    return specs


class HostDevice(VirtualDevice):
    """A libusb-reachable device exported over USB/IP (see the module docstring)."""

    def __init__(
        self,
        busid: str,
        backend: UsbBackend,
        *,
        timeout_errors: tuple[type[BaseException], ...] = (BackendTimeout,),
        poll_ms: int = 100,
    ) -> None:
        super().__init__(busid)
        self.backend = backend
        self.timeout_errors = timeout_errors
        self.poll_ms = poll_ms
        dd = bytes(backend.ctrl_transfer(0x80, 6, 0x0100, 0, 18, 1000))
        if len(dd) < 18:
            raise OSError(f"short device descriptor from {busid}")
        self._device_descriptor = dd
        self.vendor, self.product = struct.unpack_from("<HH", dd, 8)
        self.device_class = dd[4]
        head = bytes(backend.ctrl_transfer(0x80, 6, 0x0200, 0, 9, 1000))
        total = struct.unpack_from("<H", head, 2)[0] if len(head) >= 4 else 9
        self._config = bytes(backend.ctrl_transfer(0x80, 6, 0x0200, 0, total, 1000))
        self._interfaces = _parse_config(self._config)
        self._workers: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_pyusb(cls, busid: str, *, vendor: int, product: int) -> HostDevice:
        """Open the first device with this vendor/product through pyusb."""
        import usb.core  # type: ignore[import-not-found]  # optional: pyusb

        dev = usb.core.find(idVendor=vendor, idProduct=product)
        if dev is None:
            raise OSError(f"no USB device {vendor:04x}:{product:04x}")
        for cfg in dev:
            for intf in cfg:
                if dev.is_kernel_driver_active(intf.bInterfaceNumber):
                    dev.detach_kernel_driver(intf.bInterfaceNumber)  # the ISP drives it now
        return cls(busid, dev, timeout_errors=(usb.core.USBTimeoutError,))

    def interfaces(self) -> list[InterfaceSpec]:
        return self._interfaces

    def descriptor(self) -> bytes:
        return self._device_descriptor

    # --- URBs --------------------------------------------------------------- #

    def submit(self, urb: UrbSubmitted, done: Completer) -> None:
        loop = asyncio.get_running_loop()
        addr = urb.ep | (0x80 if urb.direction_in else 0)
        if urb.iso_packets:
            done(urb.seqnum, STALL)
            return
        worker = self._workers.get(addr)
        if worker is None:
            worker = concurrent.futures.ThreadPoolExecutor(1, f"usb-{self.busid}-{addr:02x}")
            self._workers[addr] = worker

        def finish(result: UrbResult) -> None:
            with self._lock:
                if urb.seqnum in self._cancelled:
                    self._cancelled.discard(urb.seqnum)
                    return
            done(urb.seqnum, result)

        def job() -> None:
            result = self._transfer(urb, addr)
            loop.call_soon_threadsafe(finish, result)

        worker.submit(job)

    def _transfer(self, urb: UrbSubmitted, addr: int) -> UrbResult:
        b = self.backend
        try:
            if urb.ep == 0:
                s = urb.setup or SetupPacket(0, 0, 0, 0, 0)
                if urb.direction_in:
                    got = b.ctrl_transfer(
                        s.request_type, s.request, s.value, s.index, s.length, 5000
                    )
                    return UrbResult(data=bytes(got)[: urb.transfer_buffer_length])
                b.ctrl_transfer(s.request_type, s.request, s.value, s.index, urb.data, 5000)
                return UrbResult()
            if not urb.direction_in:
                n = b.write(addr, urb.data, 5000)
                return UrbResult(actual_length=n)
            while True:
                with self._lock:
                    if urb.seqnum in self._cancelled:
                        return UrbResult(status=-104)
                try:
                    got = b.read(addr, urb.transfer_buffer_length, self.poll_ms)
                except self.timeout_errors:
                    continue
                return UrbResult(data=bytes(got)[: urb.transfer_buffer_length])
        except Exception:
            return UrbResult(status=-EPIPE)  # libusb errors reach the client as a stall

    def cancel(self, seqnum: int) -> None:
        with self._lock:
            self._cancelled.add(seqnum)

    def disconnect(self) -> None:
        super().disconnect()
        for w in self._workers.values():
            w.shutdown(wait=False, cancel_futures=True)
        self._workers.clear()


class VirtualBackend:
    """A pyusb-shaped backend over one of our virtual devices (hardware stand-in for tests)."""

    def __init__(self, device: VirtualDevice) -> None:
        self.device = device
        self._lock = threading.Lock()

    def ctrl_transfer(
        self, bmRequestType: int, bRequest: int, wValue: int, wIndex: int,
        data_or_wLength: Any, timeout: int | None = None,
    ) -> Any:  # fmt: skip
        is_in = bool(bmRequestType & 0x80)
        length = int(data_or_wLength) if is_in else len(data_or_wLength)
        setup = SetupPacket(bmRequestType, bRequest, wValue, wIndex, length)
        with self._lock:
            r = self.device._control(setup, b"" if is_in else bytes(data_or_wLength))
        if r.status:
            raise OSError(f"stall ({r.status})")
        return r.data if is_in else length

    def read(self, endpoint: int, size_or_buffer: int, timeout: int | None = None) -> Any:
        with self._lock:
            got = self.device.produce_in(endpoint & 0x0F, size_or_buffer)
        if got is None:
            threading.Event().wait((timeout or 100) / 1000)
            raise BackendTimeout()
        return got

    def write(self, endpoint: int, data: bytes, timeout: int | None = None) -> int:
        with self._lock:
            r = self.device.on_out(endpoint & 0x0F, bytes(data))
        if r.status:
            raise OSError(f"stall ({r.status})")
        return len(data)
