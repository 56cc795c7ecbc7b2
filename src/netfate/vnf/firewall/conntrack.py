"""Connection-tracking entries out of one namespace and into another.

Export parses `conntrack -L -o xml` (conntrack-tools 1.4): one <flow> per entry,

    <flow>
      <meta direction="original">
        <layer3 protoname="ipv4"><src>A</src><dst>B</dst></layer3>
        <layer4 protoname="tcp"><sport>p</sport><dport>q</dport></layer4></meta>
      <meta direction="reply"> ... same shape ... </meta>
      <meta direction="independent"><state>ESTABLISHED</state><timeout>431999</timeout>
                                    <mark>0</mark><assured/> ...</meta>
    </flow>

Import re-creates each entry with `conntrack -I` (original and reply tuples, TCP
state, timeout, ASSURED), so packets of a connection that began at the old place
are `established` at the new one. The tools are the kernel's own (ctnetlink); the
XML is parsed with the standard library, and each field is checked before it
becomes an argument.

`dump` and `insert` speak ctnetlink themselves, in the calling process (the
firewall's, in its namespace): a migration's snapshot and final state then spawn
no `conntrack` process (each spawn cost 10-60 ms on the loaded test machine, and a
move ran two dumps and one insert per new connection). The messages
(linux/netfilter/nfnetlink_conntrack.h; host/netlink.py has the framing):

    nlmsghdr type = NFNL_SUBSYS_CTNETLINK (1) << 8 | IPCTNL_MSG_CT_NEW (0) / _GET (1)
    nfgenmsg  u8 family (AF_INET), u8 version (0), be16 res_id (0)
    CTA_TUPLE_ORIG (1), CTA_TUPLE_REPLY (2), nested:
        CTA_TUPLE_IP (1)    { CTA_IP_V4_SRC (1), CTA_IP_V4_DST (2): 4 bytes }
        CTA_TUPLE_PROTO (2) { CTA_PROTO_NUM (1): u8, CTA_PROTO_SRC_PORT (2),
                              CTA_PROTO_DST_PORT (3): be16; ICMP: _ICMP_ID (4) be16,
                              _ICMP_TYPE (5), _ICMP_CODE (6): u8 }
    CTA_STATUS (3) be32 (IPS_SEEN_REPLY 1 << 1, IPS_ASSURED 1 << 2, IPS_CONFIRMED 1 << 3)
    CTA_PROTOINFO (4) { CTA_PROTOINFO_TCP (1) { CTA_PROTOINFO_TCP_STATE (1): u8 } }
    CTA_TIMEOUT (7) be32 seconds, CTA_MARK (8) be32

The subprocess path stays where netlink is refused (`NETFATE_CONNTRACK=tool`, or
a socket the kernel does not give).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from typing import Any

from netfate.host import netlink as nl

PROTOS = ("tcp", "udp", "icmp")
TCP_STATES = (
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
)


class ConntrackError(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    reply_src: str
    reply_dst: str
    reply_sport: int
    reply_dport: int
    state: str | None
    timeout: int
    assured: bool
    mark: int = 0
    seen_reply: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> tuple[str, str, str, int, int]:
        """The connection (original direction), whatever its state and timeout."""
        return (self.proto, self.src, self.dst, self.sport, self.dport)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Entry:
        proto = str(d["proto"])
        if proto not in PROTOS:
            raise ConntrackError(f"protocol {proto!r}")
        state = d.get("state")
        if state is not None and state not in TCP_STATES:
            raise ConntrackError(f"TCP state {state!r}")
        ips = [str(ipaddress.IPv4Address(d[k])) for k in ("src", "dst", "reply_src", "reply_dst")]
        ports = [int(d[k]) for k in ("sport", "dport", "reply_sport", "reply_dport")]
        if any(not 0 <= p <= 65535 for p in ports):
            raise ConntrackError("port out of range")
        return cls(
            proto,
            ips[0],
            ips[1],
            ports[0],
            ports[1],
            ips[2],
            ips[3],
            ports[2],
            ports[3],
            state,
            max(1, min(int(d["timeout"]), 5 * 86400)),
            bool(d.get("assured")),
            int(d.get("mark", 0)) & 0xFFFFFFFF,
            bool(d.get("seen_reply", True)),
        )

    def argv(self) -> list[str]:
        a = [
            "conntrack",
            "-I",
            "-p",
            self.proto,
            "-s",
            self.src,
            "-d",
            self.dst,
            "-r",
            self.reply_src,
            "-q",
            self.reply_dst,
            "--timeout",
            str(self.timeout),
        ]
        if self.proto in ("tcp", "udp"):
            a += [
                "--sport",
                str(self.sport),
                "--dport",
                str(self.dport),
                "--reply-port-src",
                str(self.reply_sport),
                "--reply-port-dst",
                str(self.reply_dport),
            ]
        else:  # icmp: type/code/id, echo request by default
            a += ["--icmp-type", "8", "--icmp-code", "0", "--icmp-id", str(self.sport)]
        if self.proto == "tcp":
            a += ["--state", self.state or "ESTABLISHED"]
        flags = [f for f, on in (("SEEN_REPLY", self.seen_reply), ("ASSURED", self.assured)) if on]
        if flags:
            a += ["-u", ",".join(flags)]
        if self.mark:
            a += ["--mark", str(self.mark)]
        return a


def _text(el: ET.Element | None, path: str) -> str:
    if el is None:
        raise ConntrackError("missing element")
    found = el.find(path)
    if found is None or found.text is None:
        raise ConntrackError(f"missing {path}")
    return found.text


def parse_xml(text: str) -> list[Entry]:
    """Entries of `conntrack -L -o xml` output (IPv4 tcp/udp/icmp; others skipped)."""
    out: list[Entry] = []
    if not text.strip():
        return out
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ConntrackError(f"conntrack XML: {e}") from None
    for flow in root.iter("flow"):
        metas = {m.get("direction"): m for m in flow.findall("meta")}
        orig, reply, ind = metas.get("original"), metas.get("reply"), metas.get("independent")
        if orig is None or reply is None or ind is None:
            continue
        l4 = orig.find("layer4")
        l3 = orig.find("layer3")
        if l4 is None or l3 is None or l3.get("protoname") != "ipv4":
            continue
        proto = l4.get("protoname", "")
        if proto not in PROTOS:
            continue
        if proto == "icmp":
            ident = orig.find("layer4/id")
            sport = dport = rsport = rdport = int(ident.text or 0) if ident is not None else 0
        else:
            sport, dport = int(_text(orig, "layer4/sport")), int(_text(orig, "layer4/dport"))
            rsport, rdport = int(_text(reply, "layer4/sport")), int(_text(reply, "layer4/dport"))
        state_el = ind.find("state")
        mark_el = ind.find("mark")
        out.append(
            Entry(
                proto=proto,
                src=_text(orig, "layer3/src"),
                dst=_text(orig, "layer3/dst"),
                sport=sport,
                dport=dport,
                reply_src=_text(reply, "layer3/src"),
                reply_dst=_text(reply, "layer3/dst"),
                reply_sport=rsport,
                reply_dport=rdport,
                state=state_el.text if state_el is not None else None,
                timeout=int(_text(ind, "timeout")),
                assured=ind.find("assured") is not None,
                mark=int(mark_el.text or 0) if mark_el is not None else 0,
                seen_reply=ind.find("unreplied") is None,
            )
        )
    return out


def dump() -> list[Entry]:
    """The entries of the calling process's namespace."""
    if _use_netlink():
        try:
            with nl.Socket(nl.NETLINK_NETFILTER) as s:
                return [e for _, body in s.dump(CT_GET, NFGEN.pack(socket.AF_INET, 0, 0))
                        if (e := parse_ct_message(body)) is not None]  # fmt: skip
        except OSError:
            pass  # the tool, below
    return dump_tool()


def dump_tool() -> list[Entry]:
    """`dump` through `conntrack -L -o xml`."""
    r = subprocess.run(["conntrack", "-L", "-o", "xml"], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise ConntrackError(f"conntrack -L: {r.stderr.strip()}")
    return parse_xml(r.stdout)


def insert(entries: list[Entry]) -> tuple[int, list[str]]:
    """Insert entries; returns (inserted, errors). An entry that exists already
    (the same connection seen here first) is counted as an error and kept as is."""
    if not entries:
        return 0, []
    if _use_netlink():
        try:
            sock = nl.Socket(nl.NETLINK_NETFILTER)
        except OSError:
            return insert_tool(entries)
        ok, errors = 0, []
        with sock:
            for e in entries:
                err = sock.request(CT_NEW, nl.NLM_F_CREATE | nl.NLM_F_EXCL, ct_new_body(e))
                if err == 0:
                    ok += 1
                else:
                    errors.append(
                        f"{e.proto} {e.src}:{e.sport}->{e.dst}:{e.dport}: {os.strerror(err)}"
                    )
        return ok, errors
    return insert_tool(entries)


def insert_tool(entries: list[Entry]) -> tuple[int, list[str]]:
    """`insert` through `conntrack -I`, one process per entry."""
    ok, errors = 0, []
    for e in entries:
        r = subprocess.run(e.argv(), capture_output=True, text=True, timeout=10)
        if r.returncode == 0:
            ok += 1
        else:
            errors.append(f"{e.proto} {e.src}:{e.sport}->{e.dst}:{e.dport}: {r.stderr.strip()}")
    return ok, errors


# ---------------------------------------------------------------- ctnetlink

CT_NEW, CT_GET = 1 << 8 | 0, 1 << 8 | 1
NFGEN = struct.Struct("=BBH")
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO, CTA_TIMEOUT, CTA_MARK = (
    1, 2, 3, 4, 7, 8,
)  # fmt: skip
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 2
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE = 4, 5, 6
CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE = 1, 1
IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 1 << 1, 1 << 2, 1 << 3
PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1}
PROTO_NAME = {v: k for k, v in PROTO_NUM.items()}
ICMP_ECHO, ICMP_ECHOREPLY = 8, 0
# The kernel's TCP states (enum tcp_conntrack) are TCP_STATES' positions + 1;
# SYN_SENT2 (9, a simultaneous open) is carried as SYN_SENT, NONE (0) not at all.
TCP_STATE_NUM = {name: i + 1 for i, name in enumerate(TCP_STATES)}
TCP_STATE_NAME = {**{v: k for k, v in TCP_STATE_NUM.items()}, 9: "SYN_SENT"}


def _use_netlink() -> bool:
    return os.environ.get("NETFATE_CONNTRACK", "netlink") != "tool"


def _tuple(proto: str, src: str, dst: str, sport: int, dport: int, icmp_type: int) -> bytes:
    ip = nl.nested(
        CTA_TUPLE_IP,
        nl.attr(CTA_IP_V4_SRC, socket.inet_aton(src)),
        nl.attr(CTA_IP_V4_DST, socket.inet_aton(dst)),
    )
    parts = [nl.attr(CTA_PROTO_NUM, bytes([PROTO_NUM[proto]]))]
    if proto == "icmp":
        parts += [
            nl.attr(CTA_PROTO_ICMP_ID, struct.pack(">H", sport)),
            nl.attr(CTA_PROTO_ICMP_TYPE, bytes([icmp_type])),
            nl.attr(CTA_PROTO_ICMP_CODE, b"\0"),
        ]
    else:
        parts += [
            nl.attr(CTA_PROTO_SRC_PORT, struct.pack(">H", sport)),
            nl.attr(CTA_PROTO_DST_PORT, struct.pack(">H", dport)),
        ]
    return ip + nl.nested(CTA_TUPLE_PROTO, *parts)


def ct_new_body(e: Entry) -> bytes:
    """The body of IPCTNL_MSG_CT_NEW re-creating `e` (what `e.argv()` asks the tool)."""
    # CONFIRMED: the kernel marks a created entry so before it applies the status
    # asked, and refuses a status that would clear it (EBUSY), as conntrack -I knows.
    status = IPS_CONFIRMED | (IPS_SEEN_REPLY if e.seen_reply else 0)
    status |= IPS_ASSURED if e.assured else 0
    body = [
        NFGEN.pack(socket.AF_INET, 0, 0),
        nl.nested(CTA_TUPLE_ORIG, _tuple(e.proto, e.src, e.dst, e.sport, e.dport, ICMP_ECHO)),
        nl.nested(
            CTA_TUPLE_REPLY,
            _tuple(e.proto, e.reply_src, e.reply_dst, e.reply_sport, e.reply_dport, ICMP_ECHOREPLY),
        ),
        nl.attr(CTA_TIMEOUT, struct.pack(">I", e.timeout)),
    ]
    body.append(nl.attr(CTA_STATUS, struct.pack(">I", status)))
    if e.mark:
        body.append(nl.attr(CTA_MARK, struct.pack(">I", e.mark)))
    if e.proto == "tcp":
        state = TCP_STATE_NUM[e.state or "ESTABLISHED"]
        body.append(
            nl.nested(
                CTA_PROTOINFO,
                nl.nested(CTA_PROTOINFO_TCP, nl.attr(CTA_PROTOINFO_TCP_STATE, bytes([state]))),
            )
        )
    return b"".join(body)


def _parse_tuple(data: bytes) -> tuple[str, str, int, int, int]:
    """(src, dst, proto number, sport or ICMP id, dport or ICMP id) of a tuple."""
    t = nl.parse_attrs(data)
    ip = nl.parse_attrs(t.get(CTA_TUPLE_IP, b""))
    pr = nl.parse_attrs(t.get(CTA_TUPLE_PROTO, b""))
    if len(ip.get(CTA_IP_V4_SRC, b"")) != 4 or len(ip.get(CTA_IP_V4_DST, b"")) != 4:
        raise ConntrackError("not an IPv4 tuple")
    raw_num = pr.get(CTA_PROTO_NUM, b"")
    if len(raw_num) != 1:
        raise ConntrackError("tuple without a protocol number")
    num = raw_num[0]

    def be16(k: int) -> int:
        v = pr.get(k, b"")
        if len(v) != 2:
            raise ConntrackError(f"tuple attribute {k}: {len(v)} bytes")
        return int(struct.unpack(">H", v)[0])

    if num == 1:
        sport = dport = be16(CTA_PROTO_ICMP_ID)
    elif num in (6, 17):
        sport, dport = be16(CTA_PROTO_SRC_PORT), be16(CTA_PROTO_DST_PORT)
    else:
        sport = dport = 0
    src = socket.inet_ntoa(ip[CTA_IP_V4_SRC])
    return src, socket.inet_ntoa(ip[CTA_IP_V4_DST]), num, sport, dport


def parse_ct_message(body: bytes) -> Entry | None:
    """One entry of a ctnetlink dump (IPv4 tcp/udp/icmp; None for others)."""
    try:
        return _parse_ct_message(body)
    except nl.NetlinkError as e:
        raise ConntrackError(str(e)) from None


def _parse_ct_message(body: bytes) -> Entry | None:
    if len(body) < NFGEN.size:
        raise ConntrackError("short ctnetlink message")
    family = body[0]
    if family != socket.AF_INET:
        return None
    a = nl.parse_attrs(body[NFGEN.size :])
    if CTA_TUPLE_ORIG not in a or CTA_TUPLE_REPLY not in a:
        return None
    src, dst, num, sport, dport = _parse_tuple(a[CTA_TUPLE_ORIG])
    rsrc, rdst, _, rsport, rdport = _parse_tuple(a[CTA_TUPLE_REPLY])
    proto = PROTO_NAME.get(num)
    if proto is None:
        return None

    def be32(k: int) -> int:
        v = a.get(k, b"")
        return int(struct.unpack(">I", v)[0]) if len(v) == 4 else 0

    status = be32(CTA_STATUS)
    state: str | None = None
    if proto == "tcp":
        info = nl.parse_attrs(nl.parse_attrs(a.get(CTA_PROTOINFO, b"")).get(CTA_PROTOINFO_TCP, b""))
        raw = info.get(CTA_PROTOINFO_TCP_STATE, b"")
        state = TCP_STATE_NAME.get(raw[0]) if raw else None
        if state is None:
            return None
    return Entry(
        proto=proto,
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        reply_src=rsrc,
        reply_dst=rdst,
        reply_sport=rsport,
        reply_dport=rdport,
        state=state,
        timeout=be32(CTA_TIMEOUT),
        assured=bool(status & IPS_ASSURED),
        mark=be32(CTA_MARK),
        seen_reply=bool(status & IPS_SEEN_REPLY),
    )
