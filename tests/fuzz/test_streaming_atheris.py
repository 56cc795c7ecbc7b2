"""Coverage-guided fuzzing of the RTP and MPEG-TS cores and the RTMP publish reader with
atheris (libFuzzer), bounded.

Run as a script it is an ordinary atheris harness (``python
tests/fuzz/test_streaming_atheris.py -runs=1000000``); the pytest test runs it in a
subprocess for a fixed number of inputs, because ``atheris.Fuzz()`` ends its
process. The first input byte picks the target; the rest is its input, split into
datagrams by the second byte for the cores (reads, for the RTMP reader, after a valid
handshake). Parsers may raise only their
protocol's exception type; the cores may raise nothing.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path


def _harness() -> None:
    import atheris

    with atheris.instrument_imports():
        from netfate.proto import mpegts, rtmp, rtp

    handshake = b"\x03" + bytes(2 * 1536)

    def publish(body: bytes, step: int) -> None:
        reader = rtmp.PublishReader()
        with contextlib.suppress(rtmp.RtmpError):
            reader.feed(handshake)
            for i in range(0, len(body), step):
                reader.feed(body[i : i + step])

    def cores(body: bytes, step: int) -> None:
        relay = rtp.RelayCore(min_sequential=1, max_sources=4)
        analyzer = mpegts.StreamAnalyzer(probe_limit=4096)
        for k, i in enumerate(range(0, len(body), step)):
            chunk = body[i : i + step]
            relay.receive(chunk, k * 0.01)
            relay.receive_rtcp(chunk, k * 0.01)
            relay.events()
            analyzer.receive_datagram(chunk, k * 0.01)
            analyzer.receive_bytes(chunk, k * 0.01)
        relay.poll(60.0)
        relay.figures(60.0)
        analyzer.receive_datagram(b"", 60.0)

    rtp_parsers = (
        rtp.parse_rtp,
        rtp.parse_rtcp,
        lambda b: rtp.parse_rtcp(b, reduced_size=True),
        lambda b: rtp.HeaderExtension(0xBEDE, b).elements(),
        lambda b: rtp.HeaderExtension(0x1000, b).elements(),
    )
    ts_parsers = (
        mpegts.parse_packet,
        mpegts.parse_section,
        mpegts.parse_pat,
        mpegts.parse_pmt,
        mpegts.parse_pes_header,
        lambda b: mpegts.parse_sps(b"\x67" + b),
        mpegts.parse_adts,
        mpegts.parse_mpeg_audio,
        mpegts.parse_ac3,
        mpegts.AdaptationField.parse,
        lambda b: mpegts.SectionAssembler().push(b[1:], bool(b[:1]) and b[0] & 1 == 1),
    )

    def one_input(data: bytes) -> None:
        if len(data) < 2:
            return
        target, body = data[0], data[2:]
        n = len(rtp_parsers) + len(ts_parsers) + 2
        pick = target % n
        if pick < len(rtp_parsers):
            with contextlib.suppress(rtp.RtpError):
                rtp_parsers[pick](body)
        elif pick < n - 2:
            with contextlib.suppress(mpegts.MpegTsError):
                ts_parsers[pick - len(rtp_parsers)](body)
        elif pick == n - 2:
            publish(body, 1 + data[1])
        else:
            cores(body, 1 + data[1] * 8)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def test_atheris_harness_runs_clean(tmp_path: Path) -> None:
    # Imported here: run as a script, this file has tests/fuzz, not tests/, on its path.
    from atheris_run import run_harness

    run_harness(__file__, tmp_path, runs=20000, max_len=4096)


if __name__ == "__main__":
    _harness()
