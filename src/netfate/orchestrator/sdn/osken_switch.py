"""`SwitchIO` over one os-ken datapath: the OpenFlow side of a connected switch.

Two threads meet here. The switch's own thread (driver.SwitchRunner) calls
`read_table` and `send_batch`, which send requests and wait for their replies;
os-ken's receive thread, through the app's handlers, calls `on_reply`,
`on_barrier` and `on_error`, which hand the replies over by transaction id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from netfate.orchestrator.sdn import ofp, wire
from netfate.orchestrator.sdn.compile import FlowSpec, GroupSpec
from netfate.orchestrator.sdn.reconcile import Plan, is_netfate_group
from netfate.orchestrator.sdn.switch import BatchResult, Reinject, Table

log = logging.getLogger("netfate.sdn")


class _Waiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.msgs: list[Any] = []


class OsKenSwitch:
    """One connected datapath (an os-ken `Datapath`)."""

    def __init__(self, dp: Any, dpid: int, reply_timeout_s: float) -> None:
        self.dp = dp
        self.dpid = dpid
        self.reply_timeout_s = reply_timeout_s
        self.alive = True
        self.lock = threading.Lock()
        self.waiters: dict[int, _Waiter] = {}
        self.batch_xids: set[int] = set()
        self.batch_errors: list[str] = []
        self.batch_cookies: dict[int, int] = {}  # xid of a flow/group add -> its cookie
        self.batch_refused: dict[int, str] = {}

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
                    self.batch_refused[cookie] = text
        log.warning("switch %016x: %s%s", self.dpid, text, "" if mine else " (not from a batch)")

    def stop(self) -> None:
        self.alive = False
        with self.lock:
            for w in self.waiters.values():
                w.event.set()

    # SwitchIO (the switch's own thread) -------------------------------------------

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
            deadline = time.monotonic() + self.reply_timeout_s
            for _xid, w in waiters:
                if not w.event.wait(max(0.0, deadline - time.monotonic())) or not self.alive:
                    return None
            return [w.msgs for _x, w in waiters]
        finally:
            with self.lock:
                for xid, _w in waiters:
                    self.waiters.pop(xid, None)

    def read_table(self) -> Table | None:
        t0 = time.monotonic()
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
        return Table(flows, groups, ports, time.monotonic() - t0)

    def send_batch(self, plan: Plan, trailer: Sequence[Reinject]) -> BatchResult:
        sent_at = time.monotonic()
        ok = self._send_batch(plan, trailer)
        with self.lock:
            refused, self.batch_refused = self.batch_refused, {}
        return BatchResult(ok, sent_at, time.monotonic(), refused)

    def _send_batch(self, p: Plan, trailer: Sequence[Reinject]) -> bool:
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
            tail, _ = ofp.serialize(dp, self._packet_outs(trailer))  # not in the error accounting
            parts.append(tail)
        buf = b"".join(parts)
        n_msgs = len(xids) - 1
        w = _Waiter()
        with self.lock:
            self.batch_xids = set(xids)
            self.batch_errors = []
            self.batch_refused = {}
            self.batch_cookies = {**group_cookies, **cookies}
            self.waiters[xids[-1]] = w
        try:
            # Chunks keep each queued write bounded; os-ken's send queue holds 16 entries.
            chunk = 1 << 16
            for i in range(0, len(buf), chunk):
                if not self.dp.send(buf[i : i + chunk]):
                    return False
            if not w.event.wait(self.reply_timeout_s) or not self.alive:
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

    def _packet_outs(self, packets: Sequence[Reinject]) -> list[Any]:
        return [ofp.packet_out_table(self.dp, p.in_port, p.data) for p in packets]

    def reinject(self, packets: Sequence[Reinject]) -> None:
        buf, _ = ofp.serialize(self.dp, self._packet_outs(packets))
        self.dp.send(buf)

    def flow_add(self, flow: FlowSpec, hard_timeout: int) -> None:
        self.dp.send_msg(ofp.flow_add(self.dp, flow, hard_timeout=hard_timeout))

    def packet_out(self, port: int, frame: bytes) -> None:
        self.dp.send_msg(ofp.packet_out_port(self.dp, port, frame))
