"""Restarts in both directions, against real OVS.

- Controller dies: the switches keep forwarding (secure mode keeps flows). While
  it is down the tables drift (a stale flow appears, half of an intent's flows
  vanish as after an interrupted install, an intent is deleted upstream). On
  reconnect each table is read back and reconciled: the stale flow and the
  deleted intent's flows go, the half-installed intent is whole again, and a
  flow that is not the controller's (foreign cookie) is left alone.
- Switch (ovs-vswitchd) restarts: its flows come back.
- Switch and database (ovs-vswitchd, ovsdb-server) killed with -9 and started
  again from the database file, as a service manager would: bridges, ports and
  their numbers come back from the database, flows from the controller.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.host import proc
from netfate.orchestrator.sdn.intents import cookie_for, parse_intent
from sdn_rig import ControllerProcess, FakeOrchestrator, Rig, wait_until

PORT = 6653
AB = {"kind": "connectivity", "id": "ab", "a": "host:alice", "b": "host:bob"}
AS = {"kind": "connectivity", "id": "as", "a": "host:alice", "b": "host:server"}


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.rig = Rig("nft" + secrets.token_hex(2), controller_port=PORT)
        self.orch = FakeOrchestrator()
        self.ctl: ControllerProcess | None = None
        r = self.rig
        r.start()
        for n in ("cpe1", "pe", "cpe2"):
            r.add_node(n)
        r.link("cpe1", "pe")
        r.link("cpe2", "pe")
        r.add_endpoint("alice", "cpe1", "10.0.0.10")
        r.add_endpoint("bob", "cpe2", "10.0.0.11")
        r.add_endpoint("server", "pe", "10.0.0.5")
        self.orch.set(view=r.view(), intents=[parse_intent(AB), parse_intent(AS)])

    def start(self) -> None:
        self.ctl = ControllerProcess(self.orch.url, PORT, self.rig.sw, self.tmp / "ctl.log")

    def kill(self) -> None:
        if self.ctl is not None:
            self.ctl.stop(signal.SIGKILL)
            self.ctl = None

    def flows(self, node: str, intent_id: str) -> set[str]:
        c = cookie_for(intent_id)
        return {f for f in self.rig.flows(node) if f"cookie={c:#x}," in f}

    def close(self) -> None:
        try:
            if self.ctl is not None:
                print(self.ctl.output()[-4000:])
            self.kill()
        finally:
            self.rig.close()
            self.orch.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        e.start()
        e.rig.wait_connected()
        wait_until(lambda: e.rig.ping("alice", "bob"), what="initial connectivity")
        yield e
    finally:
        e.close()


def test_controller_restart_keeps_forwarding_and_reconciles(env: Env) -> None:
    rig, br1 = env.rig, env.rig.bridge("cpe1")
    full_ab = {n: env.flows(n, "ab") for n in ("cpe1", "pe", "cpe2")}
    full_as = {n: env.flows(n, "as") for n in ("cpe1", "pe")}
    env.kill()
    # Secure mode: the flows stay and keep forwarding without a controller.
    assert rig.ping("alice", "bob", count=3)
    assert rig.ping("alice", "server")
    # Drift while the controller is away.
    stale = 0x4E46_0000_DEAD_BEEF
    rig.ofctl(
        br1, "add-flow", f"cookie={stale:#x},priority=150,in_port=1,udp,tp_dst=9 actions=drop"
    )
    rig.ofctl(br1, "add-flow", "cookie=0x1,priority=7,in_port=1,udp,tp_dst=7 actions=drop")
    rig.ofctl(br1, "del-flows", f"cookie={cookie_for('ab'):#x}/-1,arp")  # half an install
    assert env.flows("cpe1", "ab") != full_ab["cpe1"]
    env.orch.set(intents=[parse_intent(AB)])  # "as" deleted upstream meanwhile
    env.start()
    rig.wait_connected()
    wait_until(lambda: env.flows("cpe1", "ab") == full_ab["cpe1"], what="ab whole again")
    wait_until(lambda: not any(env.flows(n, "as") for n in full_as), what="as removed")
    wait_until(lambda: not any(f"cookie={stale:#x}," in f for f in rig.flows("cpe1")))
    assert {n: env.flows(n, "ab") for n in full_ab} == full_ab
    assert any("cookie=0x1," in f for f in rig.flows("cpe1"))  # not ours: left alone
    assert rig.ping("alice", "bob")
    assert not rig.ping("alice", "server", wait_s=0.5)


def test_controller_restart_before_the_orchestrator_answers_wipes_nothing(env: Env) -> None:
    before = {n: set(env.rig.flows(n)) for n in ("cpe1", "pe", "cpe2")}
    env.kill()
    env.orch.close()  # the orchestrator is unreachable too
    env.start()
    env.rig.wait_connected()
    # The controller is connected but has no view: tables are left as they were.
    wait_until(lambda: "cannot read the view" in (env.ctl.output() if env.ctl else ""))
    assert {n: set(env.rig.flows(n)) for n in before} == before
    assert env.rig.ping("alice", "bob")


def test_switch_restart_gets_its_flows_back(env: Env) -> None:
    full = {n: env.flows(n, "ab") for n in ("cpe1", "pe", "cpe2")}
    env.rig.restart_vswitchd()
    env.rig.wait_connected()
    wait_until(
        lambda: {n: env.flows(n, "ab") for n in full} == full, what="flows back after restart"
    )
    wait_until(lambda: env.rig.ping("alice", "bob"), what="forwarding after switch restart")


def test_switch_and_database_killed_with_9_come_back(env: Env) -> None:
    rig = env.rig
    full = {n: env.flows(n, "ab") for n in ("cpe1", "pe", "cpe2")}
    ports = sorted(rig.vsctl("--format=csv", "--columns=name,ofport", "list", "interface").split())
    daemons = rig.ovs.pids()
    for name in ("ovs-vswitchd", "ovsdb-server"):
        os.kill(daemons[name].pid, signal.SIGKILL)
    wait_until(lambda: not any(proc.alive(r) for r in daemons.values()), what="daemons dead")
    assert not rig.ping("alice", "bob", wait_s=0.5)  # no switch at all now
    rig.ovs.start()  # the same database file
    after = rig.vsctl("--format=csv", "--columns=name,ofport", "list", "interface").split()
    assert sorted(after) == ports and len(ports) > 6
    rig.wait_connected()
    wait_until(
        lambda: {n: env.flows(n, "ab") for n in full} == full, what="flows back after kill -9"
    )
    wait_until(lambda: rig.ping("alice", "bob"), what="forwarding after kill -9")
