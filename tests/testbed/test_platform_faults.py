"""The platform on a real testbed (namespaces, OVS, orchestrator and agent processes):
the demo's steps, and the faults of the platform issue: kill -9 of an agent and of
the orchestrator, and Ctrl-C of the demo."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.demo import platform
from netfate.demo.probe import CounterProbe
from netfate.host import netns
from netfate.testbed.builder import Testbed
from testbed_procs import (
    health,
    instance_namespaces,
    kill9,
    node_status,
    restart,
    until,
    up_testbed,
)


@pytest.fixture(scope="module")
def tb() -> Iterator[Testbed]:
    with up_testbed("demo") as bed:
        yield bed


@pytest.fixture
def api(tb: Testbed) -> platform.Api:
    assert tb.api_url
    return platform.Api(tb.api_url, tb.api_token)


def test_demo_steps(tb: Testbed) -> None:
    said: list[str] = []
    platform.check(tb, said.append)
    assert any("state moved with it" in s for s in said)


def test_agent_killed_and_restarted_converges_without_duplicates(
    tb: Testbed, api: platform.Api
) -> None:
    keep = api("POST", "/instances", {"descriptor": "counter", "node": "cpe1", "serves": "laptop1"})
    drop = api("POST", "/instances", {"descriptor": "counter", "node": "cpe1"})
    lost = api("POST", "/instances", {"descriptor": "counter", "node": "cpe1"})
    keep = api.wait_state(keep["id"], "running")
    api.wait_state(drop["id"], "running")
    lost = api.wait_state(lost["id"], "running")
    ip = keep["ip"].split("/")[0]
    with CounterProbe(tb.netns_of("laptop1"), ip) as probe:
        assert probe.ask().count == 1

        argv = kill9(tb, "agent:cpe1")
        until("cpe1 unreachable", lambda: node_status(api, "cpe1") == "unreachable")
        # The data plane does not depend on the agent.
        assert probe.ask().count == 2
        # While the agent is away: one instance is destroyed through the API, and
        # the process of another dies.
        api("DELETE", f"/instances/{drop['id']}")
        os.kill(lost["pid"], signal.SIGKILL)
        # Placement refuses a node it cannot hear from, even when named.
        refused = api.http.post(
            f"{api.base}/instances", json={"descriptor": "counter", "node": "cpe1"}
        )
        assert refused.status_code == 409 and "cpe1: not up" in refused.text

        restart(tb, "agent:cpe1", argv)
        until("cpe1 up again", lambda: node_status(api, "cpe1") == "up")
        api.wait_state(drop["id"], "gone")
        until(
            "the dead instance started again",
            lambda: (
                (i := api("GET", f"/instances/{lost['id']}"))["state"] == "running"
                and i["pid"] != lost["pid"]
            ),
        )
        after = api("GET", f"/instances/{keep['id']}")
        assert after["state"] == "running" and after["pid"] == keep["pid"], "adopted, not new"
        assert probe.ask().count == 3, "the same process, with its state, still serves"
    assert len(instance_namespaces(tb, keep["id"])) == 1
    assert instance_namespaces(tb, drop["id"]) == []
    assert len(instance_namespaces(tb, lost["id"])) == 1
    for iid in (keep["id"], lost["id"]):
        api("DELETE", f"/instances/{iid}")
        api.wait_state(iid, "gone")


def test_orchestrator_killed_and_restarted_loses_nothing(tb: Testbed, api: platform.Api) -> None:
    inst = api("POST", "/instances", {"descriptor": "counter", "serves": "laptop2"})
    inst = api.wait_state(inst["id"], "running")
    before = {i["id"]: (i["node"], i["state"]) for i in api("GET", "/instances")}
    events_before = len(api("GET", "/events?limit=5000"))

    argv = kill9(tb, "orchestrator")
    with CounterProbe(tb.netns_of("laptop2"), inst["ip"].split("/")[0]) as probe:
        assert probe.ask().count == 1  # functions keep serving without orchestrator
    restart(tb, "orchestrator", argv)
    until("orchestrator back", lambda: health(api))
    until("agents reconnected", lambda: all(n["status"] == "up" for n in api("GET", "/nodes")))
    after = {i["id"]: (i["node"], i["state"]) for i in api("GET", "/instances")}
    assert after == before
    assert len(api("GET", "/events?limit=5000")) >= events_before
    # And it works as before.
    mig = api("POST", f"/instances/{inst['id']}/migrate", {"node": "cpe1"})
    assert api.wait_migration(inst["id"], mig["id"])["phase"] == "done"
    api("DELETE", f"/instances/{inst['id']}")
    api.wait_state(inst["id"], "gone")


@pytest.mark.parametrize("when", ["building", "running"])
def test_ctrl_c_of_the_demo_leaves_nothing(when: str) -> None:
    p = subprocess.Popen(
        [sys.executable, "-m", "netfate", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert p.stdout is not None
    prefix = None
    out: list[str] = []
    trigger = "Open vSwitch" if when == "building" else "Ctrl-C to stop"
    try:
        for line in p.stdout:
            out.append(line)
            if m := re.search(r"as run (nf[0-9a-f]{4})", line):
                prefix = m.group(1)
            if trigger in line:
                p.send_signal(signal.SIGINT)
                break
        rest, _ = p.communicate(timeout=60)
        out.append(rest)
    finally:
        if p.poll() is None:
            p.kill()
    text = "".join(out)
    assert prefix is not None, text
    assert "everything removed" in text or "everything built so far was removed" in text, text
    assert netns.list_with_prefix(prefix + "-") == [], text
    assert not (Path("/run/netfate") / prefix).exists(), text


def test_a_function_that_dies_is_started_again(tb: Testbed, api: platform.Api) -> None:
    inst = api.wait_state(
        api("POST", "/instances", {"descriptor": "counter", "node": "cpe2"})["id"], "running"
    )
    os.kill(inst["pid"], signal.SIGKILL)
    again = until(
        "a new process",
        lambda: (
            (i := api("GET", f"/instances/{inst['id']}"))["state"] == "running"
            and i["pid"] != inst["pid"]
            and i
        ),
    )
    states = [t["state"] for t in again["transitions"]]
    assert "failed" not in states and states[-2:] == ["starting", "running"]
    assert len(instance_namespaces(tb, inst["id"])) == 1
    api("DELETE", f"/instances/{inst['id']}")
    api.wait_state(inst["id"], "gone")


def test_reconfigure_restarts_a_function_with_its_state(tb: Testbed, api: platform.Api) -> None:
    inst = api(
        "POST",
        "/instances",
        {"descriptor": "counter", "serves": "laptop1", "config": {"port": 7777}},
    )
    inst = api.wait_state(inst["id"], "running")
    ip = inst["ip"].split("/")[0]
    with CounterProbe(tb.netns_of("laptop1"), ip, port=7777) as probe:
        assert [probe.ask().count for _ in range(2)] == [1, 2]
    until(
        "the function's own figures in the API",
        lambda: api("GET", f"/instances/{inst['id']}")["stats"].get("total") == 2,
    )
    api("PATCH", f"/instances/{inst['id']}", {"config": {"port": 7778}})
    # The counter cannot move its socket in place: the agent restarts it, carrying
    # its counts, and it answers on the new port.
    until("a new process", lambda: api("GET", f"/instances/{inst['id']}")["pid"] != inst["pid"])
    with CounterProbe(tb.netns_of("laptop1"), ip, port=7778) as probe:
        assert probe.ask().count == 3
    api("DELETE", f"/instances/{inst['id']}")
    api.wait_state(inst["id"], "gone")
