"""The personal firewall: one user's rule set, enforced statefully with nftables.

Data path: a one-armed router. The instance has one interface (the platform gives
one, on its node's bridge); frames of the user arrive addressed to the instance's
MAC (the SDN steering intent rewrites them so, or the user's gateway is the
instance), the kernel routes them out of the same interface to the next hop, and
nftables' forward hook decides. ICMP redirects are off (the kernel would otherwise
tell the user to bypass us, since in and out are the same link) and so is
reverse-path filtering. With `tcp_loose` off, a TCP packet that matches no
connection-tracking entry is `invalid` and dropped: an established connection
lives on here only because its entry was carried over (see export/import).

State (migration): the rule set and its version, the conntrack entries, the
traffic counters and the last time a packet of the user was seen.

Accounting channel: every `interval` seconds an active firewall sends a RADIUS
Accounting-Request (Interim-Update) to the orchestrator with the user's octet and
packet counters and the rule-set version it enforces. The orchestrator learns the
last packet time from it (idle release), and when a newer rule set exists it
answers with that rule set in netfate Vendor-Specific attributes (authenticated
like every response). That is how a rule change reaches a running firewall: the
platform has no operation to reconfigure a running instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import socket
import time
from pathlib import Path
from typing import Any

from netfate.host import links
from netfate.host.netlink import replace_neighbours
from netfate.host.nft import NftError
from netfate.host.nft import apply as nft_apply
from netfate.host.nft import preload as nft_preload
from netfate.host.nft import query as nft_query
from netfate.vnf.firewall import conntrack
from netfate.vnf.firewall.rules import TABLE, RuleError, RuleSet, compile_nft, parse_ruleset
from netfate.vnf.runtime import Context, Function

log = logging.getLogger("netfate.vnf.firewall")

# netfate vendor sub-attributes (see proto.radius.packet.NETFATE_VENDOR)
VSA_RULES_VERSION = 1
VSA_RULES_CHUNK = 2
VSA_LAST_PACKET = 3
# The firewall's own accounting names it NAS-Identifier "fw:<instance>" (a portal
# names its node): the server keeps it apart from users' logins by this prefix.
NAS_PREFIX = "fw:"

nft_preload()  # imported by a warm standby too: its take loads nothing


def sysctl(key: str, value: str) -> None:
    # /proc/sys/net shows the namespace of the process: this instance's own.
    with contextlib.suppress(OSError):
        Path("/proc/sys", key.replace(".", "/")).write_text(value)


def counters_doc(user_ip: str) -> list[dict[str, Any]]:
    """Named counters of the user's traffic, counted before any verdict."""
    t = {"family": "inet", "table": TABLE}
    return [
        {"add": {"counter": {**t, "name": "user_out"}}},
        {"add": {"counter": {**t, "name": "user_in"}}},
        {
            "insert": {
                "rule": {
                    **t,
                    "chain": "forward",
                    "expr": [
                        {
                            "match": {
                                "op": "==",
                                "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                                "right": user_ip,
                            }
                        },
                        {"counter": "user_in"},
                    ],
                }
            }
        },
        {
            "insert": {
                "rule": {
                    **t,
                    "chain": "forward",
                    "expr": [
                        {
                            "match": {
                                "op": "==",
                                "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                "right": user_ip,
                            }
                        },
                        {"counter": "user_out"},
                    ],
                }
            }
        },
    ]


def read_counters() -> dict[str, int]:
    """The user's counters, read in this process (libnftables: no `nft` spawned; a
    migration's snapshot and final state each read them)."""
    out = {"in_packets": 0, "in_bytes": 0, "out_packets": 0, "out_bytes": 0}
    try:
        doc = nft_query(f"list counters table inet {TABLE}")
    except (NftError, ValueError):
        return out
    for item in doc.get("nftables", []):
        c = item.get("counter")
        if isinstance(c, dict) and c.get("name") in ("user_in", "user_out"):
            d = "in" if c["name"] == "user_in" else "out"
            out[f"{d}_packets"] = int(c.get("packets", 0))
            out[f"{d}_bytes"] = int(c.get("bytes", 0))
    return out


MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def neighbours(ifname: str = "eth0") -> list[list[str]]:
    """Resolved IPv4 neighbours of `ifname` ([ip, mac]), from /proc/net/arp."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/arp").read_text().splitlines()[1:]:
            f = line.split()
            # IP address, HW type, Flags, HW address, Mask, Device; 0x2: complete
            if len(f) >= 6 and f[5] == ifname and int(f[2], 16) & 0x2:
                out.append([f[0], f[3].lower()])
    return out


def learn_neighbours(entries: list[Any], ifname: str = "eth0") -> int:
    """Take over a migrated peer's neighbours (as stale: used at once, checked
    later), so the first packets at the new place do not wait for ARP."""
    pairs = []
    for e in entries:
        if not (isinstance(e, list) and len(e) == 2 and MAC_RE.match(str(e[1]))):
            continue
        try:
            ip = ipaddress.IPv4Address(str(e[0]))
        except ValueError:
            continue
        pairs.append((str(ip), str(e[1])))
    # rtnetlink from this process (`ip neigh replace ... nud stale`): no `ip` spawned.
    with contextlib.suppress(OSError):
        replace_neighbours(ifname, pairs)
    return len(pairs)


class Firewall(Function):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        cfg = ctx.config
        self.user = str(cfg.get("user", ""))
        self.user_ip = str(cfg.get("user_ip", ""))
        self.ruleset: RuleSet = parse_ruleset(cfg.get("rules", {}))
        self.rules_version = int(cfg.get("rules_version", 0))
        self.tcp_loose = bool(cfg.get("tcp_loose", False))
        self.acct: dict[str, Any] = dict(cfg.get("accounting") or {})
        self.counters = {"in_packets": 0, "in_bytes": 0, "out_packets": 0, "out_bytes": 0}
        self.base = dict(self.counters)  # counts carried over from earlier places
        self.last_packet_at = 0.0
        self.applied_at = 0.0
        self.refused = 0
        self.imported = 0
        self.import_errors: list[str] = []
        self._imported_keys: set[tuple[str, str, str, int, int]] = set()
        self._learned = False
        self._acct_task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    # ---------------------------------------------------------------- rules

    def apply(self, rs: RuleSet, version: int) -> None:
        """Replace the enforced rule set atomically (raises, leaving the old one)."""
        if not self.user_ip:
            raise RuleError("no user_ip configured")
        doc = compile_nft(rs, self.user_ip)
        doc["nftables"].extend(counters_doc(self.user_ip))
        nft_apply(doc)
        self.ruleset, self.rules_version = rs, version
        self.applied_at = time.time()
        # Counters restart with the table: fold what they had into the base.
        for k, v in self.counters.items():
            self.base[k] += v
        self.counters = dict.fromkeys(self.counters, 0)

    async def start(self) -> None:
        links.one_armed_router()
        for scope in ("all", "default"):
            sysctl(f"net.ipv4.conf.{scope}.rp_filter", "0")
        await asyncio.to_thread(self.apply, self.ruleset, self.rules_version)
        # The conntrack sysctls exist once the table above made conntrack track here.
        sysctl("net.netfilter.nf_conntrack_tcp_loose", "1" if self.tcp_loose else "0")
        if self.acct.get("server"):
            self._acct_task = asyncio.create_task(self._accounting())

    async def stop(self) -> None:
        if self._acct_task is not None:
            self._acct_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._acct_task
        if self._sock is not None:
            self._sock.close()

    # ---------------------------------------------------------------- state

    def totals(self) -> dict[str, int]:
        return {k: self.base[k] + self.counters[k] for k in self.counters}

    def export_state(self) -> dict[str, Any]:
        with contextlib.suppress(Exception):
            self.counters = read_counters()
        return {
            "user": self.user,
            "user_ip": self.user_ip,
            "rules": self.ruleset.to_json(),
            "rules_version": self.rules_version,
            "conntrack": [e.to_json() for e in conntrack.dump()],
            "neighbours": neighbours(),
            "counters": self.totals(),
            "last_packet_at": self.last_packet_at,
        }

    def import_state(self, state: dict[str, Any]) -> None:
        """Take over a peer's state. Called twice in a migration: the snapshot while
        the source still serves, then the final state after its freeze. The second
        call is on the downtime's critical path, so it only does what changed: the
        rule set is applied only if it differs, and only connections not imported
        with the snapshot are inserted (existing entries keep being updated by the
        kernel from the packets they see)."""
        rs = parse_ruleset(state.get("rules", {}))
        version = int(state.get("rules_version", 0))
        user_ip = str(state.get("user_ip") or self.user_ip)
        if (
            not self.applied_at
            or rs != self.ruleset
            or version != self.rules_version
            or user_ip != self.user_ip
        ):
            self.user_ip = user_ip
            self.apply(rs, version)
        if not self._learned and isinstance(state.get("neighbours"), list):
            self._learned = True
            learn_neighbours(state["neighbours"])  # with the snapshot: off the cut-over
        entries = [conntrack.Entry.from_json(e) for e in state.get("conntrack", [])]
        fresh = [e for e in entries if e.key() not in self._imported_keys]
        ok, errors = conntrack.insert(fresh)
        self._imported_keys |= {e.key() for e in fresh}
        self.imported += ok
        self.import_errors = (self.import_errors + errors)[-20:]
        counts = state.get("counters") or {}
        self.base = {k: int(counts.get(k, 0)) for k in self.counters}
        self.counters = dict.fromkeys(self.counters, 0)
        self.last_packet_at = float(state.get("last_packet_at", 0.0))

    def stats(self) -> dict[str, Any]:
        with contextlib.suppress(Exception):
            self.counters = read_counters()
        return {
            "user": self.user,
            "rules": len(self.ruleset.rules),
            "rules_version": self.rules_version,
            "counters": self.totals(),
            "last_packet_at": self.last_packet_at,
            "imported_conntrack": self.imported,
            "import_errors": self.import_errors[:5],
            "refused_rule_sets": self.refused,
        }

    # ---------------------------------------------------------------- accounting

    async def _accounting(self) -> None:
        from netfate.proto.radius import AcctStatus, Attr, ClientCore
        from netfate.proto.radius.packet import NETFATE_VENDOR, U32, vsa, vsas

        host, _, port = str(self.acct["server"]).rpartition(":")
        secret = str(self.acct.get("secret", "")).encode()
        interval = float(self.acct.get("interval", 1.0))
        core = ClientCore(secret, timeout=max(interval, 0.5), retries=0)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        self._sock = sock
        addr = (host, int(port))
        seen = -1
        while True:
            await asyncio.sleep(interval)
            if not self.active:
                continue
            try:
                self.counters = await asyncio.to_thread(read_counters)
            except Exception:
                continue
            tot = self.totals()
            packets = tot["in_packets"] + tot["out_packets"]
            if packets != seen:
                if seen >= 0 or packets > 0:
                    self.last_packet_at = time.time()
                seen = packets
            attrs: list[tuple[int, Any]] = [
                (Attr.ACCT_STATUS_TYPE, int(AcctStatus.INTERIM_UPDATE)),
                (Attr.ACCT_SESSION_ID, f"{self.ctx.instance}"),
                (Attr.USER_NAME, self.user),
                (Attr.NAS_IDENTIFIER, NAS_PREFIX + self.ctx.instance),
                (Attr.ACCT_INPUT_OCTETS, tot["out_bytes"] & 0xFFFFFFFF),
                (Attr.ACCT_OUTPUT_OCTETS, tot["in_bytes"] & 0xFFFFFFFF),
                (Attr.ACCT_INPUT_PACKETS, tot["out_packets"] & 0xFFFFFFFF),
                (Attr.ACCT_OUTPUT_PACKETS, tot["in_packets"] & 0xFFFFFFFF),
                vsa(VSA_RULES_VERSION, U32.pack(self.rules_version & 0xFFFFFFFF)),
                vsa(VSA_LAST_PACKET, U32.pack(int(self.last_packet_at) & 0xFFFFFFFF)),
            ]
            if self.user_ip:
                attrs.append((Attr.FRAMED_IP_ADDRESS, self.user_ip))
            try:
                _, wire = core.accounting_request(attrs, time.monotonic())
                await loop.sock_sendto(sock, wire, addr)
                data = await asyncio.wait_for(loop.sock_recv(sock, 4096), interval)
            except (OSError, TimeoutError, ValueError):
                core.poll(time.monotonic() + 3600)  # forget what went unanswered
                continue
            for ev in core.receive(data, time.monotonic()):
                subs = vsas(ev.response, NETFATE_VENDOR)
                version = next((v for t, v in subs if t == VSA_RULES_VERSION), None)
                chunks = b"".join(v for t, v in subs if t == VSA_RULES_CHUNK)
                if version is None or not chunks:
                    continue
                new_version = int.from_bytes(version, "big")
                if new_version == self.rules_version:
                    continue
                try:
                    rs = parse_ruleset(json.loads(chunks))
                    await asyncio.to_thread(self.apply, rs, new_version)
                    log.info("rule set version %d applied", new_version)
                except (RuleError, NftError, ValueError) as e:
                    self.refused += 1
                    log.warning("rule set version %d refused: %s", new_version, e)
