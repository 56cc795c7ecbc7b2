"""What every switch should hold: the view, the intents, and where hosts and
instances were seen ahead of the view. Sans-I/O: the time comes in as `now`.

    update(view and intents)        a new view version: compile everything
    host_at / instance_at(now)      an endpoint seen somewhere the view does not
                                    have it yet: an override, its intents first
    settle(now)                     the full compile a partial one asked for
    desired(node)                   flows and groups for one switch, and their
                                    generation (bumped by every compile taken)

Several threads call in (the view's poller, packet-in handling, one per
switch); one lock guards the state. Results are replaced, never mutated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from netfate.orchestrator.sdn.compile import (
    CompileResult,
    FlowSpec,
    GroupSpec,
    compile_intents,
)
from netfate.orchestrator.sdn.intents import (
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

log = logging.getLogger("netfate.sdn")

PARTIAL_ABOVE = 50
"""With more intents than this, a host move first recompiles only that host's intents."""
SETTLE_AFTER_S = 2.0
"""The full compile after partial ones waits until host moves pause this long."""


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
        self.result = compile_intents(self.data.view, self.data.intents, self.overrides)
        self.generation += 1
        log.debug("compiled generation %d", self.generation)
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

    def host_at(self, mac: str, node: str, ofport: int, now: float) -> bool:
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
            self._recompile_for(lambda it: mentions_host(it, name), now)
            return True

    def instance_at(self, mac: str, node: str, ofport: int, now: float) -> bool:
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
            self._recompile_for(lambda it: mentions_instance(it, iid), now)
            return True

    def _recompile_for(self, mentions: Callable[[Intent], bool], now: float) -> None:
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
        self.last_partial = now

    def settle(self, now: float) -> bool:
        """Run the full compile a partial one asked for. True if its result was taken.

        It runs outside the lock (it may take most of a second): a host move in the
        meantime bumps the generation, and this result is then thrown away and the
        full compile asked for again.
        """
        with self.lock:
            if not self.full_due or self.data is None:
                return False
            if now - self.last_partial < SETTLE_AFTER_S:
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
