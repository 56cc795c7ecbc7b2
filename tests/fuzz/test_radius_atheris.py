"""Coverage-guided fuzzing of the RADIUS cores with atheris (libFuzzer), bounded.

Run as a script it is an ordinary atheris harness (``python tests/fuzz/test_radius_atheris.py
-runs=1000000``); the pytest test runs it in a subprocess for a fixed number of inputs,
because ``atheris.Fuzz()`` ends its process. The first input byte picks the target:

    0  decode() and every attribute's typed value
    1  the server core (Access/Accounting-Request parsing and verification)
    2  the NAS's Disconnect core (RFC 5176) with raw bytes
    3  the NAS's Disconnect core with the input's attributes in a correctly signed
       Disconnect-Request, so the paths after verification are fuzzed too
    4  the client core waiting for a Disconnect-ACK/NAK
    5  vendor-specific sub-attributes
    6  the embedded server's core (services/firewall/core.py) with a Disconnect-Request
       in flight, the input as a datagram from that NAS's Disconnect port

Beyond "no uncaught exception", the harness checks its invariants: unsigned input
never yields an AccessRequested or a DisconnectRequested, never gets an answer from
the Disconnect core, and never completes a client's request (nor the server core's
Disconnect-Request).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path


def _harness() -> None:
    import atheris

    with atheris.instrument_imports():
        from netfate.proto.radius import (
            AccessRequested,
            ClientCore,
            DasCore,
            DisconnectRequested,
            RadiusError,
            ServerCore,
            decode,
        )
        from netfate.proto.radius import packet as rp
    # Imported after the instrumented cores (it imports them): the service's own code
    # (dispatch over those cores) is not instrumented, only checked.
    from netfate.services.firewall.core import Clients, RadiusCore
    from netfate.services.firewall.disconnect import DisconnectAcked, DisconnectNaked, DmJob
    from netfate.services.firewall.nas_sessions import NasSession

    secret = b"fuzz-secret"
    peer = ("10.10.0.1", 1813)
    listener = ("10.10.0.254", 1812, "ns")
    nas = ("10.10.0.2", 3799)

    def one_input(data: bytes) -> None:
        if not data:
            return
        target, body = data[0] % 7, data[1:]
        if target == 0:
            try:
                pkt = decode(body)
            except RadiusError:
                return
            for t, _ in pkt.attributes:
                with contextlib.suppress(RadiusError):
                    pkt.get(t)
        elif target == 1:
            server = ServerCore({peer[0]: secret})
            for ev in server.receive(body, peer, 0.0):
                if isinstance(ev, AccessRequested):
                    raise AssertionError("unsigned bytes passed as an Access-Request")
        elif target == 2:
            das = DasCore({peer[0]: secret})
            evs = das.receive(body, peer, 0.0, wall=0.0)
            if any(isinstance(e, DisconnectRequested) for e in evs) or das.pending():
                raise AssertionError("unsigned bytes passed as a Disconnect-Request")
        elif target == 3:
            pkt = rp.Packet(rp.Code.DISCONNECT_REQUEST, 1)
            pos = 0
            while pos + 2 <= len(body) and len(pkt.attributes) < 40:
                t, n = body[pos], 1 + body[pos + 1] % 60
                value = body[pos + 2 : pos + 2 + n]
                pos += 2 + n
                if value and t != rp.Attr.MESSAGE_AUTHENTICATOR:
                    pkt.attributes.append((t, value))
            try:
                wire = rp.encode_disconnect_request(pkt, secret)
            except RadiusError:
                return  # too long for one packet
            das = DasCore({peer[0]: secret})
            for dev in das.receive(wire, peer, 0.0, wall=0.0):
                if isinstance(dev, DisconnectRequested):
                    das.ack(dev)
            das.pending()
        elif target == 4:
            client = ClientCore(secret)
            _, wire = client.disconnect_request([(rp.Attr.USER_NAME, "alice")], 0.0)
            forged = bytearray(body.ljust(20, b"\0"))
            forged[1] = wire[1]
            if client.receive(bytes(forged), 0.0):
                raise AssertionError("a forged Disconnect answer was accepted")
        elif target == 5:
            with contextlib.suppress(RadiusError):
                rp.vsas(decode(body))
        else:
            clients = Clients()
            clients.load([("10.10.0.0/24", secret.decode())])
            core = RadiusCore(clients)
            n = NasSession((nas[0], "s1"), "alice", None, (nas[0], 1), listener, None, 0.0, 0.0)
            core.dm.send([DmJob(n, nas, secret, "fuzz")], {listener}, 0.0, 0.0)
            core.datagrams_to_send()
            for ev in core.receive(body, nas, listener, 0.5):
                if isinstance(ev, AccessRequested | DisconnectAcked | DisconnectNaked):
                    raise AssertionError(f"unsigned bytes passed as {type(ev).__name__}")

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def test_atheris_harness_runs_clean(tmp_path: Path) -> None:
    # Imported here: run as a script, this file has tests/fuzz, not tests/, on its path.
    from atheris_run import run_harness

    run_harness(__file__, tmp_path, runs=30000, max_len=2048)


if __name__ == "__main__":
    _harness()
