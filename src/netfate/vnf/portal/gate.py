"""The captive portal's nftables set-up, in its own namespace (one JSON transaction).

    table inet netfate_portal
      set allowed { ipv4_addr }                 clients logged in
      set garden  { ipv4_addr }                 the walled garden: the run's front
                                                door, which a captive client may
                                                reach (its web, TCP 80 and 443)
      chain pre  (nat, prerouting)              TCP 80 of the others, to anywhere
                                                but us and the garden: redirected
                                                to the portal
      chain fwd  (filter, forward, policy drop) established/related, `allowed`,
                                                web to the garden, and the pinholes

A pinhole (streaming: a signed-in viewer's edge streamer on a neighbour PE) is one
rule per client: that client's TCP to that address's ports, accepted in `fwd` and
left alone by `pre` (a streamer on port 80 is not sent to the portal); nothing else
of the client passes, and no other client gets it.

`allow` adds or removes one client; `end` makes a client captive again at once
(out of `allowed`, and its conntrack entries deleted so no established flow
carries on). With `enabled` false (unit tests, no namespace) it does nothing.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

from netfate.host import nft

TABLE = "netfate_portal"
Pinhole = tuple[str, str, list[int]]
"""(client address, destination address, its TCP ports)."""
GARDEN_PORTS = [80, 443]  # what a captive client may reach of the walled garden


class Gate:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def setup(
        self, port: int, garden: list[str] | None = None, pinholes: list[Pinhole] | None = None
    ) -> None:
        """The table, its sets and chains; redirects to the portal's HTTP `port`.
        `garden`: the addresses a client reaches before it logs in (the front door,
        where its users' pages are: signing in there needs no portal login first).
        `pinholes`: (client, to, TCP ports) a captive client may reach besides."""
        t = {"family": "inet", "table": TABLE}
        redirect = {"redirect": {"port": port}}
        daddr = {"payload": {"protocol": "ip", "field": "daddr"}}
        dport = {"payload": {"protocol": "tcp", "field": "dport"}}
        garden_set: dict[str, Any] = {**t, "name": "garden", "type": "ipv4_addr"}
        if garden:
            garden_set["elem"] = list(garden)
        holes = [_pinhole(t, chain, p) for p in pinholes or [] for chain in ("pre", "fwd")]
        nft.apply(
            nft.document(
                [
                    *nft.fresh_table("inet", TABLE),
                    {"add": {"set": {**t, "name": "allowed", "type": "ipv4_addr"}}},
                    {"add": {"set": garden_set}},
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
                    *[h for h in holes if h["add"]["rule"]["chain"] == "pre"],
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
                    *[h for h in holes if h["add"]["rule"]["chain"] == "fwd"],
                ]
            )
        )
        # A one-armed router: forward, and never tell clients to bypass us.
        for key, value in (("ipv4/ip_forward", "1"), ("ipv4/conf/all/send_redirects", "0")):
            with contextlib.suppress(OSError):
                Path("/proc/sys/net", key).write_text(value)

    def allow(self, ip: str, yes: bool) -> None:
        if not self.enabled:
            return
        op = "add" if yes else "delete"
        with contextlib.suppress(RuntimeError):
            elem = {"family": "inet", "table": TABLE, "name": "allowed", "elem": [ip]}
            nft.apply(nft.document([{op: {"element": elem}}]))

    def cut(self, client: str, to: str, ports: list[int]) -> None:
        """A pinhole's established flows end (its rule is gone already)."""
        if not self.enabled:
            return
        for port in ports:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["conntrack", "-D", "-p", "tcp", "--orig-src", client,
                     "--orig-dst", to, "--dport", str(port)],
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


def _pinhole(t: dict[str, str], chain: str, hole: Pinhole) -> dict[str, Any]:
    """One client's TCP to one address's ports: accepted in `chain`."""
    client, to, ports = hole

    def ip(field: str, value: str) -> dict[str, Any]:
        left = {"payload": {"protocol": "ip", "field": field}}
        return {"match": {"op": "==", "left": left, "right": value}}

    dport = {"payload": {"protocol": "tcp", "field": "dport"}}
    expr = [
        ip("saddr", client),
        ip("daddr", to),
        {"match": {"op": "==", "left": dport, "right": {"set": sorted(set(ports))}}},
        {"accept": None},
    ]
    return {"add": {"rule": {**t, "chain": chain, "expr": expr}}}
