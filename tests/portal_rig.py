"""The captive portal VNF in namespaces, as the portal netns tests build it
(NET is the test's /16, e.g. "10.78"):

    PREFIX-br   Linux bridge joining:
    PREFIX-cli  NET.0.10/24, default via NET.0.1 (the portal)
    PREFIX-por  the portal, NET.0.1/24 and NET.1.1/24 (one-armed router)
    PREFIX-web  NET.1.20/24, NET.0.0/24 via NET.1.1: web servers on the ports asked
    PREFIX-aaa  NET.1.5/24, NET.0.0/24 via NET.1.1: a RADIUS server
    and any extra, bare host (e.g. a DHCP client)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from freeradius import FreeRadius
from netfate.agent.instances import control_call
from netfate.host import netns
from netns_lan import Host, build_lan, remove_lan, sh, start_vnf, stop_procs
from radius_fixtures import running


class PortalNet:
    def __init__(
        self, prefix: str, tmp: Path, net: str, extra: tuple[str, ...] = (), curl_max: int = 5
    ) -> None:
        self.p, self.tmp, self.net = prefix, tmp, net
        self.procs: list[subprocess.Popen[bytes]] = []
        self.control = str(tmp / "portal.sock")
        self.curl_max = curl_max
        behind = [(f"{net}.0.0/24", f"{net}.1.1")]
        self.hosts: list[Host] = [
            ("cli", [f"{net}.0.10/24"], [("default", f"{net}.0.1")]),
            ("por", [f"{net}.0.1/24", f"{net}.1.1/24"], []),
            ("web", [f"{net}.1.20/24"], behind),
            ("aaa", [f"{net}.1.5/24"], behind),
            *((name, [], []) for name in extra),
        ]

    def ns(self, n: str) -> str:
        return f"{self.p}-{n}"

    @contextmanager
    def built(self, web_ports: tuple[int, ...] = (8080,)) -> Iterator[PortalNet]:
        """The namespaces and the web servers (hello.txt), all removed on exit."""
        try:
            build_lan(self.p, self.hosts)
            (self.tmp / "hello.txt").write_text("hello from the web\n")
            for port in web_ports:
                self.procs.append(
                    netns.popen_in(
                        self.ns("web"),
                        [sys.executable, "-m", "http.server", str(port),
                         "--bind", f"{self.net}.1.20", "--directory", str(self.tmp)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )  # fmt: skip
            yield self
        finally:
            stop_procs(self.procs)
            remove_lan(self.p, [h[0] for h in self.hosts])

    @contextmanager
    def freeradius(
        self, secret: str, users: dict[str, tuple[str, dict[str, str]]]
    ) -> Iterator[FreeRadius]:
        """FreeRADIUS in PREFIX-aaa on NET.1.5:18120 (accounting 18121) for NET.0.0/16."""
        fr = FreeRadius(self.tmp, 18120, secret, users, client=f"{self.net}.0.0/16",
                        listen=f"{self.net}.1.5", netns=self.ns("aaa"))  # fmt: skip
        with running(fr):
            yield fr

    def portal_config(self, secret: str, **radius: Any) -> dict[str, Any]:
        """The portal at cpe1 (NET.0.1, HTTP on 80, an Interim-Update every second),
        its RADIUS server at NET.1.5: authentication on 18120, accounting on 18121."""
        return {
            "node": "cpe1",
            "address": f"{self.net}.0.1",
            "port": 80,
            "interim": 1.0,
            "radius": {
                "server": f"{self.net}.1.5:18120",
                "acct_server": f"{self.net}.1.5:18121",
                "secret": secret,
                **radius,
            },
        }

    def start_portal(self, cfg: Mapping[str, Any], instance: str = "i-portal") -> None:
        self.procs.append(
            start_vnf(
                self.ns("por"),
                "netfate.vnf.portal:Portal",
                instance,
                self.control,
                cfg,
                self.tmp / "portal.log",
            )
        )

    def portal_log(self) -> str:
        return (self.tmp / "portal.log").read_text()

    def curl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return sh(self.ns("cli"), "curl", "-s", "-m", str(self.curl_max), *args, check=False)

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        """One request over the portal's control socket, as the agent sends it."""
        r: dict[str, Any] = asyncio.run(control_call(self.control, req))
        return r

    def stats(self) -> dict[str, Any]:
        r: dict[str, Any] = self.call({"op": "status"})["stats"]
        return r
