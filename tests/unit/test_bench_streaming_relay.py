"""bench/streaming_relay.py: the pure parts only (arguments, the frame code and its
reading back, the measurement datagram). No timed assertions."""

from __future__ import annotations

import struct

import pytest

from netfate.benchcli import load

sr = load("streaming_relay")


def test_arguments() -> None:
    a = sr.parse_args([])
    assert (a.seconds, a.rounds, a.fps, a.burst, a.levels) == (10.0, 2, 25, 16, 3)
    with pytest.raises(SystemExit):
        sr.parse_args(["--levels", "4"])


def test_frame_codes_read_back_and_misreads_are_rejected() -> None:
    for n in (0, 1, 255, 4096, 65535, 65536 + 7):
        assert sr.decode_frame(sr.draw_frame(n)) == n & 0xFFFF
    assert sr.read_code(sr.frame_code(9) ^ 1) is None  # one bit wrong
    blank = bytes(sr.WIDTH * sr.HEIGHT)
    assert sr.decode_frame(blank) is None


def test_frame_code_survives_mild_noise() -> None:
    frame = bytearray(sr.draw_frame(1234))
    for i in range(0, len(frame), 7):  # +-40 on every seventh pixel
        frame[i] = max(0, min(255, frame[i] + (40 if i % 2 else -40)))
    assert sr.decode_frame(bytes(frame)) == 1234


def test_measurement_datagram() -> None:
    d = sr.datagram(70000, 123456789)
    assert len(d) == 12 + 7 * 188 and d[1] == 33
    assert struct.unpack_from("!H", d, 2)[0] == 70000 & 0xFFFF
    assert struct.unpack_from("!QQ", d, 16) == (70000, 123456789)
    assert all(d[12 + i * 188] == 0x47 for i in range(7))
