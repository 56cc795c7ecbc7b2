"""The agent's PortSwitch (agent/instances.py) in a real namespace: ports go up and
down, and its long-lived netlink handle does not pile up what pyroute2 queues
unread (one late acknowledgement per call) nor leak file descriptors."""

from __future__ import annotations

import os

from netfate.agent.instances import PortSwitch
from netfate.host import links, netns
from testbed_procs import _port_up


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _unread(ps: PortSwitch) -> int:
    return 0 if ps._ipr is None else int(ps._ipr.asyncore.msg_queue.root.qsize())


def test_ports_switch_and_the_handle_stays_bounded(run_prefix: str) -> None:
    ns = f"{run_prefix}-sw"
    assert netns.ensure(ns)
    try:
        links.veth_pair(f"{run_prefix}p", ns, f"{run_prefix}q", ns)
        ps = PortSwitch(ns)
        ps.warm()
        fds = _fds()
        unread = []
        for i in range(2 * PortSwitch.RENEW_AFTER + 10):
            ps.set(f"{run_prefix}p", up=i % 2 == 0)
            # What pyroute2 queued and nobody will read (its internals, per thread:
            # read on the worker, after a renewal if one was due).
            unread.append(ps._worker.submit(_unread, ps).result())
        ps.set(f"{run_prefix}p", up=True)
        assert _port_up(ns, f"{run_prefix}p")
        ps.set(f"{run_prefix}p", up=False)
        assert not _port_up(ns, f"{run_prefix}p")
        assert max(unread) <= PortSwitch.RENEW_AFTER
        assert _fds() <= fds
    finally:
        netns.remove(ns)
