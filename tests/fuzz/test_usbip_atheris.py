"""Coverage-guided fuzzing of the USB/IP cores with atheris (libFuzzer), bounded.

Run as a script it is an ordinary atheris harness (``python tests/fuzz/test_usbip_atheris.py
-runs=1000000``); the pytest test runs it in a subprocess for a fixed number of
inputs, because ``atheris.Fuzz()`` ends its process.  The first input byte picks
the core and phase; the rest is split into chunks by the next bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _harness() -> None:
    import atheris

    with atheris.instrument_imports():
        from netfate.proto.usbip import (
            ClientConnection,
            Endpoint,
            Interface,
            IsoPacket,
            OpRepImport,
            OpReqImport,
            ServerConnection,
            Speed,
            Status,
            TransferType,
            UrbSubmitted,
            UsbDevice,
            UsbipProtocolError,
        )

    dev = UsbDevice(
        "/sys/devices/fuzz/1-1", "1-1", 1, 2, Speed.HIGH, 1, 2, 3, 0, 0, 0, 1, 1, 1,
        (Interface(8, 6, 0x50),),
    )  # fmt: skip
    endpoints = [
        Endpoint(0x81, TransferType.BULK),
        Endpoint(0x02, TransferType.BULK),
        Endpoint(0x84, TransferType.ISOCHRONOUS),
    ]

    def make(kind: int) -> ServerConnection | ClientConnection:
        if kind == 0:
            return ServerConnection()
        if kind == 1:
            s = ServerConnection()
            s.receive_data(OpReqImport("1-1").pack(), 0.0)
            s.accept_import(dev, endpoints)
            s.data_to_send()
            return s
        c = ClientConnection()
        if kind == 2:
            c.request_devlist()
        else:
            c.request_import("1-1")
            if kind == 4:
                c.receive_data(OpRepImport(Status.OK, dev).pack(), 0.0)
                c.submit(1, True, length=64)
                c.submit(2, False, data=b"abc")
                c.submit(4, True, length=64, iso_packets=(IsoPacket(0, 32), IsoPacket(32, 32)))
                c.unlink(1)
        c.data_to_send()
        return c

    def one_input(data: bytes) -> None:
        if len(data) < 2:
            return
        conn = make(data[0] % 5)
        step = 1 + data[1] % 64
        body = data[2:]
        try:
            for k in range(0, len(body), step):
                for ev in conn.receive_data(body[k : k + step], 0.0):
                    if isinstance(conn, ServerConnection) and isinstance(ev, UrbSubmitted):
                        conn.complete(ev.seqnum, data=b"\0" * min(3, ev.transfer_buffer_length))
        except UsbipProtocolError:
            pass

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def test_atheris_harness_runs_clean(tmp_path: Path) -> None:
    # Imported here: run as a script, this file has tests/fuzz, not tests/, on its path.
    from atheris_run import run_harness

    run_harness(__file__, tmp_path, runs=20000, max_len=4096)


if __name__ == "__main__":
    _harness()
