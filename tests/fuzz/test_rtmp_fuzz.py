"""Fuzz the RTMP publish reader (netfate.proto.rtmp) with hypothesis: an RTMP
publisher's bytes come from anyone who connects to an acquirer's RTMP port. Any
bytes, in any reads, and mutations of what ffmpeg sent (the captured vector) and of
hand-built publishers: the reader says nothing yet, names a stream, or raises
RtmpError; never another exception, and never more than its bounds buffered."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfate.proto.rtmp import MAX_PRELUDE, PublishReader, RtmpError
from rtmp_build import HANDSHAKE, VECTOR, publisher

SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
SEEDS = [VECTOR.read_bytes(), publisher("k" * 40), publisher("key", 60), publisher("k", 4096)]


def feed_all(data: bytes, steps: list[int]) -> None:
    r = PublishReader()
    i = 0
    try:
        for step in steps or [len(data) or 1]:
            r.feed(data[i : i + step])
            i += step
        r.feed(data[i:])
    except RtmpError:
        return
    assert len(r._buf) <= MAX_PRELUDE  # bounded whatever arrived


@SETTINGS
@given(st.binary(max_size=5000), st.lists(st.integers(1, 2000), max_size=8))
def test_any_bytes(data: bytes, steps: list[int]) -> None:
    feed_all(data, steps)
    feed_all(HANDSHAKE + data, steps)


@SETTINGS
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 8000), st.integers(0, 255)), min_size=1, max_size=12),
    st.lists(st.integers(1, 1600), max_size=8),
)
def test_mutated_publishers(seed: bytes, flips: list[tuple[int, int]], steps: list[int]) -> None:
    data = bytearray(seed)
    for at, value in flips:
        data[at % len(data)] = value
    feed_all(bytes(data), steps)


@SETTINGS
@given(st.sampled_from(SEEDS), st.integers(0, 5000))
def test_truncated_publishers(seed: bytes, cut: int) -> None:
    feed_all(seed[:cut], [7])
