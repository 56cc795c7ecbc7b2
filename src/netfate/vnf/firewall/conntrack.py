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
"""

from __future__ import annotations

import ipaddress
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from typing import Any

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
    r = subprocess.run(["conntrack", "-L", "-o", "xml"], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise ConntrackError(f"conntrack -L: {r.stderr.strip()}")
    return parse_xml(r.stdout)


def insert(entries: list[Entry]) -> tuple[int, list[str]]:
    """Insert entries; returns (inserted, errors). An entry that exists already
    (the same connection seen here first) is counted as an error and kept as is."""
    ok, errors = 0, []
    for e in entries:
        r = subprocess.run(e.argv(), capture_output=True, text=True, timeout=10)
        if r.returncode == 0:
            ok += 1
        else:
            errors.append(f"{e.proto} {e.src}:{e.sport}->{e.dst}:{e.dport}: {r.stderr.strip()}")
    return ok, errors
