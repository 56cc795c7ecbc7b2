"""bench/streamproto.py: the pure parts only (arguments, datagram cutting, the loops'
agreement, the summary arithmetic). No timed assertions."""

from __future__ import annotations

from pathlib import Path

from netfate.benchcli import load
from netfate.proto.rtp import PT_MP2T, parse_rtp
from rtp_capture import read_rtpdump

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "rtp_mpegts_h264_aac.rtpdump"


sp = load("streamproto")


def test_arguments() -> None:
    a = sp.parse_args([])
    assert (a.seconds, a.rounds, a.video_kbps) == (20.0, 5, 4000)
    assert sp.parse_args(["--rounds", "2"]).rounds == 2


def test_datagrams_of_cuts_seven_packets_with_continuous_headers() -> None:
    ts = b"".join(d.data[12:] for d in read_rtpdump(VECTOR) if not d.rtcp)
    dgrams = sp.datagrams_of(ts + b"\x47" * 100)  # a partial packet at the end is left out
    assert len(dgrams) == len(ts) // (7 * 188)
    packets = [parse_rtp(d) for d in dgrams]
    assert [p.sequence for p in packets] == list(range(len(dgrams)))
    assert all(p.payload_type == PT_MP2T and len(p.payload) == 7 * 188 for p in packets)
    assert b"".join(p.payload for p in packets) == ts


def test_the_measured_loops_do_the_work() -> None:
    ts = b"".join(d.data[12:] for d in read_rtpdump(VECTOR) if not d.rtcp)
    dgrams = sp.datagrams_of(ts)
    nows = sp.arrival_times(len(dgrams), 2.0)
    assert sp.loop_relay(dgrams, nows) == len(dgrams) - 1  # one in probation (held)
    # The analyzer and the acquirer path see the same programme and bitrates.
    assert sp.loop_analyzer(dgrams, nows) == sp.loop_acquirer(dgrams, nows) > 0
    assert sp.loop_unpack(dgrams, nows) == sum(range(len(dgrams)))
    assert sp.loop_copy(dgrams, nows) == sum(len(d) for d in dgrams)


def test_summary_arithmetic() -> None:
    rates = {name: [100.0, 200.0, 300.0] for name in sp.LOOPS}
    rates["unpack"] = [1000.0, 1000.0, 1000.0]
    out = sp.summarise(rates, stream_bps=1_000_000, payload_bytes=1316)
    assert out["datagrams_per_s"]["relay"] == 200
    assert out["ratio_to_unpack"]["relay"] == 0.2
    assert out["stream_mbit_per_s_per_core"]["relay"] == round(200 * 1316 * 8 / 1e6, 1)
    assert out["streams_per_core_at_encoded_rate"]["acquirer"] == round(200 * 1316 * 8 / 1e6, 1)
    assert out["spread_max_over_min"]["relay"] == 3.0
