"""The controller's core: every decision, no I/O. Its driver (`driver.py`, the
os-ken app in `controller.py`) feeds it events with the time (`now`, a monotonic
clock) and a `SwitchIO` for the switch concerned, and hands its reports to the
orchestrator; the unit tests do the same with an in-memory switch.

    take_view(data, now)          a new view/intents version from the orchestrator
    settle(now)                   the full compile after a burst of host moves
    connected(dpid) / gone(...)   a switch's session starts or ends
    reconcile(keeper, io, now)    one step of keeping that switch's table (keeper.py)
    packet_in(dpid, io, ...)      a frame the switch sent up (below)
    port_up(dpid, io, port)       a port came up that the view does not know yet

A packet-in, by the port it came from:

    instance port, gratuitous ARP    a migrated instance at its cut-over: steer to
                                     this port now, ahead of the view; once every
                                     switch holds it, report InstanceMoved
    instance port, other ARP request proxy ARP: answer with the known MAC, or a
                                     virtual router's
    access port (or unknown), a      report HostSeen once; a known host on a new
    frame from a MAC                 port gets its flows there (the packet is put
                                     back behind them); else, once the host shows
                                     an IPv4 address, its unmatched packets are
                                     dropped at the switch for a while
    anything else                    ignored (node links, local ports)

Methods that return True changed what the switches should hold: the driver then
wakes every switch's thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from netfate.orchestrator.sdn import frames
from netfate.orchestrator.sdn.brain import Brain
from netfate.orchestrator.sdn.compile import PRIO_DISCOVERY, FlowSpec, ToController
from netfate.orchestrator.sdn.intents import DISCOVERY_COOKIE, ViewAndIntents
from netfate.orchestrator.sdn.keeper import Step, SwitchKeeper, Timers
from netfate.orchestrator.sdn.reports import HostSeen, InstanceMoved, Report, VersionInstalled
from netfate.orchestrator.sdn.switch import Reinject, SwitchIO
from netfate.proto import arp

log = logging.getLogger("netfate.sdn")

PRIO_SUPPRESS = 2
VIRTUAL_ROUTER_MAC = "02:4e:46:00:00:01"
INSTALL_PATIENCE_S = 2.0
"""Packet-ins of a host whose flows are on their way are ignored this long."""
NEW_PORT_S = 30
"""How long a port the view does not know yet is listened to (its agent reports it)."""
EARLY_ANNOUNCE_S = 5.0
"""How long an instance's gratuitous ARP from a port the view does not give it yet is
kept: a migration's copy can cut over before its agent's report of the port (a warm
standby's, relabelled at the take) reached the view; the view that has the port then
moves the steering at once, instead of at the copy's next announcement (up to 1 s
later, or none)."""


class ControllerCore:
    def __init__(self, report: Callable[[Report], None], timers: Timers | None = None) -> None:
        self.report = report
        self.timers = timers or Timers()
        self.brain = Brain()
        self.lock = threading.Lock()
        self.keepers: dict[int, SwitchKeeper] = {}
        self.seen: set[tuple[str, int, str, str | None]] = set()
        # (node, ofport, mac) -> since when its flows are being installed. An entry
        # whose switch dropped mid-install is never cleared: it expires instead.
        self.installing: dict[tuple[str, int, str], float] = {}
        self.reported_version: str | None = None
        # (generation, callback): run once every switch holds that generation
        self.gen_waiters: list[tuple[int, Callable[[float], None]]] = []
        # instance MAC -> (node, ofport, when): a gratuitous ARP the view could not
        # place yet (EARLY_ANNOUNCE_S)
        self.early: dict[str, tuple[str, int, float]] = {}

    # the orchestrator's view -----------------------------------------------------

    def take_view(self, data: ViewAndIntents) -> bool:
        if not self.brain.update(data):
            return False
        log.info("view/intents version %s: %s", data.version, self.brain.summary())
        self._place_early()
        return True

    def _place_early(self) -> None:
        """Announcements that came ahead of the view: the ones it now places move
        the steering (reported from the announcement's time); the rest wait, until
        EARLY_ANNOUNCE_S after it (the newest announcement of a MAC stands)."""
        with self.lock:
            early, self.early = self.early, {}
        if not early:
            return
        newest = max(t for _, _, t in early.values())
        for mac, (node, ofport, t_in) in early.items():
            if newest - t_in > EARLY_ANNOUNCE_S:
                continue
            if self.brain.instance_at(mac, node, ofport, t_in):
                self._when_moved(mac, node, ofport, t_in)
                continue
            port = self.brain.port(node, ofport)
            owner = self.brain.known(mac)
            if owner is not None and port is not None and port.peer == f"instance:{owner[1]}":
                continue  # placed there already (by the view, or an announcement since)
            with self.lock:
                self.early.setdefault(mac, (node, ofport, t_in))

    def _remember_early(self, mac: str, node: str, ofport: int, now: float) -> None:
        """An instance's gratuitous ARP from a port the view does not give it (yet)."""
        owner = self.brain.known(mac)
        if owner is None or owner[0] != "instance":
            return
        with self.lock:
            self.early = {m: e for m, e in self.early.items() if now - e[2] <= EARLY_ANNOUNCE_S}
            self.early[mac] = (node, ofport, now)

    def settle(self, now: float) -> bool:
        return self.brain.settle(now)

    # switches -----------------------------------------------------------------------

    def connected(self, dpid: int) -> SwitchKeeper:
        """A switch's session began: a new keeper, which reads its table first."""
        keeper = SwitchKeeper(dpid, self.timers)
        with self.lock:
            self.keepers[dpid] = keeper
        return keeper

    def gone(self, keeper: SwitchKeeper) -> None:
        with self.lock:
            if self.keepers.get(keeper.dpid) is keeper:
                del self.keepers[keeper.dpid]

    def reconcile(self, keeper: SwitchKeeper, io: SwitchIO, now: float) -> Step:
        step = keeper.step(self.brain, io, now, self.report)
        if step.synced:
            self.check_installed(step.done_at)
        return step

    def check_installed(self, now: float) -> None:
        """Run what waited for every switch of the view to hold a generation, and tell
        the orchestrator once they hold the latest view version (so "intent accepted"
        can be told from "flows in place")."""
        vg = self.brain.version_generation
        dpids = self.brain.dpids()
        with self.lock:
            low = min(
                (k.installed_generation if (k := self.keepers.get(d)) else -1 for d in dpids),
                default=-1,
            )
            due = [fn for g, fn in self.gen_waiters if g <= low]
            self.gen_waiters = [(g, fn) for g, fn in self.gen_waiters if g > low]
        for fn in due:
            fn(now)
        if vg is None or vg[0] == self.reported_version:
            return
        version, generation = vg
        if low >= generation:
            self.reported_version = version
            self.report(VersionInstalled(version))

    # events from a switch -------------------------------------------------------------

    def port_up(self, dpid: int, io: SwitchIO, port_no: int) -> None:
        """Ports come and go with instances and hosts; the agents report them and the
        view follows, tens of milliseconds later. Meanwhile a new port that is up is
        listened to, so a known host plugged in there is placed at its first packet
        (as on a free port) instead of losing what it sends until then."""
        node = self.brain.node_for(dpid)
        if node is None or self.brain.port(node, port_no) is not None:
            return
        listen = FlowSpec(
            PRIO_DISCOVERY, (("in_port", port_no),), (ToController(),), DISCOVERY_COOKIE
        )
        io.flow_add(listen, NEW_PORT_S)

    def packet_in(self, dpid: int, io: SwitchIO, in_port: int, data: bytes, now: float) -> bool:
        node = self.brain.node_for(dpid)
        info = frames.parse_packet(data)
        if node is None or info is None:
            return False
        port = self.brain.port(node, in_port)
        kind = port.peer_kind if port is not None else None
        mac = info.eth_src.lower()
        if kind == "instance":
            if not info.arp_request or not info.arp_tpa or not info.ip:
                return False
            if info.gratuitous:
                # An instance announcing itself, as a migrated copy does at its
                # cut-over. Steer to it at once instead of after the report.
                if not self.brain.instance_at(mac, node, in_port, now):
                    if port is not None and port.peer != f"instance:{self._owner(mac)}":
                        self._remember_early(mac, node, in_port, now)
                    return False
                with self.lock:
                    self.early.pop(mac, None)
                self._when_moved(mac, node, in_port, now)
                return True
            self._proxy_arp(io, in_port, info.eth_src, info.ip, info.arp_tpa)
            return False
        if kind is None and info.gratuitous:
            self._remember_early(mac, node, in_port, now)  # a port the view lacks yet
        if kind not in ("host", None):
            return False  # node links and local ports: nothing to discover there
        since = self.installing.get((node, in_port, mac))
        if since is not None and now - since < INSTALL_PATIENCE_S:
            return False  # more packets of a host whose flows are on their way
        key = (node, in_port, mac, info.ip)
        if key not in self.seen:
            self.seen.add(key)
            self.report(
                HostSeen(
                    node=node,
                    port=port.name if port else str(in_port),
                    ofport=in_port,
                    mac=mac,
                    ip=info.ip,
                    known_as=(self.brain.known(mac) or ("", ""))[1] or None,
                )
            )
        if self.brain.host_at(mac, node, in_port, now):
            self._when_placed(dpid, node, in_port, mac, data, now)
            return True
        if info.ip is None:
            return False  # IPv6 chatter, DHCP: keep listening until the host shows an IPv4 address
        # Nothing to install: stop this host's unmatched traffic reaching us for a while.
        sup = FlowSpec(
            PRIO_SUPPRESS, (("eth_src", mac), ("in_port", in_port)), (), DISCOVERY_COOKIE
        )
        io.flow_add(sup, self.timers.suppress_s)
        return False

    def _when_placed(
        self, dpid: int, node: str, in_port: int, mac: str, data: bytes, t_in: float
    ) -> None:
        """A host's flows now lead to where it was seen: its first packet is not lost,
        it goes through them (behind their barrier). Only the switch that raised the
        packet-in carries it; the others get their flows in parallel."""
        where = (node, in_port, mac)
        self.installing[where] = t_in

        def done(at: float) -> None:
            self.installing.pop(where, None)
            log.info("host %s: flows installed %.2f ms after its packet-in", mac, 1e3 * (at - t_in))

        with self.lock:
            keeper = self.keepers.get(dpid)
        if keeper is not None:
            keeper.when_installed(self.brain.generation, Reinject(in_port, data), done)

    def _owner(self, mac: str) -> str:
        return (self.brain.known(mac) or ("", ""))[1]

    def _when_moved(self, mac: str, node: str, ofport: int, t_in: float) -> None:
        """Once every switch holds the flows toward the instance's new port, tell the
        orchestrator when (the event log's `steering_moved`: a migration's cut-over
        as the network saw it)."""
        generation = self.brain.generation
        iid = (self.brain.known(mac) or ("", ""))[1]

        def then(at: float) -> None:
            ms = 1e3 * (at - t_in)
            log.info("instance %s announced on %s/%d: steering moved in %.2f ms",
                     iid, node, ofport, ms)  # fmt: skip
            self.report(InstanceMoved(iid, node, ofport, ms))

        with self.lock:
            self.gen_waiters.append((generation, then))

    def _proxy_arp(
        self, io: SwitchIO, in_port: int, asker_mac: str, asker_ip: str, target_ip: str
    ) -> None:
        # An instance forwards for others and resolves whatever its routes say (a
        # destination, its gateway). Steering rewrites the destination MAC at every
        # stage, so any answer works; a known address gets its real MAC, anything else
        # a fixed virtual one. Traffic no intent allows is dropped either way, and an
        # intent's own ARP flows (priority 35 and up) win over this rule (priority 5).
        target_mac = self.brain.mac_for_ip(target_ip) or VIRTUAL_ROUTER_MAC
        frame = arp.reply(
            asker_mac=asker_mac, asker_ip=asker_ip, target_mac=target_mac, target_ip=target_ip
        )
        io.packet_out(in_port, frame)
