"""Coverage-guided fuzzing of the SDN controller's packet-in path with atheris (libFuzzer),
bounded.

Run as a script it is an ordinary atheris harness (``python
tests/fuzz/test_sdn_packet_in_atheris.py -runs=1000000``); the pytest test runs it
in a subprocess for a fixed number of inputs, because ``atheris.Fuzz()`` ends its
process. The first input byte picks the switch and the port; the second either
says the rest is the frame or picks one of the hypothesis test's seed frames (an
announcement, an ARP request, a datagram, ...) that the rest patches as (offset,
byte) pairs, so the deep paths are reached in a bounded run. The frame is handed to
a core that holds a view and intents (the hypothesis test's, in
test_sdn_packet_in_fuzz.py). Any frame must be handled without an exception, and
what the core does stays within its remit: a proxy ARP reply out of the port the
frame came in on, a short-lived discovery flow, nothing else sent to the switch.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _harness() -> None:
    import atheris

    with atheris.instrument_imports():
        import netfate.orchestrator.sdn.core  # noqa: F401  (the path under test, instrumented)
        from netfate.orchestrator.sdn import frames
        from netfate.orchestrator.sdn.intents import DISCOVERY_COOKIE

    # The hypothesis test's core and ports (tests/ holds the SDN fixtures).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_sdn_packet_in_fuzz import PORTS, SEEDS
    from test_sdn_packet_in_fuzz import _core as make_core

    nodes = sorted(PORTS)
    dpid = {"cpe1": 1, "cpe2": 2, "pe": 3}
    core, switches = make_core()
    calls = 0

    def one_input(data: bytes) -> None:
        nonlocal core, switches, calls
        if len(data) < 2:
            return
        calls += 1
        if calls % 1000 == 0:
            # A fresh core now and then: hosts placed by earlier inputs would
            # otherwise quiet the paths later inputs should reach.
            core, switches = make_core()
        node = nodes[data[0] % len(nodes)]
        port = PORTS[node][(data[0] // len(nodes)) % len(PORTS[node])]
        sw = switches[node]
        sw.now = float(calls)
        if data[1] % 2 == 0:
            frame = data[2:]
        else:
            patched = bytearray(SEEDS[(data[1] // 2) % len(SEEDS)])
            for i in range(2, len(data) - 1, 2):
                patched[data[i] % len(patched)] = data[i + 1]
            frame = bytes(patched)
        core.packet_in(dpid[node], sw, port, frame, float(calls))
        for out_port, frame in sw.sent:
            info = frames.parse_packet(frame)
            if out_port != port or info is None or info.arp_op != frames.ARP_REPLY:
                raise RuntimeError(f"sent {frame!r} out of port {out_port} for a frame on {port}")
        sw.sent.clear()
        if any(f.cookie != DISCOVERY_COOKIE for f in sw.table()):
            raise RuntimeError("a packet-in alone made the core send a batch")

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def test_atheris_harness_runs_clean(tmp_path: Path) -> None:
    # Imported here: run as a script, this file has tests/fuzz, not tests/, on its path.
    from atheris_run import run_harness

    run_harness(__file__, tmp_path, runs=20000, max_len=256)


if __name__ == "__main__":
    _harness()
