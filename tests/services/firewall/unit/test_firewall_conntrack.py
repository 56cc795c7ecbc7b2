"""conntrack XML (captured from conntrack-tools 1.4.7) to entries and back to
`conntrack -I` arguments; entries from a peer are checked before use."""

from __future__ import annotations

import pytest

from netfate.vnf.firewall.conntrack import ConntrackError, Entry, parse_xml

CAPTURED = """<?xml version="1.0" encoding="utf-8"?>
<conntrack>
<flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>127.0.0.1</src><dst>127.0.0.1</dst></layer3><layer4 protonum="17" protoname="udp"><sport>54791</sport><dport>5353</dport></layer4></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>127.0.0.1</src><dst>127.0.0.1</dst></layer3><layer4 protonum="17" protoname="udp"><sport>5353</sport><dport>54791</dport></layer4></meta><meta direction="independent"><timeout>29</timeout><mark>0</mark><use>1</use><id>2946070482</id><unreplied/></meta></flow>
<flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>192.168.1.2</src><dst>10.10.0.2</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>48662</sport><dport>8080</dport></layer4></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.10.0.2</src><dst>192.168.1.2</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>8080</sport><dport>48662</dport></layer4></meta><meta direction="independent"><state>ESTABLISHED</state><timeout>431999</timeout><mark>0</mark><use>1</use><id>1156992345</id><assured/></meta></flow>
</conntrack>
"""  # noqa: E501


def test_parse_captured_and_build_insert_arguments() -> None:
    udp, tcp = parse_xml(CAPTURED)
    assert (udp.proto, udp.sport, udp.dport, udp.state) == ("udp", 54791, 5353, None)
    assert not udp.seen_reply and not udp.assured
    assert (tcp.src, tcp.dst, tcp.state, tcp.assured) == (
        "192.168.1.2",
        "10.10.0.2",
        "ESTABLISHED",
        True,
    )
    argv = tcp.argv()
    assert argv[:4] == ["conntrack", "-I", "-p", "tcp"]
    assert argv[argv.index("--state") + 1] == "ESTABLISHED"
    assert argv[argv.index("-u") + 1] == "SEEN_REPLY,ASSURED"
    assert argv[argv.index("-r") + 1] == "10.10.0.2"
    assert "-u" not in udp.argv()  # unreplied: no status flags claimed
    # JSON round trip (the migration state) keeps everything.
    assert Entry.from_json(tcp.to_json()) == tcp
    assert tcp.key() == ("tcp", "192.168.1.2", "10.10.0.2", 48662, 8080)


def test_empty_and_malformed() -> None:
    assert parse_xml("") == []
    with pytest.raises(ConntrackError):
        parse_xml("<conntrack><flow>")


@pytest.mark.parametrize(
    "change",
    [{"proto": "sctp"}, {"state": "EVIL; rm"}, {"src": "not-an-ip"}, {"sport": 70000}],
)
def test_peer_entries_checked(change: dict[str, object]) -> None:
    (_, tcp) = parse_xml(CAPTURED)
    doc = {**tcp.to_json(), **change}
    with pytest.raises((ConntrackError, ValueError)):
        Entry.from_json(doc)


def test_timeout_clamped() -> None:
    (_, tcp) = parse_xml(CAPTURED)
    assert Entry.from_json({**tcp.to_json(), "timeout": 10**9}).timeout == 5 * 86400
    assert Entry.from_json({**tcp.to_json(), "timeout": -5}).timeout == 1


def test_ctnetlink_message_round_trip() -> None:
    """What `insert` sends (IPCTNL_MSG_CT_NEW) has the attributes of what a dump
    answers: parsed back, it is the same entry, for each protocol."""
    from netfate.vnf.firewall.conntrack import ct_new_body, parse_ct_message

    udp, tcp = parse_xml(CAPTURED)
    icmp = Entry("icmp", "10.0.0.1", "10.0.0.2", 77, 77, "10.0.0.2", "10.0.0.1", 77, 77,
                 None, 30, False, 5, True)  # fmt: skip
    for e in (udp, tcp, icmp):
        assert parse_ct_message(ct_new_body(e)) == e


def test_ctnetlink_message_malformed() -> None:
    from netfate.vnf.firewall.conntrack import ct_new_body, parse_ct_message

    (_, tcp) = parse_xml(CAPTURED)
    body = ct_new_body(tcp)
    with pytest.raises(ConntrackError):
        parse_ct_message(b"\x02")
    for cut in (10, 20, 40):  # an attribute that claims more than there is
        with pytest.raises(ConntrackError):
            parse_ct_message(body[:cut])
    assert parse_ct_message(b"\x0a\x00\x00\x00") is None  # not IPv4


def test_ctnetlink_tuple_without_a_protocol_number() -> None:
    from netfate.host import netlink as nl
    from netfate.vnf.firewall import conntrack as ct

    ip = nl.nested(
        ct.CTA_TUPLE_IP, nl.attr(1, b"\x0a\x00\x00\x01"), nl.attr(2, b"\x0a\x00\x00\x02")
    )
    tup = ip + nl.nested(ct.CTA_TUPLE_PROTO, nl.attr(ct.CTA_PROTO_NUM, b""))
    body = ct.NFGEN.pack(2, 0, 0) + nl.nested(ct.CTA_TUPLE_ORIG, tup)
    body += nl.nested(ct.CTA_TUPLE_REPLY, tup)
    with pytest.raises(ConntrackError):
        ct.parse_ct_message(body)
