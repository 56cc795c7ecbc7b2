"""Fuzz the VO host's parsers of untrusted bytes: users' requests and answers
(wire.py), sync frames and their bodies (core.py): accepted, or their one error
type; never another exception. A round that is refused changes nothing."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.vnf.vo import core, wire
from netfate.vnf.vo.core import Frames, Puller, VoError, VoStore

SEEDS = [
    wire.encode_request(wire.Request(wire.Kind.READ, 3, 7)),
    wire.encode_request(wire.Request(wire.Kind.FORWARDED, 1, 2, ("10.0.0.1", 5000))),
    core.frame(core.Frame.ROUND, 1, core.encode_pieces([core.Piece(0, "ann", "1-1", 0, b"x")])),
    core.frame(core.Frame.ACK, 1, core.encode_lengths({0: 1})),
]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.sampled_from(SEEDS), st.binary(max_size=80)), st.integers(0, 40), st.binary())
def test_requests_and_answers(seed: bytes, cut: int, noise: bytes) -> None:
    data = seed[:cut] + noise[:8] if cut < len(seed) else seed
    for decode in (wire.decode_request, wire.decode_answer):
        with contextlib.suppress(wire.WireError):
            decode(data)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.sampled_from(SEEDS), st.binary(max_size=200)), st.integers(1, 17))
def test_frames_and_rounds(data: bytes, chunk: int) -> None:
    dst = VoStore()
    dst.add(0, "ann", "1-1", b"abc")
    before = dst.mark()
    puller, frames = Puller(dst), Frames()
    try:
        for i in range(0, len(data), chunk):
            for kind, seq, body in frames.feed(data[i : i + chunk]):
                puller.on_frame(kind, seq, body, 0.0)
                before = dst.mark()
    except VoError:
        assert dst.mark() == before
    for decode in (core.decode_pieces, core.decode_lengths):
        with contextlib.suppress(VoError):
            decode(data)
