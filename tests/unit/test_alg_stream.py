"""HTTP/RTSP framing and rewriting of VP1's proxy, without sockets (proto.ssdp.framing,
proto.ssdp.rewriter)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from netfate.proto.ssdp import (
    AddressMap,
    AlgError,
    Body,
    End,
    Framing,
    Head,
    Interleaved,
    MessageReader,
    MessageRewriter,
    parse_head,
)

DEVICE, ALIAS = "192.168.1.2", "192.168.0.13"
CLIENT, CLIENT_ALIAS = "192.168.0.3", "192.168.1.31"
TO_CLIENT = AddressMap([(DEVICE, ALIAS), (CLIENT_ALIAS, CLIENT)])
TO_DEVICE = AddressMap([(ALIAS, DEVICE), (CLIENT, CLIENT_ALIAS)])

DESCRIPTION = (
    b'<?xml version="1.0"?>\n<root xmlns="urn:schemas-upnp-org:device-1-0"><URLBase>'
    b"http://192.168.1.2:49152/</URLBase><device><presentationURL>http://192.168.1.2:49152/"
    b"</presentationURL><manufacturerURL>http://gerbera.io/</manufacturerURL><iconList><icon>"
    b"<url>http://192.168.1.2:49153/icons/mt-icon120.png</url></icon></iconList></device></root>"
)
# A ContentDirectory Browse answer: DIDL-Lite XML escaped inside the SOAP envelope.
BROWSE = (
    b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<s:Body><u:BrowseResponse xmlns:u="urn:schemas-upnp-org:service:ContentDirectory:1">'
    b"<Result>&lt;DIDL-Lite&gt;&lt;item id=&quot;7&quot;&gt;&lt;res protocolInfo=&quot;"
    b"http-get:*:audio/mpeg:*&quot;&gt;http://192.168.1.2:49152/content/media/object_id/7/"
    b"res_id/0/ext/file.mp3&lt;/res&gt;&lt;upnp:albumArtURI&gt;http://192.168.1.2:8080/a.jpg"
    b"&lt;/upnp:albumArtURI&gt;&lt;/item&gt;&lt;/DIDL-Lite&gt;</Result><NumberReturned>1"
    b"</NumberReturned></u:BrowseResponse></s:Body></s:Envelope>"
)


def run(
    data: bytes,
    *,
    protocol: str = "http",
    to: AddressMap = TO_CLIENT,
    device: str | None = DEVICE,
    methods: tuple[str, ...] = ("GET",) * 8,
    step: int = 0,
    **kw: object,
) -> tuple[bytes, MessageRewriter]:
    """Feed `data` (in pieces of `step` bytes, or whole) and the end of the stream."""
    reader = MessageReader(protocol)
    for m in methods:
        reader.expect(m)
    rw = MessageRewriter(to, device=device, **kw)  # type: ignore[arg-type]
    out = b""
    pieces = [data[i : i + step] for i in range(0, len(data), step)] if step else [data]
    for p in pieces:
        out += rw.feed(reader.feed(p))
    out += rw.feed(reader.feed_eof())
    return out, rw


def response(body: bytes, *fields: str, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f + "\r\n" for f in fields)
    return head.encode() + b"\r\n" + body


def split(out: bytes) -> tuple[dict[str, str], bytes]:
    parsed = parse_head(out)
    assert parsed is not None
    head, used = parsed
    return {k.lower(): v for k, v in head.fields}, out[used:]


def test_description_rewritten_ports_learned() -> None:
    raw = response(DESCRIPTION, "CONTENT-TYPE: text/xml; charset=\"utf-8\"",
                   f"CONTENT-LENGTH: {len(DESCRIPTION)}")  # fmt: skip
    out, rw = run(raw)
    fields, body = split(out)
    assert body == DESCRIPTION.replace(b"192.168.1.2", b"192.168.0.13")
    assert int(fields["content-length"]) == len(body) and rw.rewritten == 1
    assert rw.learned == {49152, 49153}  # not gerbera.io's 80


@pytest.mark.parametrize("step", [0, 1, 7, 100])
def test_chunked_soap_answer_with_escaped_didl(step: int) -> None:
    chunks = [BROWSE[:50], BROWSE[50:333], BROWSE[333:]]
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\nX-T: 1\r\n\r\n"
    raw = response(body, "Content-Type: text/xml", "Transfer-Encoding: chunked")
    out, rw = run(raw + raw, step=step)  # two answers on one connection
    fields, rest = split(out)
    n = int(fields["content-length"])
    assert "transfer-encoding" not in fields
    assert rest[:n] == BROWSE.replace(b"192.168.1.2", b"192.168.0.13")
    assert split(rest[n:])[1] == rest[:n] and rw.learned == {49152, 8080}


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw"])
def test_compressed_text_is_sent_decoded(coding: str) -> None:
    if coding == "gzip":
        packed = gzip.compress(BROWSE)
    else:
        c = zlib.compressobj(wbits=15 if coding == "deflate" else -15)
        packed = c.compress(BROWSE) + c.flush()
    name = coding.split("-")[0]
    raw = response(packed, "Content-Type: text/xml", f"Content-Encoding: {name}",
                   f"Content-Length: {len(packed)}")  # fmt: skip
    fields, body = split(run(raw)[0])
    assert "content-encoding" not in fields and body.count(b"192.168.0.13") == 2
    assert b"192.168.1.2" not in body and int(fields["content-length"]) == len(body)


def test_redirect_location() -> None:
    raw = response(b"", "Location: http://192.168.1.2:49160/moved", "Content-Length: 0",
                   status="302 Found")  # fmt: skip
    out, rw = run(raw)
    assert split(out)[0]["location"] == "http://192.168.0.13:49160/moved"
    assert rw.learned == {49160}


def test_media_streams_untouched_even_chunked() -> None:
    media = bytes(range(256)) * 40 + b"192.168.1.2"  # media is never rewritten
    raw = response(media, "Content-Type: audio/mpeg", f"Content-Length: {len(media)}")
    out, rw = run(raw, step=333)
    assert out == raw and rw.streamed == 1 and rw.rewritten == 0
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(media[i : i + 1000]), media[i : i + 1000])
                       for i in range(0, len(media), 1000)) + b"0\r\n\r\n"  # fmt: skip
    raw = response(chunked, "Content-Type: video/mp4", "Transfer-Encoding: chunked",
                   "Content-Length: 5")  # fmt: skip
    out, _ = run(raw, step=777)
    fields, body = split(out)
    assert "content-length" not in fields  # Transfer-Encoding wins and stays
    events = MessageReader().feed(response(body, "Transfer-Encoding: chunked"))
    assert b"".join(e.data for e in events if isinstance(e, Body)) == media


def test_bodyless_answers_keep_the_connection_in_step() -> None:
    text = b"<a>http://192.168.1.2:1/</a>"
    raw = (
        response(b"", "Content-Length: 99", "Content-Type: text/xml")  # HEAD
        + response(b"", status="100 Continue")
        + response(b"", "Content-Length: 99", status="304 Not Modified")
        + response(text, "Content-Type: text/xml", f"Content-Length: {len(text)}")
        + response(b"x", "Content-Type: text/xml", status="204 No Content")[:-1]
        + response(b"<b>192.168.1.2</b>", "Content-Type: text/plain")  # until close
    )
    out, _ = run(raw, methods=("HEAD", "GET", "GET", "GET", "GET"), step=5)
    assert out.count(b"HTTP/1.1") == 6 and b"192.168.1.2" not in out
    assert out.endswith(b"Content-Length: 19\r\n\r\n<b>192.168.0.13</b>")


def test_requests_towards_the_device() -> None:
    soap = b"<ObjectID>0</ObjectID>"
    raw = (
        f"SUBSCRIBE /evt HTTP/1.1\r\nHOST: {ALIAS}:49152\r\nCALLBACK: <http://{CLIENT}:40000/cb>"
        f"\r\nNT: upnp:event\r\n\r\nPOST /ctl HTTP/1.1\r\nHost: {ALIAS}:49152\r\n"
        f"Accept-Encoding: br, gzip;q=0.8, zstd, *\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {len(soap)}\r\n\r\n"
    ).encode() + soap
    out, rw = run(raw, to=TO_DEVICE, device=None, limit_encodings=True)
    assert b"HOST: 192.168.1.2:49152" in out and b"Host: 192.168.1.2:49152" in out
    assert b"CALLBACK: <http://192.168.1.31:40000/cb>" in out
    assert b"Accept-Encoding: gzip;q=0.8\r\n" in out and out.endswith(soap)
    assert not rw.learned


def test_rtsp_session_both_ways() -> None:
    sdp = (b"v=0\r\no=- 1771 1 IN IP4 192.168.1.2\r\ns=Session\r\nc=IN IP4 192.168.1.2\r\n"
           b"a=control:rtsp://192.168.1.2:554/cam/\r\nm=video 0 RTP/AVP 96\r\n"
           b"a=control:rtsp://192.168.1.2:554/cam/stream=0\r\n")  # fmt: skip
    server = (
        b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Base: "
        b"rtsp://192.168.1.2:554/cam/\r\nContent-Length: %d\r\n\r\n%s"
        % (len(sdp), sdp)
        + b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;destination=192.168.1.31;"
        b"source=192.168.1.2;client_port=5000-5001;server_port=6970-6971\r\n\r\n"
        + b"$\x00\x00\x05hello$\x01\x00\x00"
        + b"GET_PARAMETER rtsp://192.168.1.2/cam RTSP/1.0\r\nCSeq: 9\r\n\r\n"
    )
    out, rw = run(server, protocol="rtsp", step=3)
    assert b"192.168.1.2" not in out and b"192.168.1.31" not in out
    assert b"o=- 1771 1 IN IP4 192.168.0.13\r\n" in out and b"c=IN IP4 192.168.0.13" in out
    assert b"a=control:rtsp://192.168.0.13:554/cam/stream=0" in out
    assert b"Content-Base: rtsp://192.168.0.13:554/cam/" in out
    assert b"destination=192.168.0.3;source=192.168.0.13;" in out
    new_sdp = sdp.replace(b"192.168.1.2", b"192.168.0.13")
    assert b"Content-Length: %d\r\n\r\n%s" % (len(new_sdp), new_sdp) in out
    assert b"$\x00\x00\x05hello$\x01\x00\x00GET_PARAMETER rtsp://192.168.0.13/cam" in out
    assert rw.learned == {554}
    events = MessageReader("rtsp").feed(out)
    assert [type(e) for e in events] == [
        Head,
        Body,
        End,
        Head,
        End,
        Interleaved,
        Interleaved,
        Head,
        End,
    ]
    first = events[0]
    assert isinstance(first, Head) and first.framing is Framing.LENGTH
    client = (b"SETUP rtsp://192.168.0.13:554/cam/stream=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: "
              b"RTP/AVP;unicast;destination=192.168.0.3;client_port=5000-5001\r\n\r\n")  # fmt: skip
    out, _ = run(client, protocol="rtsp", to=TO_DEVICE, device=None)
    assert out == client.replace(b"192.168.0.13", b"192.168.1.2").replace(
        b"192.168.0.3", b"192.168.1.31"
    )


def test_upgrade_turns_into_a_tunnel() -> None:
    raw = response(b"", "Upgrade: websocket", "Connection: Upgrade",
                   status="101 Switching Protocols") + b"\x81\x05192.168.1.2"  # fmt: skip
    out, _ = run(raw)
    assert out.endswith(b"\x81\x05192.168.1.2")  # not a message any more: untouched


def test_partial_text_streams_and_head_answer() -> None:
    raw = response(b"<a>192.168.", "Content-Type: text/xml", "Content-Range: bytes 0-10/99",
                   "Content-Length: 11", status="206 Partial Content")  # fmt: skip
    out, rw = run(raw)
    assert out == raw and rw.streamed == 1


@pytest.mark.parametrize(
    "raw",
    [
        response(b"zz\r\n", "Transfer-Encoding: chunked"),
        response(b"5\r\nhelloXX0\r\n\r\n", "Transfer-Encoding: chunked"),
        response(b"abc", "Content-Type: text/xml", "Content-Encoding: br", "Content-Length: 3"),
        response(b"abc", "Content-Type: text/xml", "Content-Encoding: gzip", "Content-Length: 3"),
        response(b"", "Content-Length: 1, 2"),
        response(b"", "Content-Length: -1"),
        response(b"ab", "Content-Length: 5"),  # cut short
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"GET /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    ],
)
def test_refusals(raw: bytes) -> None:
    with pytest.raises(AlgError):
        run(raw)


def test_text_limit() -> None:
    big = b"<x>" + b"a" * 100 + b"</x>"
    with pytest.raises(AlgError) as e:
        run(response(big, "Content-Type: text/xml", f"Content-Length: {len(big)}"), max_text=64)
    assert e.value.reason == "text_too_large"
    bomb = gzip.compress(b"a" * 10_000)
    with pytest.raises(AlgError):
        run(response(bomb, "Content-Type: text/xml", "Content-Encoding: gzip",
                     f"Content-Length: {len(bomb)}"), max_text=1000)  # fmt: skip
