"""Faults on the streaming tree (issue 14), on the paper's testbed
(services/streaming/topologies/streaming.yaml): the lecture from pe1 watched at pe2
and pe5, so its tree branches at core c1, where a forwarder runs.

- the forwarder's process is killed (-9): its agent starts it again and both
  viewers decode frames after;
- the platform loses the forwarder (its instance destroyed): the tree's loop
  rebuilds the branch with a new forwarder (a new instance and address, the
  acquirer's next hops changed) and both viewers decode frames after;
- the edge streamer on pe5 is killed (-9): its viewer decodes frames after;
- the provider's encoder stops and reconnects: the same event and content go on,
  the acquirer tells the back-end of the second start, the viewers decode after.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from netfate.demo.platform import Api
from netfate.services.streaming.demo import TOPOLOGY, Scene, live, restarted
from netfate.testbed.builder import Testbed
from testbed_procs import until

VIEWERS = (("alice", "phone", "pe2"), ("erin", "laptop", "pe5"))


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    tb = Testbed.up(TOPOLOGY)
    said: list[str] = []
    try:
        assert tb.api_url
        sc = Scene(tb, Api(tb.api_url), said.append)
        sc.start()
        for client, host, node in VIEWERS:
            a = sc.join(client, host, "lecture")
            assert a["case"] == 4 and a["node"] == node, a
        sc.forwarder("c1", "lecture")
        for client, _, _ in VIEWERS:
            assert sc.decodes(client) > 0
        yield sc
        sc.stop()
    finally:
        problems = tb.down()
        assert not problems, problems


def kill(pid: int) -> None:
    """kill -9 a function's process (started by this run's agent)."""
    assert pid > 1
    os.kill(pid, signal.SIGKILL)


def everyone_decodes(sc: Scene) -> None:
    for client, _, _ in VIEWERS:
        assert sc.decodes(client, timeout=120) > 0


def test_a_killed_forwarder_is_started_again_and_the_viewers_resume(scene: Scene) -> None:
    before = live(scene.api, "forwarder-c1")
    assert before is not None and before["pid"]
    kill(int(before["pid"]))
    until(
        "the forwarder's process started again",
        restarted(scene.api, "forwarder-c1", before["pid"]),
        120,
    )
    everyone_decodes(scene)
    assert scene.copies("c1", "lecture")


def test_a_lost_forwarder_is_rebuilt_by_the_tree(scene: Scene) -> None:
    old = live(scene.api, "forwarder-c1")
    assert old is not None
    scene.api("DELETE", f"/instances/{old['id']}")
    new = until(
        "a new forwarder on c1",
        lambda: (i := live(scene.api, "forwarder-c1")) is not None and i["id"] != old["id"] and i,
        120,
    )
    scene.api.wait_state(new["id"], "running", timeout=120)
    acq = live(scene.api, "acquirer-pe1")
    assert acq is not None
    cid = scene.contents["lecture"]["id"]
    hops = [h["host"] for f in acq["config"]["flows"] if f["id"] == cid for h in f["next_hops"]]
    assert hops == [new["ip"].split("/")[0]]
    everyone_decodes(scene)
    assert scene.copies("c1", "lecture")


def test_a_killed_edge_streamer_is_started_again_and_its_viewer_resumes(scene: Scene) -> None:
    sid = scene.viewer("erin")["streamer"]
    before = live(scene.api, f"streamer-{sid}")
    assert before is not None and before["pid"]
    kill(int(before["pid"]))
    until(
        "the edge streamer's process started again",
        restarted(scene.api, f"streamer-{sid}", before["pid"]),
        120,
    )
    assert scene.decodes("erin", timeout=120) > 0


def test_a_provider_that_reconnects_continues_the_same_event(scene: Scene) -> None:
    cid = scene.contents["lecture"]["id"]
    until("the first start noticed", lambda: scene.content("lecture")["stream"].get("starts"))
    starts = scene.content("lecture")["stream"]["starts"]
    scene.kill_source(scene.sources.pop("lecture"))
    scene.stream("lecture")  # the encoder again, to the same acquirer port
    until(
        "the acquirer to notice the provider's new start",
        lambda: scene.content("lecture")["stream"].get("starts", 0) > starts,
        90,
    )
    assert scene.content("lecture")["id"] == cid
    assert scene.content("lecture")["stream"]["state"] == "streaming"
    everyone_decodes(scene)
