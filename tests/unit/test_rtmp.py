"""netfate.proto.rtmp: an RTMP publisher's stream name read from its bytes, as
ffmpeg sends them (the captured vector) and as built by hand (every chunk header
format, extended timestamps, chunk stream ids of 1, 2 and 3 bytes, Set Chunk Size,
AMF3 commands), whatever the reads' sizes; what is not RTMP, or is beyond the
reader's bounds, is an RtmpError."""

from __future__ import annotations

import struct

import pytest

from netfate.proto.rtmp import MAX_COMMAND, MAX_PRELUDE, Published, PublishReader, RtmpError
from rtmp_build import (
    HANDSHAKE,
    VECTOR,
    VECTOR_KEY,
    amf_number,
    amf_string,
    chunks,
    command,
    publisher,
)


def read(data: bytes, step: int) -> Published | None:
    r = PublishReader()
    got = None
    for i in range(0, len(data), step):
        got = r.feed(data[i : i + step])
        if got is not None:
            break
    return got


@pytest.mark.parametrize("step", [1, 7, 128, 1537, 4096])
def test_ffmpegs_publisher_names_its_stream_key(step: int) -> None:
    data = VECTOR.read_bytes()
    assert read(data, step) == Published(VECTOR_KEY)


def test_before_the_publish_command_nothing_is_said() -> None:
    data = VECTOR.read_bytes()
    end = data.index(b"publish") + 20
    assert read(data[:end], 64) is None


@pytest.mark.parametrize("size", [128, 60, 4096, 1])
def test_hand_built_publishers_at_any_chunk_size(size: int) -> None:
    assert read(publisher("k" * 40, size), 3) == Published("k" * 40)


@pytest.mark.parametrize("csid", [3, 64, 319, 320, 65599])
@pytest.mark.parametrize("ts", [0, 0xFFFFFF, 0x12345678])
def test_chunk_stream_ids_and_extended_timestamps(csid: int, ts: int) -> None:
    key = "the-key-" * 40  # over a chunk: continued in format-3 chunks
    body = command("publish", 5, amf_string(key), amf_string("live"))
    data = HANDSHAKE + chunks(csid, 20, body, ts=ts)
    assert read(data, 5) == Published(key)


def test_an_amf3_command_and_media_before_it_are_read() -> None:
    media = chunks(4, 9, b"\x17" * 700)  # video, not kept
    body = b"\x00" + command("publish", 5, amf_string("k3"))
    assert read(HANDSHAKE + media + chunks(5, 17, body), 11) == Published("k3")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x06" + bytes(1600), "version 6"),
        (HANDSHAKE + chunks(3, 20, command("publish", 5)), "without a stream name"),
        (HANDSHAKE + chunks(3, 20, command("publish", 5, amf_number(1))), "without a stream"),
        (HANDSHAKE + chunks(3, 20, b"\x02\x00\x09publ"), "truncated AMF string"),
        (HANDSHAKE + chunks(3, 20, b"\x02\x00\x02\xff\xfe"), "not UTF-8"),
        (HANDSHAKE + chunks(3, 20, b"\x02\x00\x07publish\x00\x01"), "truncated AMF number"),
        (HANDSHAKE + chunks(3, 20, b"x", fmt=1), "without a full header"),
        (HANDSHAKE + chunks(2, 1, b"\x00\x00"), "short Set Chunk Size"),
        (HANDSHAKE + chunks(2, 1, struct.pack(">I", 0)), "chunk size 0"),
        (HANDSHAKE + chunks(3, 20, bytes(MAX_COMMAND + 1)), "command message"),
        (HANDSHAKE + chunks(3, 17, b"\x02\x00\x01a"), "AMF3 command"),
        (HANDSHAKE + b"".join(chunks(c, 9, b"x") for c in range(3, 70)), "too many chunk"),
    ],
)
def test_what_is_not_a_publisher_is_an_rtmp_error(data: bytes, says: str) -> None:
    with pytest.raises(RtmpError, match=says):
        read(data, 9)


def test_a_new_message_header_mid_message_is_an_error() -> None:
    first = chunks(3, 20, command("connect", 1, amf_string("x" * 200)))
    cut = first[: 1 + 11 + 128]  # the first chunk only: 90-odd bytes still to come
    with pytest.raises(RtmpError, match="mid-message"):
        read(HANDSHAKE + cut + chunks(3, 9, b"v" * 10, fmt=1), 50)


def test_no_publish_within_the_prelude_bound_is_an_error() -> None:
    r = PublishReader()
    media = chunks(4, 9, b"\x17" * 60000, 60000)
    r.feed(HANDSHAKE + chunks(2, 1, struct.pack(">I", 60000)))
    with pytest.raises(RtmpError, match="no publish command"):
        for _ in range(MAX_PRELUDE // len(media) + 2):
            r.feed(media)
