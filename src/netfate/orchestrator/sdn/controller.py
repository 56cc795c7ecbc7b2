"""The OpenFlow 1.3 controller: an os-ken application, run by `process.py` in its own process.

Threads (os-ken 4.x's native hub: real threads, no monkey-patching):

    os-ken recv thread per switch  parses messages, hands them to this app's queue
    app event thread               the @handler methods below; they never block
    Switch thread per switch       reads the table, plans, sends, waits for the barrier
    poller                         GET /api/v1/sdn/view: view + intents, recompile on change
    outbox                         POST /api/v1/sdn/events: HostSeen, flow-table snapshots

The orchestrator is the source of truth. Until the first view arrives the
controller touches no switch: a controller that restarts must not wipe the
tables that keep forwarding in secure mode. After that, each switch is
reconciled on connect (its table is read back and corrected), whenever the
view or intents change, and on every snapshot (so drift is repaired too).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast

import httpx
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    HANDSHAKE_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3

from netfate.orchestrator.sdn import metrics as sdn_metrics
from netfate.orchestrator.sdn import ofp, wire
from netfate.orchestrator.sdn.compile import (
    PRIO_DISCOVERY,
    CompileResult,
    FlowSpec,
    GroupSpec,
    ToController,
    compile_intents,
)
from netfate.orchestrator.sdn.intents import (
    DISCOVERY_COOKIE,
    ConnectivityIntent,
    Endpoint,
    HostView,
    Intent,
    PortView,
    ReplicationIntent,
    SteeringIntent,
    TunnelIntent,
    ViewAndIntents,
)
from netfate.orchestrator.sdn.reconcile import (
    FlowEntry,
    Plan,
    apply_plan,
    is_netfate_group,
    owned,
    plan,
    plan_from_cache,
)

log = logging.getLogger("netfate.sdn")

PRIO_SUPPRESS = 2
VIRTUAL_ROUTER_MAC = "02:4e:46:00:00:01"
INSTALL_PATIENCE_S = 2.0
PARTIAL_ABOVE = 50
"""With more intents than this, a host move first recompiles only that host's intents."""
SETTLE_AFTER_S = 2.0
"""The full compile after partial ones waits until host moves pause this long."""
LONG_POLL_S = 1.0
"""The view's long poll is held at most this long, so settle() is looked at that often."""
NEW_PORT_S = 30
"""How long a port the view does not know yet is listened to (its agent reports it)."""


def mentions_host(it: Intent, name: str) -> bool:
    ep = Endpoint("host", name)
    if isinstance(it, ConnectivityIntent | TunnelIntent):
        return ep in (it.a, it.b)
    if isinstance(it, SteeringIntent):
        return it.host == name or it.to == ep
    if isinstance(it, ReplicationIntent):
        return it.source == ep or ep in it.targets
    return False


def mentions_instance(it: Intent, iid: str) -> bool:
    ep = Endpoint("instance", iid)
    if isinstance(it, ConnectivityIntent | TunnelIntent):
        return ep in (it.a, it.b)
    if isinstance(it, SteeringIntent):
        return iid in it.chain or it.to == ep
    if isinstance(it, ReplicationIntent):
        return it.source == ep or ep in it.targets
    return False


ETH_ARP = 0x0806

F = TypeVar("F", bound=Callable[..., Any])


def handler(ev_cls: Any, dispatchers: Any) -> Callable[[F], F]:
    """os-ken's set_ev_cls, typed (os-ken ships no annotations)."""
    return cast(Callable[[F], F], set_ev_cls(ev_cls, dispatchers))


@dataclass
class Settings:
    orchestrator: str
    """Base URL, e.g. http://127.0.0.1:8080 (the API lives under /api/v1)."""
    poll_interval_s: float = 0.5
    snapshot_interval_s: float = 2.0
    """How often each switch's table is read back (counters, drift repair)."""
    post_interval_s: float = 5.0
    """How often a table is sent to the orchestrator when its flows did not change."""
    reply_timeout_s: float = 5.0
    suppress_s: int = 10
    """How long packet-ins from one (port, MAC) are dropped at the switch once handled."""


SETTINGS: Settings | None = None
"""Set by `process.py` before os-ken instantiates the app."""


# --- what the switches should hold ---------------------------------------------


class Brain:
    """View, intents, and where the controller has seen hosts; compiles under a lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.data: ViewAndIntents | None = None
        self.overrides: dict[str, tuple[str, int]] = {}
        self.result: CompileResult | None = None
        self.generation = 0
        self.version_generation: tuple[str, int] | None = None
        """The last view version taken, and the generation of its compile."""
        self.full_due = False
        self.last_partial = 0.0
        self._dpid_node: dict[int, str] = {}
        self._ports: dict[tuple[str, int], PortView] = {}
        self._by_mac: dict[str, tuple[str, str]] = {}  # mac -> (kind, name)
        self._by_ip: dict[str, str] = {}  # ip -> mac
        self._hosts: dict[str, HostView] = {}

    @property
    def ready(self) -> bool:
        return self.result is not None

    @property
    def version(self) -> str | None:
        with self.lock:
            return self.data.version if self.data is not None else None

    def update(self, data: ViewAndIntents) -> bool:
        with self.lock:
            if self.data is not None and data.version and data.version == self.data.version:
                return False
            self.data = data
            self.full_due = False  # the compile below is a full one
            view = data.view
            self._dpid_node = {n.dpid: n.name for n in view.nodes if n.dpid is not None}
            self._ports = {(n.name, p.ofport): p for n in view.nodes for p in n.ports}
            self._by_mac = {h.mac: ("host", h.name) for h in view.hosts if h.mac}
            self._by_mac.update({i.mac: ("instance", i.id) for i in view.instances if i.mac})
            self._by_ip = {h.ip: h.mac for h in view.hosts if h.ip and h.mac}
            self._by_ip.update({i.ip: i.mac for i in view.instances if i.ip and i.mac})
            self._hosts = {h.name: h for h in view.hosts}
            # A place seen ahead of the view holds while its port does (the view
            # catches up); a port that is gone or has changed hands ends it.
            for mac, where in list(self.overrides.items()):
                port = self._ports.get(where)
                owner = self._by_mac.get(mac)
                if (
                    port is None
                    or owner is None
                    or (owner[0] == "instance" and port.peer != f"instance:{owner[1]}")
                ):
                    del self.overrides[mac]
            self._recompile()
            if data.version:
                self.version_generation = (data.version, self.generation)
            return True

    def _recompile(self) -> None:
        if self.data is None:
            return
        t0 = time.perf_counter()
        self.result = compile_intents(self.data.view, self.data.intents, self.overrides)
        self.generation += 1
        log.debug(
            "compiled generation %d in %.1f ms", self.generation, 1e3 * (time.perf_counter() - t0)
        )
        for iid, why in self.result.errors.items():
            log.warning("intent %s refused: %s", iid, why)

    def dpids(self) -> set[int]:
        with self.lock:
            return set(self._dpid_node)

    def node_for(self, dpid: int) -> str | None:
        with self.lock:
            return self._dpid_node.get(dpid)

    def port(self, node: str, ofport: int) -> PortView | None:
        with self.lock:
            return self._ports.get((node, ofport))

    def mac_for_ip(self, ip: str) -> str | None:
        with self.lock:
            return self._by_ip.get(ip)

    def known(self, mac: str) -> tuple[str, str] | None:
        with self.lock:
            return self._by_mac.get(mac)

    def desired(self, node: str) -> tuple[set[FlowSpec], set[GroupSpec], int] | None:
        with self.lock:
            if self.result is None:
                return None
            # Results are replaced, never mutated: handing out the sets is safe.
            return (
                self.result.flows.get(node, set()),
                self.result.groups.get(node, set()),
                self.generation,
            )

    def host_at(self, mac: str, node: str, ofport: int) -> bool:
        """Record that a known host was seen at (node, ofport). True if flows change."""
        with self.lock:
            if self.data is None or self._by_mac.get(mac, ("", ""))[0] != "host":
                return False
            if self.overrides.get(mac) == (node, ofport):
                return False
            name = self._by_mac[mac][1]
            if mac not in self.overrides and self._view_location(name) == (node, ofport):
                return False  # the view already has it there
            port = self._ports.get((node, ofport))
            owner = port.peer_name if port is not None else None
            if owner and owner != name and owner in self._hosts:
                # Another host's own port: a copied MAC must not pull this host's
                # flows (and its traffic) there. Users move to anonymous ports.
                log.warning("MAC %s of host %s seen on %s's port: ignored", mac, name, owner)
                return False
            self.overrides[mac] = (node, ofport)
            self._recompile_for_host(name)
            return True

    def instance_at(self, mac: str, node: str, ofport: int) -> bool:
        """A migrated instance announced itself from (node, ofport), one of its own
        ports: steer to it now, ahead of the view (which follows once its agent
        reports the migration done). True if flows change."""
        with self.lock:
            if self.data is None or self._by_mac.get(mac, ("", ""))[0] != "instance":
                return False
            iid = self._by_mac[mac][1]
            port = self._ports.get((node, ofport))
            if port is None or port.peer != f"instance:{iid}":
                return False
            if self.overrides.get(mac) == (node, ofport):
                return False
            view_node = next((i.node for i in self.data.view.instances if i.id == iid), None)
            if mac not in self.overrides and view_node == node:
                return False  # the view already has it there
            self.overrides[mac] = (node, ofport)
            self._recompile_for(lambda it: mentions_instance(it, iid))
            return True

    def _recompile_for_host(self, name: str) -> None:
        self._recompile_for(lambda it: mentions_host(it, name))

    def _recompile_for(self, mentions: Callable[[Intent], bool]) -> None:
        """An endpoint moved: recompile only its intents now, everything soon after.

        With thousands of intents a full compile takes a good part of a second,
        which a user who just plugged in would wait for. The intents that name the
        host are compiled alone and spliced in by cookie; `full_due` makes the
        poller run the full compile next (it also settles flows shared with other
        intents and conflicts across them, which a partial compile cannot see).
        """
        if self.data is None or self.result is None or len(self.data.intents) <= PARTIAL_ABOVE:
            self._recompile()
            return
        mine = [it for it in self.data.intents if mentions(it)]
        part = compile_intents(self.data.view, mine, self.overrides)
        gone = {it.cookie for it in mine}
        old = self.result
        flows = {
            n: {f for f in fs if f.cookie not in gone} | part.flows.get(n, set())
            for n, fs in old.flows.items()
        }
        groups = {
            n: {g for g in gs if g.cookie not in gone} | part.groups.get(n, set())
            for n, gs in old.groups.items()
        }
        pending = {k: v for k, v in old.pending.items() if k not in {it.id for it in mine}}
        pending.update(part.pending)
        self.result = CompileResult(
            flows=flows,
            groups=groups,
            pending=pending,
            errors={**old.errors, **part.errors},
            flow_count={**old.flow_count, **part.flow_count},
        )
        self.generation += 1
        self.full_due = True
        self.last_partial = time.monotonic()

    def settle(self) -> bool:
        """Run the full compile a partial one asked for. True if its result was taken.

        It runs outside the lock (it may take most of a second): a host move in the
        meantime bumps the generation, and this result is then thrown away and the
        full compile asked for again.
        """
        with self.lock:
            if not self.full_due or self.data is None:
                return False
            if time.monotonic() - self.last_partial < SETTLE_AFTER_S:
                return False  # hosts are still arriving: do not compete with them for the CPU
            self.full_due = False
            data, overrides, generation = self.data, dict(self.overrides), self.generation
        result = compile_intents(data.view, data.intents, overrides)
        with self.lock:
            if self.generation != generation or self.data is not data:
                self.full_due = self.full_due or self.data is data
                return False
            self.result = result
            self.generation += 1
            return True

    def intent_names(self, cookies: set[int]) -> set[str]:
        with self.lock:
            if self.data is None:
                return set()
            return {it.id for it in self.data.intents if it.cookie in cookies}

    def _view_location(self, name: str) -> tuple[str, int] | None:
        h = self._hosts.get(name)
        if h is None:
            return None
        if h.node is not None and h.ofport is not None:
            return (h.node, h.ofport)
        for (node, ofport), p in self._ports.items():
            if p.peer == f"host:{name}":
                return (node, ofport)
        return None

    def summary(self) -> dict[str, Any]:
        with self.lock:
            r = self.result
            if r is None:
                return {}
            return {
                "pending": dict(r.pending),
                "errors": dict(r.errors),
                "flows": dict(r.flow_count),
            }


# --- one switch -----------------------------------------------------------------


class _Waiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.msgs: list[Any] = []


class Switch:
    """Everything about one connected datapath; its thread does the blocking work."""

    def __init__(self, app: NetfateController, dp: Any, dpid: int) -> None:
        self.app = app
        self.dp = dp
        self.dpid = dpid
        self.alive = True
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.waiters: dict[int, _Waiter] = {}
        self.batch_xids: set[int] = set()
        self.batch_errors: list[str] = []
        self.batch_cookies: dict[int, int] = {}  # xid of a flow/group add -> its cookie
        # Cookies whose flows this switch refused, and under which view version: the
        # intent is then kept off this switch entirely (all or nothing) until the
        # view or the intents change.
        self.refused: dict[int, str] = {}
        self.refused_version: str | None = None
        self.installed: set[FlowSpec] | None = None  # None: unknown, read the table first
        self.installed_groups: dict[int, GroupSpec] | None = None
        self.installed_generation = -1
        self.after_install: list[tuple[int, Callable[[], Any], Callable[[], None]]] = []
        self.next_snapshot = 0.0
        self.next_post = 0.0
        self.posted_keys: frozenset[Any] = frozenset()
        self.failures = 0
        self.thread = threading.Thread(target=self._run, name=f"switch-{dpid:x}", daemon=True)

    # called from the app event thread ------------------------------------------

    def on_reply(self, msg: Any) -> None:
        with self.lock:
            w = self.waiters.get(ofp.message_xid(msg))
        if w is None:
            return
        w.msgs.append(msg)
        if not ofp.is_more(msg):
            w.event.set()

    def on_barrier(self, msg: Any) -> None:
        with self.lock:
            w = self.waiters.get(ofp.message_xid(msg))
        if w is not None:
            w.msgs.append(msg)
            w.event.set()

    def on_error(self, msg: Any) -> None:
        text = ofp.error_text(msg)
        with self.lock:
            xid = ofp.message_xid(msg)
            mine = xid in self.batch_xids
            if mine:
                self.batch_errors.append(text)
                cookie = self.batch_cookies.get(xid)
                if cookie is not None:
                    self.refused[cookie] = text
        log.warning("switch %016x: %s%s", self.dpid, text, "" if mine else " (not from a batch)")

    def stop(self) -> None:
        self.alive = False
        with self.lock:
            for w in self.waiters.values():
                w.event.set()
        self.wake.set()

    # the switch's own thread ----------------------------------------------------

    def _request(self, msgs: list[Any]) -> list[list[Any]] | None:
        """Send requests, wait for all their replies (multipart included); None on failure."""
        waiters = []
        with self.lock:
            for m in msgs:
                xid = int(self.dp.set_xid(m))
                w = _Waiter()
                self.waiters[xid] = w
                waiters.append((xid, w))
        try:
            for m in msgs:
                if not self.dp.send_msg(m):
                    return None
            deadline = time.monotonic() + self.app.settings.reply_timeout_s
            for _xid, w in waiters:
                if not w.event.wait(max(0.0, deadline - time.monotonic())) or not self.alive:
                    return None
            return [w.msgs for _x, w in waiters]
        finally:
            with self.lock:
                for xid, _w in waiters:
                    self.waiters.pop(xid, None)

    def read_table(
        self,
    ) -> tuple[list[FlowEntry], dict[int, GroupSpec], list[dict[str, Any]]] | None:
        got = self._request(
            [
                ofp.flow_stats_request(self.dp),
                ofp.group_desc_request(self.dp),
                ofp.port_stats_request(self.dp),
            ]
        )
        if got is None:
            return None
        flows = [ofp.flow_entry_from_stats(s) for m in got[0] for s in m.body]
        groups: dict[int, GroupSpec] = {}
        for m in got[1]:
            for s in m.body:
                g = ofp.group_from_desc(s)
                if g is not None:
                    groups[g.group_id] = g
                elif is_netfate_group(int(s.group_id)):
                    # Not something we would build: an empty stand-in makes plan() rewrite it.
                    groups[int(s.group_id)] = GroupSpec(int(s.group_id), (), 0)
        ports = [ofp.port_stats_to_json(s) for m in got[2] for s in m.body]
        return flows, groups, ports

    def send_batch(self, p: Plan, trailer: list[Any] | None = None) -> bool:
        """Send a plan and wait for its barrier. True if the switch confirmed it without error.

        `trailer` messages (packet-outs) go right behind the barrier request in the
        same write: OpenFlow has the switch finish everything before a barrier
        before it executes what follows, so they meet the new flows without waiting
        for the barrier's round trip.
        """
        dp = self.dp
        parts: list[bytes] = []
        xids: list[int] = []
        group_cookies: dict[int, int] = {}

        def osken(msgs: list[Any]) -> None:
            buf, got = ofp.serialize(dp, msgs)
            parts.append(buf)
            xids.extend(got)

        def packed(make: Callable[[int], bytes], fallback: Callable[[], Any]) -> None:
            xid = ofp.next_xid(dp)
            try:
                parts.append(make(xid))
                xids.append(xid)
            except wire.UnsupportedField:
                osken([fallback()])  # e.g. a stale flow with fields we never emit

        for g in [*p.group_adds, *p.group_mods]:
            osken([ofp.group_mod(dp, g, "add" if g in p.group_adds else "modify")])
            group_cookies[xids[-1]] = g.cookie
        cookies: dict[int, int] = {}
        for f in p.flow_adds:
            packed(lambda x, f=f: wire.flow_add(x, f), lambda f=f: ofp.flow_add(dp, f))  # type: ignore[misc]
            cookies[xids[-1]] = f.cookie
        for d in p.flow_dels:
            packed(
                lambda x, d=d: wire.flow_delete_strict(x, d.table, d.priority, d.match, d.cookie),  # type: ignore[misc]
                lambda d=d: ofp.flow_delete_strict(dp, d.table, d.priority, d.match, d.cookie),  # type: ignore[misc]
            )
        osken([ofp.group_mod(dp, GroupSpec(gid, (), 0), "delete") for gid in p.group_dels])
        osken([ofp.barrier_request(dp)])
        if trailer:
            tail, _ = ofp.serialize(dp, trailer)  # not part of the batch's error accounting
            parts.append(tail)
        buf = b"".join(parts)
        n_msgs = len(xids) - 1
        w = _Waiter()
        with self.lock:
            self.batch_xids = set(xids)
            self.batch_errors = []
            self.batch_cookies = {**group_cookies, **cookies}
            self.waiters[xids[-1]] = w
        try:
            # Chunks keep each queued write bounded; os-ken's send queue holds 16 entries.
            chunk = 1 << 16
            for i in range(0, len(buf), chunk):
                if not self.dp.send(buf[i : i + chunk]):
                    return False
            if not w.event.wait(self.app.settings.reply_timeout_s) or not self.alive:
                return False
        finally:
            with self.lock:
                self.waiters.pop(xids[-1], None)
                self.batch_xids = set()
        if self.batch_errors:
            log.warning(
                "switch %016x: %d errors in a batch of %d",
                self.dpid,
                len(self.batch_errors),
                n_msgs,
            )
            return False
        return True

    def _run(self) -> None:
        while self.alive:
            try:
                self._step()
            except Exception:
                # One switch's trouble (a bad reply, a bug) must not end its thread for good.
                log.exception("switch %016x: reconcile step failed", self.dpid)
                self.installed = None
                time.sleep(min(5.0, 0.2 * 2 ** min(self.failures, 5)))
                self.failures += 1
            if self.alive:
                timeout = max(0.0, self.next_snapshot - time.monotonic())
                self.wake.wait(timeout)
                self.wake.clear()
        log.info("switch %016x: thread ends", self.dpid)

    def _step(self) -> None:
        brain = self.app.brain
        node = brain.node_for(self.dpid)
        if not brain.ready:
            self.next_snapshot = time.monotonic() + self.app.settings.snapshot_interval_s
            return
        if node is None:
            log.info("switch %016x is not in the view yet; leaving its table alone", self.dpid)
            self.next_snapshot = time.monotonic() + self.app.settings.snapshot_interval_s
            return
        now = time.monotonic()
        with self.lock:
            waiting = bool(self.after_install)
        # A host waiting for its flows goes first; a big table's read can wait a step.
        snapshot = now >= self.next_snapshot and not waiting
        if self.installed is None or self.installed_groups is None or snapshot:
            read = self.read_table()
            if read is None:
                raise RuntimeError("no reply to the table read")
            flows, groups, ports = read
            specs = {e.spec for e in owned(flows) if e.spec is not None}
            want = brain.desired(node)
            if want is not None:
                # Use the compiler's own objects for flows that match: later diffs of
                # big tables then hit on identity instead of comparing every field.
                same = {f: f for f in want[0]}
                specs = {same.get(f, f) for f in specs}
            self.installed = specs
            self.installed_groups = groups
            # A big table is read less often: reading it may use at most ~5% of the time.
            took = time.monotonic() - now
            self.next_snapshot = now + max(self.app.settings.snapshot_interval_s, 20 * took)
            keys = frozenset((e.cookie, e.priority, e.match) for e in flows)
            if keys != self.posted_keys or now >= self.next_post:
                # Many switches reading every 2 s would flood the orchestrator's
                # database; a changed table is still reported at once.
                self.posted_keys = keys
                self.next_post = now + self.app.settings.post_interval_s
                self._post_snapshot(node, flows, groups, ports)
            actual: list[FlowEntry] | None = flows
        else:
            actual = None
        desired = brain.desired(node)
        if desired is None:
            return
        want_flows, want_groups, generation = desired
        if self.refused:
            if self.refused_version != brain.version:
                self.refused = {}  # the view or the intents changed: try again
            else:
                want_flows = {f for f in want_flows if f.cookie not in self.refused}
                want_groups = {g for g in want_groups if g.cookie not in self.refused}
        if actual is not None:
            p = plan(want_flows, actual, want_groups, self.installed_groups)
        else:
            p = plan_from_cache(want_flows, self.installed, want_groups, self.installed_groups)
        due = self._take_due(generation)
        trailer = [make() for make, _then in due]
        if p:
            t0 = time.perf_counter()
            if not self.send_batch(p, trailer):
                self.installed = None  # read back next time: the batch may be half applied
                if self.refused:
                    self.refused_version = brain.version
                    names = brain.intent_names(set(self.refused))
                    log.warning(
                        "switch %016x (%s) refused flows of %s: keeping those intents off it",
                        self.dpid,
                        node,
                        ", ".join(sorted(names)),
                    )
                    self.app.post_event(
                        {
                            "kind": "install_error",
                            "node": node,
                            "intents": sorted(names),
                            "errors": sorted(set(self.refused.values()))[:10],
                            "time": time.time(),
                        }
                    )
                self.failures += 1
                time.sleep(min(5.0, 0.2 * 2 ** min(self.failures, 5)))
                self.wake.set()
                return
            self.installed = apply_plan(self.installed, p)
            groups_now = dict(self.installed_groups)
            for g in [*p.group_adds, *p.group_mods]:
                groups_now[g.group_id] = g
            for gid in p.group_dels:
                groups_now.pop(gid, None)
            self.installed_groups = groups_now
            log.info(
                "switch %016x (%s): %s confirmed in %.1f ms",
                self.dpid,
                node,
                p.summary(),
                1e3 * (time.perf_counter() - t0),
            )
        elif trailer:
            buf, _ = ofp.serialize(self.dp, trailer)
            self.dp.send(buf)
        self.failures = 0
        self.installed_generation = generation
        for _make, then in due:
            then()
        self.app.check_installed()

    def _post_snapshot(
        self,
        node: str,
        flows: list[FlowEntry],
        groups: dict[int, GroupSpec],
        ports: list[dict[str, Any]],
    ) -> None:
        self.app.post_event(
            {
                "kind": "flows",
                "node": node,
                "dpid": f"{self.dpid:016x}",
                "time": time.time(),
                "flows": [e.to_json() for e in flows],
                "ports": ports,
                "groups": len(groups),
            }
        )

    def _take_due(self, generation: int) -> list[tuple[Callable[[], Any], Callable[[], None]]]:
        with self.lock:
            due = [(m, t) for g, m, t in self.after_install if g <= generation]
            self.after_install = [e for e in self.after_install if e[0] > generation]
        return due

    def when_installed(
        self, generation: int, make: Callable[[], Any], then: Callable[[], None]
    ) -> None:
        """Send the message `make()` builds behind the flows of `generation`, then call `then`."""
        with self.lock:
            self.after_install.append((generation, make, then))
        self.wake.set()


# --- events to the orchestrator --------------------------------------------------


@dataclass
class Outbox:
    """POSTs events in order from its own thread; packet-in handling never waits on HTTP."""

    url: str
    q: queue.Queue[dict[str, Any]] = field(default_factory=lambda: queue.Queue(maxsize=10000))

    def put(self, event: dict[str, Any]) -> None:
        try:
            self.q.put_nowait(event)
        except queue.Full:
            log.warning("event outbox full; dropping a %s event", event.get("kind"))

    def run(self) -> None:
        client = httpx.Client(timeout=5.0)
        failing = False
        while True:
            ev = self.q.get()
            if ev.get("kind") == "host_seen":
                # A host_seen is raised in the middle of installing that host's flows:
                # posting it a moment later keeps HTTP off that path's GIL time.
                time.sleep(0.02)
            for attempt in range(20):
                try:
                    r = client.post(f"{self.url}/api/v1/sdn/events", json=ev)
                    if r.status_code < 500:
                        if r.status_code >= 400:
                            log.warning(
                                "orchestrator refused a %s event: %s", ev.get("kind"), r.text[:200]
                            )
                        failing = False
                        break
                except httpx.HTTPError as e:
                    if not failing:
                        log.warning("cannot post events to the orchestrator: %s", e)
                    failing = True
                if ev.get("kind") == "flows":
                    break  # snapshots are periodic; do not hold up the queue for a stale one
                time.sleep(min(2.0, 0.1 * (attempt + 1)))


# --- the os-ken application ------------------------------------------------------


class NetfateController(app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if SETTINGS is None:
            raise RuntimeError("netfate controller: SETTINGS not configured (use process.run)")
        self.settings: Settings = SETTINGS
        self.brain = Brain()
        self.switches: dict[int, Switch] = {}
        sdn_metrics.attach(self)
        self.switches_lock = threading.Lock()
        self.seen: set[tuple[str, int, str, str | None]] = set()
        # (node, ofport, mac) -> since when its flows are being installed. An entry
        # whose switch dropped mid-install is never cleared: it expires instead.
        self.installing: dict[tuple[str, int, str], float] = {}
        self.reported_version: str | None = None
        # (generation, callback): run once every switch holds that generation
        self.gen_waiters: list[tuple[int, Callable[[], None]]] = []
        self.outbox = Outbox(self.settings.orchestrator.rstrip("/"))
        threading.Thread(target=self.outbox.run, name="outbox", daemon=True).start()
        threading.Thread(target=self._poll, name="poller", daemon=True).start()

    # orchestrator ---------------------------------------------------------------

    def post_event(self, ev: dict[str, Any]) -> None:
        self.outbox.put(ev)

    def _poll(self) -> None:
        url = f"{self.settings.orchestrator.rstrip('/')}/api/v1/sdn/view"
        # A long poll: the orchestrator answers when the version changes (or after
        # LONG_POLL_S), so a migrated instance's flows move within milliseconds.
        client = httpx.Client(timeout=5.0 + LONG_POLL_S)
        failing = False
        while True:
            t0 = time.monotonic()
            try:
                params: dict[str, str | float] = {
                    "since": self.brain.version or "",
                    "wait": LONG_POLL_S,
                }
                r = client.get(url, params=params if self.brain.version else None)
                r.raise_for_status()
                raw = r.json()
                if failing:
                    log.info("orchestrator reachable again")
                failing = False
                version = raw.get("version") if isinstance(raw, dict) else None
                if version and version == self.brain.version:
                    # Unchanged: skip validating thousands of intents twice a second.
                    if self.brain.settle():
                        self.wake_all()
                    # An orchestrator that does not hold the poll is asked at the interval.
                    time.sleep(max(0.0, self.settings.poll_interval_s - (time.monotonic() - t0)))
                    continue
                data = ViewAndIntents.model_validate(raw)
                if self.brain.update(data):
                    log.info("view/intents version %s: %s", data.version, self.brain.summary())
                    self.wake_all()
                elif self.brain.settle():
                    self.wake_all()
            except Exception as e:  # keep the last view; switches keep their flows
                if not failing:
                    log.warning("cannot read the view from %s: %s", url, e)
                failing = True
                time.sleep(self.settings.poll_interval_s)

    def _report_move(self, mac: str, node: str, ofport: int, t_in: float) -> None:
        """Once every switch holds the flows toward the instance's new port, tell the
        orchestrator when (the event log's `steering_moved`: a migration's cut-over
        as the network saw it)."""
        generation = self.brain.generation
        iid = (self.brain.known(mac) or ("", ""))[1]

        def then() -> None:
            ms = 1e3 * (time.perf_counter() - t_in)
            log.info("instance %s announced on %s/%d: steering moved in %.2f ms",
                     iid, node, ofport, ms)  # fmt: skip
            self.post_event(
                {
                    "kind": "instance_moved",
                    "instance": iid,
                    "node": node,
                    "ofport": ofport,
                    "time": time.time(),
                    "install_ms": round(ms, 3),
                }
            )

        with self.switches_lock:
            self.gen_waiters.append((generation, then))

    def check_installed(self) -> None:
        """Tell the orchestrator once every switch of the view holds the flows of the
        latest view version (so "intent accepted" can be told from "flows in place")."""
        vg = self.brain.version_generation
        dpids = self.brain.dpids()
        with self.switches_lock:
            low = min(
                (
                    s.installed_generation if (s := self.switches.get(d)) is not None else -1
                    for d in dpids
                ),
                default=-1,
            )
            due = [fn for g, fn in self.gen_waiters if g <= low]
            self.gen_waiters = [(g, fn) for g, fn in self.gen_waiters if g > low]
        for fn in due:
            fn()
        if vg is None or vg[0] == self.reported_version:
            return
        version, generation = vg
        if low >= generation:
            self.reported_version = version
            self.post_event({"kind": "installed", "version": version, "time": time.time()})

    def wake_all(self) -> None:
        with self.switches_lock:
            for s in self.switches.values():
                s.wake.set()

    def switch(self, dp: Any) -> Switch | None:
        with self.switches_lock:
            s = self.switches.get(int(dp.id)) if dp.id is not None else None
        return s if s is not None and s.dp is dp else None

    # OpenFlow events (app event thread: never block here) -----------------------

    @handler(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        dpid = int(ev.msg.datapath_id)
        s = Switch(self, dp, dpid)
        with self.switches_lock:
            old = self.switches.get(dpid)
            self.switches[dpid] = s
        if old is not None:
            old.stop()
        log.info(
            "switch %016x connected from %s (node %s)", dpid, dp.address, self.brain.node_for(dpid)
        )
        s.thread.start()

    @handler(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state != DEAD_DISPATCHER or dp.id is None:
            return
        with self.switches_lock:
            s = self.switches.get(int(dp.id))
            if s is not None and s.dp is dp:
                del self.switches[int(dp.id)]
            else:
                s = None
        if s is not None:
            s.stop()
            log.info("switch %016x disconnected", int(dp.id))

    @handler(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        s = self.switch(ev.msg.datapath)
        if s is not None:
            s.on_reply(ev.msg)

    @handler(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    def _group_desc(self, ev: Any) -> None:
        s = self.switch(ev.msg.datapath)
        if s is not None:
            s.on_reply(ev.msg)

    @handler(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def _port_stats(self, ev: Any) -> None:
        s = self.switch(ev.msg.datapath)
        if s is not None:
            s.on_reply(ev.msg)

    @handler(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier(self, ev: Any) -> None:
        s = self.switch(ev.msg.datapath)
        if s is not None:
            s.on_barrier(ev.msg)

    @handler(ofp_event.EventOFPErrorMsg, [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev: Any) -> None:
        s = self.switch(ev.msg.datapath)
        if s is not None:
            s.on_error(ev.msg)
        else:
            log.warning("error from %s: %s", ev.msg.datapath.address, ofp.error_text(ev.msg))

    @handler(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev: Any) -> None:
        # Ports come and go with instances and hosts; the agents report them and the
        # view follows, tens of milliseconds later. Meanwhile a new port that is up
        # is listened to, so a known host plugged in there is placed at its first
        # packet (as on a free port) instead of losing what it sends until then.
        msg = ev.msg
        s = self.switch(msg.datapath)
        if s is None:
            return
        o = ofproto_v1_3
        desc = msg.desc
        node = self.brain.node_for(s.dpid)
        if (
            node is not None
            and msg.reason in (o.OFPPR_ADD, o.OFPPR_MODIFY)
            and not desc.state & o.OFPPS_LINK_DOWN
            and not desc.config & o.OFPPC_PORT_DOWN
            and 0 < desc.port_no < o.OFPP_MAX
            and self.brain.port(node, desc.port_no) is None
        ):
            listen = FlowSpec(
                PRIO_DISCOVERY, (("in_port", int(desc.port_no)),), (ToController(),),
                DISCOVERY_COOKIE,
            )  # fmt: skip
            msg.datapath.send_msg(ofp.flow_add(msg.datapath, listen, hard_timeout=NEW_PORT_S))
        s.wake.set()

    @handler(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        try:
            sdn_metrics.packet_in(self.brain.node_for(ev.msg.datapath.id))
            self._handle_packet_in(ev.msg)
        except Exception:
            log.exception("packet-in handling failed")

    def _handle_packet_in(self, msg: Any) -> None:
        t_in = time.perf_counter()
        dp = msg.datapath
        s = self.switch(dp)
        if s is None:
            return
        node = self.brain.node_for(s.dpid)
        in_port, data = ofp.packet_in_fields(msg)
        info = ofp.parse_packet(data)
        if node is None or info is None:
            return
        port = self.brain.port(node, in_port)
        kind = port.peer_kind if port is not None else None
        if kind == "instance":
            if info.eth_type == ETH_ARP and info.arp_op == 1 and info.arp_tpa and info.ip:
                if info.arp_tpa == info.ip:
                    # Gratuitous: an instance announcing itself, as a migrated copy does
                    # at its cut-over. Steer to it at once instead of after the report.
                    if self.brain.instance_at(info.eth_src.lower(), node, in_port):
                        self._report_move(info.eth_src.lower(), node, in_port, t_in)
                        self.wake_all()
                    return
                self._proxy_arp(dp, in_port, info.eth_src, info.ip, info.arp_tpa)
            return
        if kind not in ("host", None):
            return  # node links and local ports: nothing to discover there
        mac = info.eth_src.lower()
        since = self.installing.get((node, in_port, mac))
        if since is not None and time.monotonic() - since < INSTALL_PATIENCE_S:
            return  # more packets of a host whose flows are on their way
        key = (node, in_port, mac, info.ip)
        if key not in self.seen:
            self.seen.add(key)
            self.post_event(
                {
                    "kind": "host_seen",
                    "node": node,
                    "port": port.name if port else str(in_port),
                    "ofport": in_port,
                    "mac": mac,
                    "ip": info.ip,
                    "time": time.time(),
                    "known_as": (self.brain.known(mac) or ("", ""))[1] or None,
                }
            )
        if self.brain.host_at(mac, node, in_port):
            generation = self.brain.generation
            where = (node, in_port, mac)
            self.installing[where] = time.monotonic()

            def reinject() -> Any:
                # The first packet is not lost: it goes through the new flows (it
                # follows their barrier). Only the switch that raised the packet-in
                # carries it; the others get their flows in parallel.
                return ofp.packet_out_table(dp, in_port, data)

            def done() -> None:
                self.installing.pop(where, None)
                log.info(
                    "host %s: flows installed %.2f ms after its packet-in",
                    mac,
                    1e3 * (time.perf_counter() - t_in),
                )

            s.when_installed(generation, reinject, done)
            self.wake_all()
            return
        if info.ip is None:
            return  # IPv6 chatter, DHCP: keep listening until the host shows an IPv4 address
        # Nothing to install: stop this host's unmatched traffic reaching us for a while.
        sup = FlowSpec(
            PRIO_SUPPRESS,
            (("eth_src", mac), ("in_port", in_port)),
            (),
            DISCOVERY_COOKIE,
        )
        dp.send_msg(ofp.flow_add(dp, sup, hard_timeout=self.settings.suppress_s))

    def _proxy_arp(
        self, dp: Any, in_port: int, asker_mac: str, asker_ip: str, target_ip: str
    ) -> None:
        # An instance forwards for others and resolves whatever its routes say (a
        # destination, its gateway). Steering rewrites the destination MAC at every
        # stage, so any answer works; a known address gets its real MAC, anything else
        # a fixed virtual one. Traffic no intent allows is dropped either way, and an
        # intent's own ARP flows (priority 100+) win over this rule (priority 5).
        target_mac = self.brain.mac_for_ip(target_ip) or VIRTUAL_ROUTER_MAC
        frame = ofp.arp_reply(
            asker_mac=asker_mac, asker_ip=asker_ip, target_mac=target_mac, target_ip=target_ip
        )
        dp.send_msg(ofp.packet_out_port(dp, in_port, frame))
