"""Coverage-guided fuzzing of the discovery ALG's parsers with atheris (libFuzzer), bounded.

Run as a script it is an ordinary atheris harness (``python
tests/fuzz/test_alg_atheris.py -runs=1000000``); the pytest test runs it in a
subprocess for a fixed number of inputs, because ``atheris.Fuzz()`` ends its
process. The first input byte picks the target; the rest is its input (for the
stream targets, cut into pieces by the second byte). Parsers may raise only their
protocol's exception type (AlgError, DnsError); a DNS message that parses must build
and parse back the same; a stream must frame the same whole and cut.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path


def _harness() -> None:
    import atheris

    with atheris.instrument_imports():
        from netfate.proto import dns
        from netfate.proto.ssdp import AlgError, decode, parse_head, rewrite_mdns, rewrite_ssdp

    # The hypothesis tests' stream runner and map (tests/ holds their vectors).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_ssdp_fuzz import AMAP as amap
    from test_ssdp_fuzz import run_stream as stream

    def one_input(data: bytes) -> None:
        if len(data) < 2:
            return
        target, step, body = data[0] % 6, 1 + data[1] % 32, data[2:]
        if target == 0:
            try:
                msg = dns.parse(body)
            except dns.DnsError:
                return
            if dns.parse(dns.build(msg)) != msg:
                raise RuntimeError("a parsed DNS message did not read back the same")
        elif target == 1:
            with contextlib.suppress(AlgError):
                rewrite_mdns(body, amap, "192.168.1.2")
        elif target == 2:
            with contextlib.suppress(AlgError):
                rewrite_ssdp(body, amap, "192.168.1.2")
            with contextlib.suppress(AlgError):
                parse_head(body)
        elif target in (3, 4):
            protocol = "http" if target == 3 else "rtsp"
            pieces = [body[i : i + step] for i in range(0, len(body), step)]
            if stream(protocol, [body]) != stream(protocol, pieces):
                raise RuntimeError("framing depends on how the bytes were cut")
        else:
            with contextlib.suppress(AlgError):
                decode(body, ("gzip", "deflate", "identity")[step % 3], 4096)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def test_atheris_harness_runs_clean(tmp_path: Path) -> None:
    # Imported here: run as a script, this file has tests/fuzz, not tests/, on its path.
    from atheris_run import run_harness

    run_harness(__file__, tmp_path, runs=20000, max_len=2048)


if __name__ == "__main__":
    _harness()
