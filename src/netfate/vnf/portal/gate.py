"""The captive portal's nftables set-up, in its own namespace (one JSON transaction).

    table inet netfate_portal
      set allowed  { ipv4_addr }                clients logged in
      set garden   { ipv4_addr }                the walled garden: the run's front
                                                door, which a captive client may
                                                reach (its web, TCP 80 and 443)
      set pinholes { ipv4_addr . ipv4_addr . inet_proto . inet_service }
                                                source . destination . protocol .
                                                destination port, each a pinhole's
      chain pre  (nat, prerouting)              pinholes left alone; TCP 80 of the
                                                others, to anywhere but us and the
                                                garden: redirected to the portal
      chain fwd  (filter, forward, policy drop) established/related, `allowed`,
                                                web to the garden, and the pinholes

A pinhole (streaming: a signed-in viewer's edge streamer on a neighbour PE) is one
client and one address: outward, that client's TCP (or UDP) to that address's ports
(HLS, the RTP join); inward, that address's UDP to the client's ports (RTP and RTCP
pushed to a native client). Its elements are in the set `pinholes`, matched in `fwd`
and before the redirect in `pre` (a streamer on port 80 is not sent to the portal);
nothing else of the client passes, and no other client gets it.

Pinholes change on the live table (`holes`: elements added and deleted in one
transaction), so the portal and its dnsmasq keep running; a removed pinhole's
established flows end with it (their conntrack entries deleted: the gate accepts
established flows).

`allow` adds or removes one client; `end` makes a client captive again at once
(out of `allowed`, and its conntrack entries deleted so no established flow
carries on). With `enabled` false (unit tests, no namespace) it does nothing.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from netfate.host import links, nft

TABLE = "netfate_portal"
GARDEN_PORTS = [80, 443]  # what a captive client may reach of the walled garden
PROTOS = ("tcp", "udp")
DIRECTIONS = ("out", "in")

Element = tuple[str, str, str, int]
"""One entry of the set `pinholes`: (source, destination, protocol, destination port)."""


@dataclass(frozen=True)
class Pinhole:
    client: str
    """The captive client's address."""
    to: str
    """The one address it is let through to (or from)."""
    ports: tuple[int, ...]
    """Destination ports: `to`'s (out), the client's (in)."""
    proto: str = "tcp"
    direction: str = "out"
    """out: the client to `to`'s ports; in: `to` to the client's ports (a stream it
    pushes, as an edge streamer's RTP to a native client)."""

    def elements(self) -> set[Element]:
        src, dst = (self.client, self.to) if self.direction == "out" else (self.to, self.client)
        return {(src, dst, self.proto, p) for p in self.ports}

    def dump(self) -> dict[str, object]:
        return {"client": self.client, "to": self.to, "ports": list(self.ports),
                "proto": self.proto, "direction": self.direction}  # fmt: skip


def elements(holes: Iterable[Pinhole]) -> set[Element]:
    return {e for h in holes for e in h.elements()}


def _elem(e: Element) -> dict[str, Any]:
    return {"concat": list(e)}


_PINHOLE_MATCH = {
    "match": {
        "op": "==",
        "left": {
            "concat": [
                {"payload": {"protocol": "ip", "field": "saddr"}},
                {"payload": {"protocol": "ip", "field": "daddr"}},
                {"meta": {"key": "l4proto"}},
                {"payload": {"protocol": "th", "field": "dport"}},
            ]
        },
        "right": "@pinholes",
    }
}


class Gate:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def setup(
        self, port: int, garden: list[str] | None = None, pinholes: list[Pinhole] | None = None
    ) -> None:
        """The table, its sets and chains; redirects to the portal's HTTP `port`.
        `garden`: the addresses a client reaches before it logs in (the front door,
        where its users' pages are: signing in there needs no portal login first).
        `pinholes`: what a captive client may reach (or be reached by) besides."""
        t = {"family": "inet", "table": TABLE}
        redirect = {"redirect": {"port": port}}
        daddr = {"payload": {"protocol": "ip", "field": "daddr"}}
        dport = {"payload": {"protocol": "tcp", "field": "dport"}}
        garden_set: dict[str, Any] = {**t, "name": "garden", "type": "ipv4_addr"}
        if garden:
            garden_set["elem"] = list(garden)
        holes_set: dict[str, Any] = {
            **t,
            "name": "pinholes",
            "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"],
        }
        if elems := sorted(elements(pinholes or [])):
            holes_set["elem"] = [_elem(e) for e in elems]
        nft.apply(
            nft.document(
                [
                    *nft.fresh_table("inet", TABLE),
                    {"add": {"set": {**t, "name": "allowed", "type": "ipv4_addr"}}},
                    {"add": {"set": garden_set}},
                    {"add": {"set": holes_set}},
                    {
                        "add": {
                            "chain": {
                                **t,
                                "name": "pre",
                                "type": "nat",
                                "hook": "prerouting",
                                "prio": -100,
                                "policy": "accept",
                            }
                        }
                    },
                    {
                        "add": {
                            "chain": {
                                **t,
                                "name": "fwd",
                                "type": "filter",
                                "hook": "forward",
                                "prio": 0,
                                "policy": "drop",
                            }
                        }
                    },
                    # Before the redirect: a pinhole's traffic goes where it is sent.
                    {
                        "add": {
                            "rule": {
                                **t,
                                "chain": "pre",
                                "expr": [_PINHOLE_MATCH, {"accept": None}],
                            }
                        }
                    },
                    # Web traffic of unauthenticated clients to anywhere else: to us.
                    {
                        "add": {
                            "rule": {
                                **t,
                                "chain": "pre",
                                "expr": [
                                    {
                                        "match": {
                                            "op": "!=",
                                            "left": {
                                                "payload": {"protocol": "ip", "field": "saddr"}
                                            },
                                            "right": "@allowed",
                                        }
                                    },
                                    {"match": {"op": "!=", "left": daddr, "right": "@garden"}},
                                    {
                                        "match": {
                                            "op": "!=",
                                            "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                                            "right": "local",
                                        }
                                    },
                                    {
                                        "match": {
                                            "op": "==",
                                            "left": {
                                                "payload": {"protocol": "tcp", "field": "dport"}
                                            },
                                            "right": 80,
                                        }
                                    },
                                    redirect,
                                ],
                            }
                        }
                    },
                    {
                        "add": {
                            "rule": {
                                **t,
                                "chain": "fwd",
                                "expr": [
                                    {
                                        "match": {
                                            "op": "in",
                                            "left": {"ct": {"key": "state"}},
                                            "right": ["established", "related"],
                                        }
                                    },
                                    {"accept": None},
                                ],
                            }
                        }
                    },
                    {
                        "add": {
                            "rule": {
                                **t,
                                "chain": "fwd",
                                "expr": [
                                    {
                                        "match": {
                                            "op": "==",
                                            "left": {
                                                "payload": {"protocol": "ip", "field": "saddr"}
                                            },
                                            "right": "@allowed",
                                        }
                                    },
                                    {"accept": None},
                                ],
                            }
                        }
                    },
                    # The walled garden's web, before any login (its answers are
                    # established: the first rule).
                    {
                        "add": {
                            "rule": {
                                **t,
                                "chain": "fwd",
                                "expr": [
                                    {"match": {"op": "==", "left": daddr, "right": "@garden"}},
                                    {
                                        "match": {
                                            "op": "==",
                                            "left": dport,
                                            "right": {"set": GARDEN_PORTS},
                                        }
                                    },
                                    {"accept": None},
                                ],
                            }
                        }
                    },
                    {
                        "add": {
                            "rule": {
                                **t,
                                "chain": "fwd",
                                "expr": [_PINHOLE_MATCH, {"accept": None}],
                            }
                        }
                    },
                ]
            )
        )
        links.one_armed_router()

    def allow(self, ip: str, yes: bool) -> None:
        if not self.enabled:
            return
        op = "add" if yes else "delete"
        with contextlib.suppress(RuntimeError):
            elem = {"family": "inet", "table": TABLE, "name": "allowed", "elem": [ip]}
            nft.apply(nft.document([{op: {"element": elem}}]))

    def holes(self, old: Iterable[Pinhole], new: Iterable[Pinhole]) -> None:
        """The pinholes become `new` on the live table (one transaction; the portal and
        its dnsmasq keep running); the flows established through an element that went
        end too. Raises NftError when nft refuses (nothing changed then)."""
        before, after = elements(old), elements(new)
        gone, added = sorted(before - after), sorted(after - before)
        if not self.enabled or not (gone or added):
            return
        t = {"family": "inet", "table": TABLE, "name": "pinholes"}
        ops: list[dict[str, Any]] = []
        if gone:
            ops.append({"delete": {"element": {**t, "elem": [_elem(e) for e in gone]}}})
        if added:
            ops.append({"add": {"element": {**t, "elem": [_elem(e) for e in added]}}})
        nft.apply(nft.document(ops))
        self.cut(gone)

    def cut(self, gone: Iterable[Element]) -> None:
        """These pinhole elements' established flows end (they are out of the set)."""
        if not self.enabled:
            return
        for src, dst, proto, port in gone:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["conntrack", "-D", "-p", proto, "--orig-src", src,
                     "--orig-dst", dst, "--dport", str(port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=5,
                    check=False,
                )  # fmt: skip

    def end(self, ips: list[str]) -> None:
        """Captive again: out of `allowed`, and no established flow carries on."""
        for ip in ips:
            self.allow(ip, False)
            if self.enabled:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(
                        ["conntrack", "-D", "--orig-src", ip],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        timeout=5,
                        check=False,
                    )
