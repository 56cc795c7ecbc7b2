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

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from freeradius import FreeRadius, available
from netfate.host import netns
from netfate.services.firewall.tables import FirewallAccountingRow
from netns_lan import sh, until
from portal_rig import PortalNet
from radius_fixtures import OurServer, our_server, radius_db, user_row

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


def start_portal(net: PortalNet, require_ma: bool = True, dhcp: bool = True) -> None:
    cfg = net.portal_config(SECRET, require_message_authenticator=require_ma)
    if dhcp:
        cfg["dhcp"] = {"range": "10.78.0.100,10.78.0.150,1h", "router": "10.78.0.1"}
    net.start_portal(cfg)


@pytest.fixture
def net(run_prefix: str, tmp_path: Path) -> Iterator[PortalNet]:
    # A web server the client wants to reach (port 8080) and a "site" on port 80.
    with PortalNet(run_prefix, tmp_path, "10.78", extra=("dhc",)).built((8080, 80)) as n:
        yield n


@pytest.fixture
def freeradius(net: PortalNet) -> Iterator[FreeRadius]:
    with net.freeradius(SECRET, {"erin": ("3r1n-pass", {"Session-Timeout": "900"})}) as fr:
        yield fr


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
def test_browser_login_through_portal_against_freeradius(
    net: PortalNet, freeradius: FreeRadius
) -> None:
    start_portal(net, dhcp=False)
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


def test_rfc8910_option_114_via_dnsmasq(net: PortalNet, freeradius: FreeRadius) -> None:
    if shutil.which("busybox") is None:
        pytest.skip("busybox missing")
    start_portal(net, dhcp=True)
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
    # The lease, in the portal's stats as its agent reports them (the catalog's
    # where-is service reads them: vnf/leasefile.py).
    mac = sh(net.ns("dhc"), "cat", "/sys/class/net/eth0/address").stdout.strip()
    assert until(lambda: f" {mac} 10.78.0.1" in net.stats()["dhcp"]["lease_file"]), net.stats()
    assert net.stats()["dhcp"]["lease_seconds"] == 3600
    # Its end removes the lease file (a restart's hand-over keeps it for the next one).
    leases = Path("/tmp/netfate-portal-i-portal.leases")
    assert leases.exists()
    net.call({"op": "stop"})
    assert until(lambda: not leases.exists()), "the stopped portal left its lease file"


@pytest.fixture
def ours(net: PortalNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OurServer]:
    users = [
        user_row(n, pw, idle_timeout=30) for n, pw in (("frank", "fr4nk"), ("m<i>x&", "markup"))
    ]
    db = radius_db(tmp_path / "p.db", "10.78.0.0/16", SECRET, users)
    with our_server(monkeypatch, db) as srv:
        for port in (18120, 18121):
            srv.listen("10.78.1.5", port, net.ns("aaa"))
        yield srv


def test_portal_against_our_server_and_form_abuse(net: PortalNet, ours: OurServer) -> None:
    start_portal(net, dhcp=False)
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
        rows = s.query(FirewallAccountingRow).all()
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
