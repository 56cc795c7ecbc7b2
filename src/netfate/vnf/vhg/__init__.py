"""The virtual home gateway (vHG) of a Personal Network: DHCP, NAT and a firewall.

Seed section II: the CPE router moves to the edge node as a VNF. The vHG is a
one-armed router on the PN's LAN (its eth0):

- DHCP: dnsmasq on eth0 hands out the PN's pool and names the vHG as router;
- NAT: nftables masquerade of PN traffic leaving the PN;
- firewall: forwarded traffic into the PN is dropped unless it belongs to a
  connection a PN device opened, or matches an `allow` rule of the config;
- port forwards: what reaches the vHG's own address from outside the PN on a
  forwarded port is sent to a PN device (DNAT in prerouting), and the forward
  filter lets exactly those DNATed flows in. The device answers through the vHG
  (it is the router its lease names), where conntrack undoes the DNAT.

Config (config.py): subnet, dhcp_first, dhcp_last, lease_seconds,
upstream_gateway (the node's address on the LAN), allow: [{"proto": "tcp",
"port": 80, "to": "192.168.1.5"}], forwards: [{"proto": "tcp", "port": 8080,
"to": "192.168.1.5", "to_port": 80}], static: [{"mac": "02:..", "ip":
"192.168.1.20", "name": "nas"}] (static leases: dnsmasq's dhcp-host). A running vHG
takes a new pool, lease time, static leases, allow rules and forwards in place
(`configure`: the ruleset replaced in one transaction, dnsmasq restarted on its
lease file when the pool, lease time or static leases changed); a new subnet or
interface needs a restart.
Stats carry the inventory (leases and neighbours) the sharing service shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from netfate.host import links, netns, nft
from netfate.vnf import leasefile
from netfate.vnf.runtime import Context, Function

from .inventory import lease_devices

IFNAME = "eth0"
WIRING_TIMEOUT_S = 30.0
TABLE = "vhg"
T = TypeVar("T")


def _own_address(ifname: str, net: ipaddress.IPv4Network) -> str | None:
    try:
        with links.rtnl(None) as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if not idx:
                return None
            for msg in ipr.get_addr(index=idx[0], family=2):
                a = msg.get_attr("IFA_ADDRESS")
                if a and ipaddress.IPv4Address(a) in net:
                    return str(a)
    except OSError:
        return None
    return None


def firewall_ruleset(
    subnet: str,
    ifname: str,
    allow: list[dict[str, Any]],
    forwards: Sequence[dict[str, Any]] = (),
    address: str | None = None,
) -> dict[str, Any]:
    """nftables JSON of the vHG: masquerade, port forwards (DNAT to `address`, the
    vHG's own, from outside the PN) and a stateful forward filter."""
    t = {"family": "ip", "table": TABLE}
    saddr = {"payload": {"protocol": "ip", "field": "saddr"}}
    daddr = {"payload": {"protocol": "ip", "field": "daddr"}}
    net = ipaddress.IPv4Network(subnet)
    pfx = {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}

    def rule(chain: str, *expr: dict[str, Any]) -> dict[str, Any]:
        return {"add": {"rule": {**t, "chain": chain, "expr": list(expr)}}}

    def m(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
        return {"match": {"op": op, "left": left, "right": right}}

    cmds: list[dict[str, Any]] = [
        *nft.fresh_table("ip", TABLE),
        {
            "add": {
                "chain": {
                    **t,
                    "name": "post",
                    "type": "nat",
                    "hook": "postrouting",
                    "prio": 100,
                    "policy": "accept",
                }
            }
        },
        {
            "add": {
                "chain": {
                    **t,
                    "name": "forward",
                    "type": "filter",
                    "hook": "forward",
                    "prio": 0,
                    "policy": "drop",
                }
            }
        },
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
        rule("post", m(saddr, pfx), m(daddr, pfx, "!="), {"masquerade": None}),
        rule(
            "forward",
            m({"ct": {"key": "state"}}, ["established", "related"], "in"),
            {"accept": None},
        ),
        rule(
            "forward",
            m({"meta": {"key": "iifname"}}, ifname),
            m(saddr, pfx),
            m(daddr, pfx, "!="),
            {"accept": None},
        ),
    ]
    for a in allow:
        proto = str(a.get("proto", "tcp"))
        if proto not in ("tcp", "udp"):
            raise ValueError(f"allow rule: protocol {proto!r} is not tcp or udp")
        expr = [m({"payload": {"protocol": proto, "field": "dport"}}, int(a["port"]))]
        if a.get("to"):
            expr.append(m(daddr, str(ipaddress.IPv4Address(str(a["to"])))))
        cmds.append(rule("forward", *expr, {"counter": None}, {"accept": None}))
    for f in forwards:
        proto = str(f.get("proto", "tcp"))
        if proto not in ("tcp", "udp"):
            raise ValueError(f"forward: protocol {proto!r} is not tcp or udp")
        to = str(ipaddress.IPv4Address(str(f["to"])))
        port, to_port = int(f["port"]), int(f.get("to_port") or f["port"])
        dport = {"payload": {"protocol": proto, "field": "dport"}}
        into = [m({"meta": {"key": "iifname"}}, ifname), m(saddr, pfx, "!=")]
        if address is not None:
            into.append(m(daddr, address))
        cmds.append(rule("pre", *into, m(dport, port), {"dnat": {"addr": to, "port": to_port}}))
        # Only what a forward DNATed to this device and port is let in by it.
        cmds.append(
            rule(
                "forward",
                m({"ct": {"key": "status"}}, "dnat", "in"),
                m(daddr, to),
                m(dport, to_port),
                {"counter": None},
                {"accept": None},
            )
        )
    return nft.document(cmds)


def _off_loop(fn: Callable[[], T]) -> T:
    """Run `fn` in a worker thread: pyroute2 refuses to start in a thread whose asyncio
    loop is running, and stats() is called from the control server's loop."""
    with ThreadPoolExecutor(max_workers=1) as ex:
        return ex.submit(fn).result()


def _static(entries: Any) -> list[tuple[str, ...]]:
    """Static leases as dnsmasq's dhcp-host fields (MAC, address[, name]), checked:
    ValueError on anything else (the agent checked the schema already)."""
    out: list[tuple[str, ...]] = []
    for e in entries or []:
        mac = str(e["mac"]).lower()
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
            raise ValueError(f"static lease: bad MAC {mac!r}")
        ip = str(ipaddress.IPv4Address(str(e["ip"])))
        name = e.get("name")
        if name is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,63}", str(name)):
            raise ValueError(f"static lease: bad name {name!r}")
        out.append((mac, ip, str(name)) if name else (mac, ip))
    return out


class Vhg(Function):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        c = ctx.config
        self.subnet = ipaddress.IPv4Network(str(c["subnet"]))
        self.first = str(ipaddress.IPv4Address(str(c["dhcp_first"])))
        self.last = str(ipaddress.IPv4Address(str(c["dhcp_last"])))
        self.upstream = c.get("upstream_gateway")
        self.allow: list[dict[str, Any]] = list(c.get("allow", []))
        self.forwards: list[dict[str, Any]] = list(c.get("forwards", []))
        self.static = _static(c.get("static", []))
        self.ifname = str(c.get("ifname", IFNAME))
        self.lease_secs = int(c.get("lease_seconds", 3600))
        self.dir = Path(tempfile.mkdtemp(prefix=f"vhg-{ctx.instance}-"))
        self.leasefile = self.dir / "leases"
        self.dnsmasq: subprocess.Popen[bytes] | None = None
        self.address: str | None = None

    async def start(self) -> None:
        deadline = time.monotonic() + WIRING_TIMEOUT_S
        while (addr := await asyncio.to_thread(_own_address, self.ifname, self.subnet)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.ifname} never got an address in {self.subnet}")
            await asyncio.sleep(0.01)
        self.address = addr
        await asyncio.to_thread(self._configure)

    def _configure(self) -> None:
        links.one_armed_router()  # clients must keep using us, not the node
        self._apply_rules()
        self.leasefile.touch()
        self._start_dnsmasq()

    def _apply_rules(self) -> None:
        nft.apply(
            firewall_ruleset(str(self.subnet), self.ifname, self.allow, self.forwards, self.address)
        )

    def _start_dnsmasq(self) -> None:
        dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        argv = [
            dnsmasq, "--no-daemon", "--conf-file=/dev/null", "--port=0",
            f"--interface={self.ifname}", "--bind-interfaces", "--no-resolv", "--no-hosts",
            f"--dhcp-range={self.first},{self.last},{self.subnet.netmask},{self.lease_secs}",
            f"--dhcp-option=option:router,{self.address}",
            f"--dhcp-leasefile={self.leasefile}", "--dhcp-authoritative",
            f"--pid-file={self.dir / 'dnsmasq.pid'}", "--log-facility=-",
            *(f"--dhcp-host={','.join(host)}" for host in self.static),
        ]  # fmt: skip
        self.dnsmasq = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _stop_dnsmasq(self) -> None:
        if self.dnsmasq is not None and self.dnsmasq.poll() is None:
            self.dnsmasq.terminate()
            try:
                self.dnsmasq.wait(5)
            except subprocess.TimeoutExpired:
                self.dnsmasq.kill()
                self.dnsmasq.wait()

    def configure(self, config: dict[str, Any]) -> bool:
        """New allow rules, forwards, DHCP pool or lease time, in place (the agent's
        reconfiguration); another change (subnet, interface, gateway) needs a restart."""
        fixed = ("pn", "subnet", "upstream_gateway", "ifname")
        if any(config.get(k) != self.ctx.config.get(k) for k in fixed):
            return False
        try:
            first = str(ipaddress.IPv4Address(str(config["dhcp_first"])))
            last = str(ipaddress.IPv4Address(str(config["dhcp_last"])))
            lease = int(config.get("lease_seconds", 3600))
            allow, forwards = list(config.get("allow", [])), list(config.get("forwards", []))
            static = _static(config.get("static", []))
            doc = firewall_ruleset(str(self.subnet), self.ifname, allow, forwards, self.address)
        except (KeyError, TypeError, ValueError):
            return False
        try:
            nft.apply(doc)  # one transaction: the old rules stay if it is refused
        except nft.NftError:
            return False
        self.allow, self.forwards = allow, forwards
        if (first, last, lease, static) != (self.first, self.last, self.lease_secs, self.static):
            self.first, self.last, self.lease_secs, self.static = first, last, lease, static
            # dnsmasq reads its range and hosts at start; the lease file carries the
            # leases over (a device whose lease is not its static address is refused
            # at its renewal and asks again).
            self._stop_dnsmasq()
            self._start_dnsmasq()
        return True

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop_dnsmasq)
        with contextlib.suppress(netns.CommandError):
            await asyncio.to_thread(netns.run_in, None, ["nft", "delete", "table", "ip", TABLE])
        shutil.rmtree(self.dir, ignore_errors=True)

    def devices(self) -> list[dict[str, Any]]:
        """Leases and neighbours (REACHABLE/STALE/DELAY/PROBE/PERMANENT) in the PN."""
        try:
            text = self.leasefile.read_text()
        except OSError:
            text = ""
        out: dict[str, dict[str, Any]] = dict(lease_devices(text, time.time()))
        for n in _off_loop(self._neighbours):
            ip, mac = n.get_attr("NDA_DST"), n.get_attr("NDA_LLADDR")
            # NUD_INCOMPLETE (1) and NUD_FAILED (32) are no evidence of a device.
            if not ip or not mac or n["state"] in (1, 32):
                continue
            if ipaddress.IPv4Address(ip) not in self.subnet or ip in out:
                continue
            if ip in (self.upstream, self.address):
                continue
            out[ip] = {"name": None, "ip": ip, "mac": mac, "source": "neighbour"}
        return sorted(out.values(), key=lambda d: ipaddress.IPv4Address(d["ip"]))

    def _neighbours(self) -> list[Any]:
        with links.rtnl(None) as ipr:
            idx = ipr.link_lookup(ifname=self.ifname)
            return list(ipr.get_neighbours(family=2, ifindex=idx[0])) if idx else []

    def stats(self) -> dict[str, Any]:
        alive = self.dnsmasq is not None and self.dnsmasq.poll() is None
        return {
            "address": self.address,
            "dhcp": {
                "range": [self.first, self.last],
                "running": alive,
                **leasefile.report(self.leasefile, self.lease_secs),
            },
            "devices": self.devices(),
            "pid": os.getpid(),
        }
