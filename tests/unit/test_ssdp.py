"""SSDP, address maps and mDNS rewriting of the discovery ALG."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from alg_vectors import LIBUPNP_RESPONSE, MSEARCH, NOTIFY, RESPONSE, ZEROCONF_ANSWER
from netfate.proto import dns
from netfate.proto.ssdp import (
    AddressMap,
    AlgError,
    parse_head,
    parse_ssdp,
    rewrite_mdns,
    rewrite_ssdp,
    url_ports,
)

TO_PN2 = AddressMap([("192.168.1.2", "192.168.2.4")])


def test_parse_kinds() -> None:
    assert parse_ssdp(NOTIFY).kind == "NOTIFY"
    assert parse_ssdp(RESPONSE).kind == "RESPONSE"
    assert parse_ssdp(MSEARCH).kind == "M-SEARCH"
    assert parse_ssdp(MSEARCH).head.get("st") == "ssdp:all"


@pytest.mark.parametrize(("msg", "port"), [(NOTIFY, 8200), (RESPONSE, 8200),
                                            (LIBUPNP_RESPONSE, 49152)])  # fmt: skip
def test_location_rewritten_rest_kept_port_learned(msg: bytes, port: int) -> None:
    out, ports = rewrite_ssdp(msg, TO_PN2, "192.168.1.2")
    got = parse_ssdp(out)
    assert (got.head.get("LOCATION") or "").startswith(f"http://192.168.2.4:{port}/")
    assert ports == {port} and b"192.168.1.2" not in out
    before = [(k, v) for k, v in parse_ssdp(msg).head.fields if k != "LOCATION"]
    assert [(k, v) for k, v in got.head.fields if k != "LOCATION"] == before


def test_every_field_with_the_address_is_rewritten() -> None:
    msg = (b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNTS: ssdp:alive\r\n"
           b"AL: <http://192.168.1.2:8080/a.xml><http://192.168.1.2:9090/b.xml>\r\n"
           b"SECURELOCATION.UPNP.ORG: https://192.168.1.2/d.xml\r\n\r\n")  # fmt: skip
    out, ports = rewrite_ssdp(msg, TO_PN2, "192.168.1.2")
    assert b"192.168.1.2" not in out and out.count(b"192.168.2.4") == 3
    assert ports == {8080, 9090, 443}


def test_msearch_untouched() -> None:
    assert rewrite_ssdp(MSEARCH, TO_PN2, "192.168.1.2") == (MSEARCH, set())


def test_only_whole_addresses() -> None:
    text = b"http://192.168.1.2:8200/a http://192.168.1.20/b 10.192.168.1.2 192.168.1.2."
    assert AddressMap([("192.168.1.2", "10.0.0.9")]).apply(text) == (
        b"http://10.0.0.9:8200/a http://192.168.1.20/b 10.192.168.1.2 10.0.0.9."
    )
    assert AddressMap([("192.168.1.2", "10.0.0.9")]).apply(b"192.168.1.2.5") == b"192.168.1.2.5"


def test_a_map_swaps_in_one_pass() -> None:
    # Overlapping PNs: the device's alias in PN2 may be another host's address in PN1.
    m = AddressMap([("192.168.0.2", "192.168.0.13"), ("192.168.0.13", "192.168.0.2")])
    assert m.apply(b"a=192.168.0.2 b=192.168.0.13") == b"a=192.168.0.13 b=192.168.0.2"
    assert not AddressMap([("1.2.3.4", "1.2.3.4")]) and AddressMap([]).apply(b"x") == b"x"


def test_url_ports() -> None:
    text = (b"<URLBase>http://192.168.1.2:49152/</URLBase> rtsp://192.168.1.2/cam "
            b"HTTPS://192.168.1.2/x http://192.168.1.20:81/ http://gerbera.io/ "
            b"xhttp://192.168.1.2:82/ http://192.168.1.2:99999/")  # fmt: skip
    assert url_ports(text, "192.168.1.2") == {49152, 554, 443}


def test_parse_head_incomplete() -> None:
    assert parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n") is None


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


DEVICE_MAP = AddressMap([("192.168.1.2", "192.168.0.13"), ("192.168.1.31", "192.168.0.3")])


def test_mdns_answer_made_true_in_pn2() -> None:
    res = rewrite_mdns(ZEROCONF_ANSWER, DEVICE_MAP, "192.168.1.2")
    assert res.data is not None
    m = dns.parse(res.data)
    assert [r.data for r in m.answers[1:]] == [
        dns.Srv(0, 0, 554, (b"cam", b"local")),
        dns.Txt((b"path=/cam/main", b"url=rtsp://192.168.0.13/cam/x")),
    ]
    a, rev, nsec = m.additionals
    assert a.data == dns.Address(bytes([192, 168, 0, 13])) and a.rclass == 0x8001
    assert str(dns.reverse_address(rev.name)) == "192.168.0.13"
    assert isinstance(nsec.data, dns.Nsec)
    # The AAAA and the other address's A are gone; the reverse name and the TXT changed.
    assert (res.removed, res.rewritten, res.ports) == (2, 3, {554})
    assert b"\xc0\xa8\x01" not in res.data and b"192.168.1." not in res.data


def test_mdns_question_for_another_reverse_name_removed() -> None:
    other = dns.reverse_name(ipaddress.IPv4Address("192.168.1.9"))
    q = dns.Message(0, 0, [dns.Question(other, dns.TYPE_PTR, 1)])
    assert rewrite_mdns(dns.build(q), DEVICE_MAP, "192.168.1.2").data is None
    untouched = dns.build(dns.Message(0, 0, [dns.Question((b"_http", b"_tcp", b"local"), 12,
                                                          0x8001)]))  # fmt: skip
    assert rewrite_mdns(untouched, DEVICE_MAP, "192.168.1.2").data == untouched


def test_mdns_refuses_what_it_cannot_parse() -> None:
    with pytest.raises(AlgError):
        rewrite_mdns(ZEROCONF_ANSWER[:-5], DEVICE_MAP, "192.168.1.2")
    with pytest.raises(AlgError):
        rewrite_mdns(struct.pack("!HHHHHH", 0, 0, 0, 9, 0, 0), DEVICE_MAP, "192.168.1.2")
