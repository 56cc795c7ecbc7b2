"""The OpenFlow 1.3 controller: an os-ken application, run by `process.py` in its own process.

Thin: os-ken's events go to the core (`core.py`, no I/O) with the time and the
switch they came from; the driver (`driver.py`) runs the threads around it.

    os-ken recv thread per switch  parses messages, hands them to this app's queue
    app event thread               the @handler methods below; they never block
    runner thread per switch       the core's reconcile steps: read, plan, send, wait
    poller                         GET /api/v1/sdn/view: view + intents, recompile on change
    outbox                         POST /api/v1/sdn/events: the core's reports

The orchestrator is the source of truth. Until the first view arrives the
controller touches no switch: a controller that restarts must not wipe the
tables that keep forwarding in secure mode. After that, each switch is
reconciled on connect (its table is read back and corrected), whenever the
view or intents change, and on every snapshot (so drift is repaired too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

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
from netfate.orchestrator.sdn import ofp
from netfate.orchestrator.sdn.core import ControllerCore
from netfate.orchestrator.sdn.driver import Outbox, Settings, SwitchRunner, ViewPoller
from netfate.orchestrator.sdn.osken_switch import OsKenSwitch

log = logging.getLogger("netfate.sdn")

F = TypeVar("F", bound=Callable[..., Any])


def handler(ev_cls: Any, dispatchers: Any) -> Callable[[F], F]:
    """os-ken's set_ev_cls, typed (os-ken ships no annotations)."""
    return cast(Callable[[F], F], set_ev_cls(ev_cls, dispatchers))


SETTINGS: Settings | None = None
"""Set by `process.py` before os-ken instantiates the app."""


class NetfateController(app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if SETTINGS is None:
            raise RuntimeError("netfate controller: SETTINGS not configured (use process.run)")
        self.settings: Settings = SETTINGS
        self.outbox = Outbox(
            self.settings.orchestrator.rstrip("/"), self.settings.verify, self.settings.headers
        )
        self.core = ControllerCore(self.outbox.put, self.settings.timers())
        self.switches: dict[int, SwitchRunner] = {}
        self.switches_lock = threading.Lock()
        sdn_metrics.attach(self)
        poller = ViewPoller(self.settings, self.core, self.wake_all)
        threading.Thread(target=self.outbox.run, name="outbox", daemon=True).start()
        threading.Thread(target=poller.run, name="poller", daemon=True).start()

    def wake_all(self) -> None:
        with self.switches_lock:
            for s in self.switches.values():
                s.wake.set()

    def switch(self, dp: Any) -> SwitchRunner | None:
        with self.switches_lock:
            s = self.switches.get(int(dp.id)) if dp.id is not None else None
        return s if s is not None and s.io.dp is dp else None

    # OpenFlow events (app event thread: never block here) -----------------------

    @handler(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        dpid = int(ev.msg.datapath_id)
        io = OsKenSwitch(dp, dpid, self.settings.reply_timeout_s)
        s = SwitchRunner(self.core, io, self.core.connected(dpid))
        with self.switches_lock:
            old = self.switches.get(dpid)
            self.switches[dpid] = s
        if old is not None:
            old.stop()
        node = self.core.brain.node_for(dpid)
        log.info("switch %016x connected from %s (node %s)", dpid, dp.address, node)
        s.thread.start()

    @handler(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state != DEAD_DISPATCHER or dp.id is None:
            return
        with self.switches_lock:
            s = self.switches.get(int(dp.id))
            if s is not None and s.io.dp is dp:
                del self.switches[int(dp.id)]
            else:
                s = None
        if s is not None:
            s.stop()
            self.core.gone(s.keeper)
            log.info("switch %016x disconnected", int(dp.id))

    @handler(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        if (s := self.switch(ev.msg.datapath)) is not None:
            s.io.on_reply(ev.msg)

    @handler(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    def _group_desc(self, ev: Any) -> None:
        if (s := self.switch(ev.msg.datapath)) is not None:
            s.io.on_reply(ev.msg)

    @handler(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def _port_stats(self, ev: Any) -> None:
        if (s := self.switch(ev.msg.datapath)) is not None:
            s.io.on_reply(ev.msg)

    @handler(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier(self, ev: Any) -> None:
        if (s := self.switch(ev.msg.datapath)) is not None:
            s.io.on_barrier(ev.msg)

    @handler(ofp_event.EventOFPErrorMsg, [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev: Any) -> None:
        if (s := self.switch(ev.msg.datapath)) is not None:
            s.io.on_error(ev.msg)
        else:
            log.warning("error from %s: %s", ev.msg.datapath.address, ofp.error_text(ev.msg))

    @handler(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev: Any) -> None:
        s = self.switch(ev.msg.datapath)
        if s is None:
            return
        port_no = ofp.port_came_up(ev.msg)
        if port_no is not None:
            self.core.port_up(s.io.dpid, s.io, port_no)
        s.wake.set()

    @handler(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        now = time.monotonic()
        try:
            s = self.switch(ev.msg.datapath)
            if s is None:
                return
            sdn_metrics.packet_in(self.core.brain.node_for(s.io.dpid))
            in_port, data = ofp.packet_in_fields(ev.msg)
            if self.core.packet_in(s.io.dpid, s.io, in_port, data, now):
                self.wake_all()
        except Exception:
            log.exception("packet-in handling failed")
