"""SSDP, HTTP and mDNS rewriting of the discovery ALG."""

from __future__ import annotations

import struct

import pytest

from netfate.proto.ssdp import (
    AlgError,
    parse_head,
    parse_ssdp,
    rewrite_a_records,
    rewrite_body,
    rewrite_ssdp,
    rewrite_urls,
)

# As minidlna sends them (captured from minidlnad 1.3.x; addresses changed).
NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1810\r\n"
    b"LOCATION: http://192.168.1.2:8200/rootDesc.xml\r\nSERVER: Debian DLNADOC/1.50 UPnP/1.0 "
    b"MiniDLNA/1.3.0\r\nNT: upnp:rootdevice\r\nUSN: uuid:4d696e69-444c-164e-9d41-b827eb1d2b1f::"
    b"upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1810\r\nDATE: Sat, 21 Nov 2026 06:00:00 GMT\r\n"
    b"ST: urn:schemas-upnp-org:device:MediaServer:1\r\nUSN: uuid:x::urn:schemas-upnp-org:device:"
    b"MediaServer:1\r\nEXT:\r\nSERVER: Debian DLNADOC/1.50 UPnP/1.0 MiniDLNA/1.3.0\r\n"
    b"LOCATION: http://192.168.1.2:8200/rootDesc.xml\r\nContent-Length: 0\r\n\r\n"
)
MSEARCH = (
    b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n'
    b"ST: ssdp:all\r\n\r\n"
)


def test_parse_kinds() -> None:
    assert parse_ssdp(NOTIFY).kind == "NOTIFY"
    assert parse_ssdp(RESPONSE).kind == "RESPONSE"
    assert parse_ssdp(MSEARCH).kind == "M-SEARCH"
    assert parse_ssdp(MSEARCH).head.get("st") == "ssdp:all"


@pytest.mark.parametrize("msg", [NOTIFY, RESPONSE])
def test_location_rewritten_rest_kept(msg: bytes) -> None:
    out = rewrite_ssdp(msg, "192.168.1.2", "192.168.2.4")
    got = parse_ssdp(out)
    assert got.head.get("LOCATION") == "http://192.168.2.4:8200/rootDesc.xml"
    before = [(k, v) for k, v in parse_ssdp(msg).head.fields if k != "LOCATION"]
    assert [(k, v) for k, v in got.head.fields if k != "LOCATION"] == before


def test_msearch_untouched() -> None:
    assert rewrite_ssdp(MSEARCH, "192.168.1.2", "192.168.2.4") == MSEARCH


def test_only_whole_addresses() -> None:
    text = b"http://192.168.1.2:8200/a http://192.168.1.20/b 10.192.168.1.2 192.168.1.2"
    assert rewrite_urls(text, "192.168.1.2", "10.0.0.9") == (
        b"http://10.0.0.9:8200/a http://192.168.1.20/b 10.192.168.1.2 10.0.0.9"
    )


def test_http_body_rewrite_fixes_content_length() -> None:
    body = b"<URLBase>http://192.168.1.2:8200/</URLBase><res>http://192.168.1.2:8200/M/1.mp4</res>"
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(body)
    parsed = parse_head(raw + body)
    assert parsed is not None
    head, used = parsed
    new = rewrite_body(head, raw[used:] + body, "192.168.1.2", "10.20.30.40")
    assert head.content_length() == len(new) and b"10.20.30.40:8200/M/1.mp4" in new
    assert parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n") is None  # incomplete


@pytest.mark.parametrize(
    "bad",
    [
        b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\n\r\n",  # not an SSDP response
        b"NOTIFY * HTTP/1.1\r\nHOST: x\r\n",  # incomplete
    ],
)
def test_ssdp_refuses(bad: bytes) -> None:
    with pytest.raises(AlgError):
        parse_ssdp(bad)


def _mdns_response(ip: bytes) -> bytes:
    hdr = struct.pack("!HHHHHH", 0, 0x8400, 0, 2, 0, 0)
    name = b"\x09mediabox1\x05local\x00"
    a = name + struct.pack("!HHIH", 1, 0x8001, 120, 4) + ip
    # A second record pointing back at the first name (compression pointer to offset 12).
    ptr = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 120, 3) + b"\x02hi"
    return hdr + a + ptr


def test_mdns_a_record_rewritten() -> None:
    msg = _mdns_response(bytes([192, 168, 1, 2]))
    out, n = rewrite_a_records(msg, "192.168.1.2", "192.168.2.4")
    assert n == 1 and bytes([192, 168, 2, 4]) in out and len(out) == len(msg)
    _, n = rewrite_a_records(_mdns_response(bytes([192, 168, 1, 9])), "192.168.1.2", "1.1.1.1")
    assert n == 0
    with pytest.raises(AlgError):
        rewrite_a_records(msg[:-5], "192.168.1.2", "192.168.2.4")
