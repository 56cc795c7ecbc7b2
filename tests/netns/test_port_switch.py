"""The agent's PortSwitch (agent/ports.py) in a real namespace: ports go up and
down, and its long-lived netlink handle does not pile up what pyroute2 queues
unread (one late acknowledgement per call) nor leak file descriptors."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from netfate.agent.instances import PortSwitch
from netfate.host import links, netns
from testbed_procs import _port_up


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _unread(ps: PortSwitch) -> int:
    return 0 if ps._ipr is None else int(ps._ipr.asyncore.msg_queue.root.qsize())


@pytest.fixture
def switch(run_prefix: str) -> Iterator[tuple[str, str, PortSwitch]]:
    """(namespace, port, a warmed PortSwitch of that namespace)."""
    ns = f"{run_prefix}-sw"
    assert netns.ensure(ns)
    try:
        links.veth_pair(f"{run_prefix}p", ns, f"{run_prefix}q", ns)
        ps = PortSwitch(ns)
        ps.warm()
        yield ns, f"{run_prefix}p", ps
    finally:
        netns.remove(ns)


def test_ports_switch_and_the_handle_stays_bounded(switch: tuple[str, str, PortSwitch]) -> None:
    ns, port, ps = switch
    fds = _fds()
    unread = []
    for i in range(2 * PortSwitch.RENEW_AFTER + 10):
        ps.set(port, up=i % 2 == 0)
        # What pyroute2 queued and nobody will read (its internals, per thread:
        # read on the worker, after a renewal if one was due).
        unread.append(ps._worker.submit(_unread, ps).result())
    ps.set(port, up=True)
    assert _port_up(ns, port)
    ps.set(port, up=False)
    assert not _port_up(ns, port)
    assert max(unread) <= PortSwitch.RENEW_AFTER
    assert _fds() <= fds


def test_port_lookups_renew_their_handle(switch: tuple[str, str, PortSwitch]) -> None:
    # Each port is looked up once, when it is built (agent/ports.py): a node that
    # builds ports all day renews the lookup handle instead of piling up its queue.
    ns, port, ps = switch
    fds = _fds()
    unread = []
    for _ in range(2 * PortSwitch.RENEW_AFTER + 10):
        ps.forget(port)  # as a teardown does; a new port is looked up
        ps.prepare(port)
        unread.append(ps._worker.submit(_unread, ps).result())
    ps.set(port, up=True)
    assert _port_up(ns, port)
    assert max(unread) <= PortSwitch.RENEW_AFTER
    assert _fds() <= fds
