"""The RTP relay core and the MPEG-TS analyzer against a live reference peer: ffmpeg
sending RTP/MPEG-TS to a UDP socket on 127.0.0.1, and ffprobe reading the same bytes.

This is the acquirer's path in the streaming tree: datagrams through the relay
core, forwarded payloads into the analyzer, which must say what ffprobe says.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

import pytest

from netfate.proto.mpegts import BitrateMeasured, ProgramRecognised, StreamAnalyzer
from netfate.proto.mpegts.events import Event
from netfate.proto.rtp import (
    PT_MP2T,
    RelayCore,
    SenderReport,
    SenderReported,
    SourceValidated,
    Verdict,
    parse_rtcp,
    payload_bounds,
)
from rtp_capture import capture

SECONDS = 4


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("pix_fmt", [None, "yuv420p"])
def test_acquirer_path_agrees_with_ffprobe(tmp_path: Path, pix_fmt: str | None) -> None:
    datagrams = capture(SECONDS, pix_fmt)
    relay = RelayCore(payload_types={PT_MP2T}, rtcp_mux=False)
    analyzer = StreamAnalyzer()
    events: list[Event] = []
    ts = bytearray()
    rtcp_verdicts = []
    relay_events: list[object] = []
    for d in datagrams:
        if d.rtcp:
            rtcp_verdicts.append(relay.receive_rtcp(d.data, d.at))
            continue
        verdict = relay.receive(d.data, d.at)
        out = []
        for ev in relay.events():
            relay_events.append(ev)
            if isinstance(ev, SourceValidated):
                out += ev.held  # the stream's first datagram: PAT, PMT, key frame
        if verdict is Verdict.FORWARD:
            out.append(d.data)
        for datagram in out:
            start, end = payload_bounds(datagram)
            ts += datagram[start:end]
            events += analyzer.receive_datagram(datagram[start:end], d.at)

    # The relay: one packet of probation, then everything forwarded, nothing lost.
    (fig,) = relay.figures(datagrams[-1].at)
    n_rtp = sum(not d.rtcp for d in datagrams)
    assert fig.packets == n_rtp - 1 and fig.lost == 0 and fig.duplicates == 0
    assert relay.counters()["dropped_garbage"] == 0
    assert rtcp_verdicts and set(rtcp_verdicts) == {Verdict.FORWARD}
    # ffmpeg's RTCP: sender reports of the same SSRC. The first one comes before any
    # RTP, so the relay forwards it without a SenderReported (no such source yet).
    reports = [parse_rtcp(d.data) for d in datagrams if d.rtcp]
    assert all(isinstance(r[0], SenderReport) and r[0].ssrc == fig.ssrc for r in reports)
    relay_events += relay.events()
    late = [d for d in datagrams if d.rtcp and d.at > fig.first_seen]
    assert len([e for e in relay_events if isinstance(e, SenderReported)]) == len(late)

    # The analyzer against ffprobe on the very bytes it saw.
    path = tmp_path / "forwarded.ts"
    path.write_bytes(bytes(ts))
    probe = ffprobe(path)
    (prog,) = [e for e in events if isinstance(e, ProgramRecognised)]
    assert prog.complete and prog.container == "mpegts"
    assert probe["format"]["format_name"] == "mpegts"
    theirs = {s["codec_type"]: s for s in probe["streams"]}
    ours = {s.kind: s for s in prog.streams}
    assert set(ours) == set(theirs) == {"video", "audio"}

    v, tv = ours["video"], theirs["video"]
    assert v.video is not None
    assert (v.codec, v.video.width, v.video.height) == (tv["codec_name"], tv["width"], tv["height"])
    assert (v.codec, v.video.width, v.video.height) == ("h264", 320, 240)
    assert (v.video.profile, v.video.level) == (tv["profile"], tv["level"])
    num, den = (int(x) for x in tv["r_frame_rate"].split("/"))
    assert v.video.frame_rate == pytest.approx(num / den)
    assert v.pid == int(tv["id"], 16)

    a, ta = ours["audio"], theirs["audio"]
    assert a.audio is not None
    assert (a.codec, a.audio.sample_rate, a.audio.channels, a.audio.profile) == (
        ta["codec_name"], int(ta["sample_rate"]), ta["channels"], ta["profile"],
    )  # fmt: skip
    assert a.codec == "aac"

    # Bitrate: ffprobe's is the file's size over its duration; ours are per-second
    # windows, by the programme clock and by arrival. Their medians must be close.
    reference = int(probe["format"]["bit_rate"])
    for basis in ("pcr", "arrival"):
        rates = [e.bits_per_second for e in events if isinstance(e, BitrateMeasured)
                 and e.basis == basis]  # fmt: skip
        assert len(rates) >= SECONDS - 2, basis
        assert 0.75 < statistics.median(rates) / reference < 1.33, (basis, rates, reference)
    assert analyzer.counters().get("continuity_errors", 0) == 0
