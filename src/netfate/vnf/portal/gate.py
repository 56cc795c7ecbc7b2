"""The captive portal's nftables set-up, in its own namespace (one JSON transaction).

    table inet netfate_portal
      set allowed { ipv4_addr }                 clients logged in
      chain pre  (nat, prerouting)              TCP 80 of the others, to anywhere
                                                but us: redirected to the portal
      chain fwd  (filter, forward, policy drop) established/related, and `allowed`

`allow` adds or removes one client; `end` makes a client captive again at once
(out of `allowed`, and its conntrack entries deleted so no established flow
carries on). With `enabled` false (unit tests, no namespace) it does nothing.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from netfate.host import nft

TABLE = "netfate_portal"


class Gate:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def setup(self, port: int) -> None:
        """The table, its set and chains; redirects to the portal's HTTP `port`."""
        t = {"family": "inet", "table": TABLE}
        redirect = {"redirect": {"port": port}}
        nft.apply(
            nft.document(
                [
                    *nft.fresh_table("inet", TABLE),
                    {"add": {"set": {**t, "name": "allowed", "type": "ipv4_addr"}}},
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
