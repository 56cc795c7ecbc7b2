"""The captive portal VNF in namespaces: a real browser logs in through it, against
FreeRADIUS and against our server; RFC 8908 API; RFC 8910 option 114 via dnsmasq;
form abuse.

    P-br   Linux bridge joining:
    P-cli  10.78.0.10/24, default via 10.78.0.1 (the portal)
    P-dhc  a DHCP client (busybox udhcpc)
    P-por  the portal, 10.78.0.1/24 and 10.78.1.1/24 (one-armed router)
    P-web  10.78.1.20/24 (a web server on :8080), 10.78.0.0/24 via 10.78.0.1
    P-aaa  10.78.1.5/24: FreeRADIUS, or our RADIUS server's socket
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.agent.instances import control_call
from netfate.host import netns
from netfate.services.firewall.freeradius import FreeRadius, available
from netfate.services.firewall.passwords import hash_password
from netfate.services.firewall.radius import RadiusService
from netfate.services.firewall.tables import NfAccountingRow, NfRadiusClientRow, NfUserRow
from netfate.store.db import Database

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SECRET = "portal-secret"
pytestmark = pytest.mark.skipif(not available(), reason="FreeRADIUS (Debian freeradius) missing")


def sh(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return netns.run_in(ns, list(argv), check=check)


class Net:
    def __init__(self, prefix: str, tmp: Path) -> None:
        self.p = prefix
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.control = str(tmp / "portal.sock")

    def ns(self, n: str) -> str:
        return f"{self.p}-{n}"

    def build(self) -> None:
        br = self.ns("br")
        netns.ensure(br)
        sh(br, "ip", "link", "add", "br0", "type", "bridge")
        sh(br, "ip", "link", "set", "br0", "up")
        for name, addrs, routes in (
            ("cli", ["10.78.0.10/24"], [("default", "10.78.0.1")]),
            ("dhc", [], []),
            ("por", ["10.78.0.1/24", "10.78.1.1/24"], []),
            ("web", ["10.78.1.20/24"], [("10.78.0.0/24", "10.78.1.1")]),
            ("aaa", ["10.78.1.5/24"], [("10.78.0.0/24", "10.78.1.1")]),
        ):
            ns = self.ns(name)
            netns.ensure(ns)
            sh(ns, "ip", "link", "set", "lo", "up")
            sh(
                br,
                "ip",
                "link",
                "add",
                f"{self.p}{name}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            )
            sh(br, "ip", "link", "set", f"{self.p}{name}", "master", "br0")
            sh(br, "ip", "link", "set", f"{self.p}{name}", "up")
            for a in addrs:
                sh(ns, "ip", "addr", "add", a, "dev", "eth0")
            sh(ns, "ip", "link", "set", "eth0", "up")
            for dst, via in routes:
                sh(ns, "ip", "route", "add", dst, "via", via)
        # A web server the client wants to reach (port 8080) and a "site" on port 80.
        for port in ("8080", "80"):
            self.procs.append(
                netns.popen_in(
                    self.ns("web"),
                    [
                        sys.executable,
                        "-m",
                        "http.server",
                        port,
                        "--bind",
                        "10.78.1.20",
                        "--directory",
                        str(self.tmp),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        (self.tmp / "hello.txt").write_text("hello from the web\n")

    def start_portal(self, radius: str, require_ma: bool = True, dhcp: bool = True) -> None:
        cfg: dict[str, Any] = {
            "node": "cpe1",
            "address": "10.78.0.1",
            "port": 80,
            "interim": 1.0,
            "radius": {
                "server": f"{radius}",
                "acct_server": radius.rsplit(":", 1)[0]
                + ":"
                + str(int(radius.rsplit(":", 1)[1]) + 1),
                "secret": SECRET,
                "require_message_authenticator": require_ma,
            },
        }
        if dhcp:
            cfg["dhcp"] = {"range": "10.78.0.100,10.78.0.150,1h", "router": "10.78.0.1"}
        argv = [
            sys.executable,
            "-m",
            "netfate.vnf",
            "netfate.vnf.portal:Portal",
            "--instance",
            "i-portal",
            "--control",
            self.control,
            "--config",
            json.dumps(cfg),
        ]
        log = open(self.tmp / "portal.log", "wb")  # noqa: SIM115
        p = netns.popen_in(self.ns("por"), argv, stdout=log, stderr=log)
        self.procs.append(p)
        for _ in range(500):
            if Path(self.control + ".ready").exists():
                return
            if p.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError((self.tmp / "portal.log").read_text())

    def curl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return sh(self.ns("cli"), "curl", "-s", "-m", "5", *args, check=False)

    def stats(self) -> dict[str, Any]:
        r: dict[str, Any] = asyncio.run(control_call(self.control, {"op": "status"}))["stats"]
        return r

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for name in ("cli", "dhc", "por", "web", "aaa", "br"):
            netns.remove(self.ns(name))


@pytest.fixture
def net(run_prefix: str, tmp_path: Path) -> Iterator[Net]:
    n = Net(run_prefix, tmp_path)
    try:
        n.build()
        yield n
    finally:
        n.close()


@pytest.fixture
def freeradius(net: Net, tmp_path: Path) -> Iterator[FreeRadius]:
    fr = FreeRadius(
        tmp_path,
        18120,
        SECRET,
        {"erin": ("3r1n-pass", {"Session-Timeout": "900"})},
        client="10.78.0.0/16",
        listen="10.78.1.5",
        netns=net.ns("aaa"),
    )
    fr.start()
    try:
        yield fr
    finally:
        fr.stop()


BROWSER = textwrap.dedent(
    """
    import json, sys
    from playwright.sync_api import sync_playwright
    out = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=sys.argv[1], args=json.loads(sys.argv[2]),
                              headless=True)
        page = b.new_page()
        page.goto("http://10.78.1.20/hello.txt")  # any site: the portal intercepts
        out["redirected_to"] = page.url
        out["title"] = page.title()
        page.fill("input[name=username]", sys.argv[3])
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        out["after_wrong"] = page.inner_text("[role=alert]")
        page.fill("input[name=username]", sys.argv[3])
        page.fill("input[name=password]", sys.argv[4])
        page.click("button[type=submit]")
        out["after_login"] = page.inner_text("body")
        page.goto("http://10.78.1.20:8080/hello.txt")
        out["web"] = page.inner_text("body")
        b.close()
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing")
def test_browser_login_through_portal_against_freeradius(net: Net, freeradius: FreeRadius) -> None:
    net.start_portal("10.78.1.5:18120", dhcp=False)
    # Before login: the client's traffic does not pass the portal.
    assert "hello" not in net.curl("-m", "2", "http://10.78.1.20:8080/hello.txt").stdout
    captive = net.curl("-i", "http://10.78.0.1/api/captive").stdout
    assert "application/captive+json" in captive and '"captive": true' in captive
    script = net.tmp / "browser.py"
    script.write_text(BROWSER)
    # Output to files, not pipes: Chromium's helper processes may outlive the script
    # for a moment and would hold a pipe open.
    outf, errf = net.tmp / "browser.out", net.tmp / "browser.err"
    with open(outf, "wb") as o, open(errf, "wb") as e:
        proc = netns.popen_in(
            net.ns("cli"),
            [sys.executable, str(script), CHROMIUM, json.dumps(CHROMIUM_ARGS), "erin", "3r1n-pass"],
            stdout=o,
            stderr=e,
        )
        rc = proc.wait(120)
    assert rc == 0, errf.read_text()[-3000:] + freeradius.output()[-2000:]
    r = subprocess.CompletedProcess(proc.args, rc, outf.read_text(), "")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["redirected_to"] == "http://10.78.0.1/login"
    assert out["title"] == "Log in at cpe1"
    assert out["after_wrong"] == "Wrong user or password."
    assert "Logged in as erin" in out["after_login"]
    assert out["web"].strip() == "hello from the web"
    api = json.loads(net.curl("http://10.78.0.1/api/captive").stdout)
    assert api["captive"] is False and 0 < api["seconds-remaining"] <= 900
    st = net.stats()
    assert (st["logins"], st["rejects"], st["radius_timeouts"]) == (1, 1, 0)
    # Interim-Updates go out every second and FreeRADIUS answers them.
    time.sleep(1.5)
    assert net.stats()["radius_timeouts"] == 0
    # Logout: Accounting Stop, and the client is captive again.
    net.curl("-X", "POST", "http://10.78.0.1/logout")
    assert json.loads(net.curl("http://10.78.0.1/api/captive").stdout)["captive"] is True


def test_rfc8910_option_114_via_dnsmasq(net: Net, freeradius: FreeRadius) -> None:
    if shutil.which("busybox") is None:
        pytest.skip("busybox missing")
    net.start_portal("10.78.1.5:18120", dhcp=True)
    script = net.tmp / "udhcpc.sh"
    dump = net.tmp / "dhcp.env"
    script.write_text(f"#!/bin/sh\nenv > {dump}.$1\n")
    script.chmod(0o755)
    r = sh(
        net.ns("dhc"),
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-t",
        "15",
        "-T",
        "1",
        "-O",
        "114",
        "-s",
        str(script),
        check=False,
    )
    env = Path(f"{dump}.bound").read_text() if Path(f"{dump}.bound").exists() else r.stderr
    assert "router=10.78.0.1" in env
    uri = b"http://10.78.0.1/api/captive".hex()
    assert f"opt114={uri}" in env, env


class OurRadius:
    def __init__(self, tmp: Path, ns: str) -> None:
        self.db = Database(f"sqlite:///{tmp}/p.db")
        self.db.migrate()
        with self.db.session() as s:
            s.add(NfRadiusClientRow(address="10.78.0.0/16", secret=SECRET, name="portals"))
            for name, pw in (("frank", "fr4nk"), ("m<i>x&", "markup")):
                s.add(
                    NfUserRow(
                        name=name,
                        password_hash=hash_password(pw),
                        functions=[],
                        status="offline",
                        session_timeout=600,
                        idle_timeout=30,
                        rules={},
                        rules_version=1,
                        counters={},
                    )
                )
        self.loop = asyncio.new_event_loop()
        self.svc = RadiusService(self.db)
        self.svc.reload_clients()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        for port in (18120, 18121):
            asyncio.run_coroutine_threadsafe(
                self.svc.listen("10.78.1.5", port, ns), self.loop
            ).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.svc.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def ours(net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OurRadius]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    srv = OurRadius(tmp_path, net.ns("aaa"))
    try:
        yield srv
    finally:
        srv.close()


def test_portal_against_our_server_and_form_abuse(net: Net, ours: OurRadius) -> None:
    net.start_portal("10.78.1.5:18120", dhcp=False)
    r = net.curl(
        "-d", "username=frank&password=nope", "-w", "%{http_code}", "http://10.78.0.1/login"
    )
    assert r.stdout.endswith("401")
    # Markup in a user name is escaped where it is shown.
    r = net.curl(
        "--data-urlencode",
        "username=m<i>x&",
        "--data-urlencode",
        "password=markup",
        "http://10.78.0.1/login",
    )
    assert "m&lt;i&gt;x&amp;" in r.stdout and "m<i>x" not in r.stdout
    with ours.db.session() as s:
        rows = s.query(NfAccountingRow).all()
        assert [(a.user, a.status, a.nas) for a in rows][:1] == [("m<i>x&", "start", "cpe1")]
    # Huge fields: a user name over 64 characters, a body over 4 KiB.
    r = net.curl(
        "-d", "username=" + "u" * 65 + "&password=x", "-w", "%{http_code}", "http://10.78.0.1/login"
    )
    assert r.stdout.endswith("400")
    r = net.curl(
        "-d", "username=a&password=" + "p" * 5000, "-w", "%{http_code}", "http://10.78.0.1/login"
    )
    assert r.stdout.endswith("413")
    # Repeated posts from one address: the sixth within 10 s is refused.
    codes = [
        net.curl(
            "-d",
            "username=frank&password=nope",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://10.78.0.1/login",
        ).stdout
        for _ in range(6)
    ]
    assert "429" in codes
    assert net.stats()["rate_limited"] >= 1
