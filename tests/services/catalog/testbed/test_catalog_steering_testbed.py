"""A subscription's chain steered on the whole platform: the catalog's fog testbed
under netfate's controller (`sdn`: bridges in secure mode, nothing passes but what
intents say), the orchestrator with its loops, the agents and real `forwarder`
instances in their namespaces.

A provider publishes a chain of three forwarders; alice subscribes through the API
with her laptop as a device. The conduit's loop stores the chain's intents; once
they are active, packets laptop1 sends to the last block are captured in each
block's namespace: the first gets them from the laptop, the second from the first,
the last from the second (chain order, across whatever nodes the engine chose).
The middle block's instance is then lost (deleted): the loop runs the block as a
new instance, the intents are replaced to name it, and the same capture finds the
packets crossing it in order. Unsubscribing removes the intents. Then alice walks
to cpe2 with her laptop and logs in there: her chain is re-placed (the entry block
migrates to cpe2) and her packets cross the blocks in order where they now run.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from chain_capture import CHAIN, ORDER, echo_senders, raw_socket
from netfate.demo.platform import Api
from netfate.host import netns
from netfate.host.ovs import Vsctl
from netfate.services.catalog.demo import TOPOLOGY
from netfate.store.db import Database
from netfate.store.events import record_event
from netfate.testbed.builder import Testbed
from testbed_procs import until


@pytest.fixture(scope="module")
def tb() -> Iterator[Testbed]:
    bed = Testbed.up(TOPOLOGY, prefix="nfs" + secrets.token_hex(2)[:3], sdn=True)
    try:
        yield bed
    finally:
        problems = bed.down()
        assert not problems, problems
        assert netns.list_with_prefix(bed.prefix + "-") == []


@pytest.fixture(scope="module")
def api(tb: Testbed) -> Api:
    """The operator's API, the chain published by its provider."""
    assert tb.api_url is not None
    op = Api(tb.api_url, tb.api_token)
    op.as_user("acme", role="provider")(
        "POST", "/catalog/chains", {"provider": "acme", "descriptor": CHAIN}
    )
    return op


def _ours(api: Api, sid: str) -> list[dict[str, Any]]:
    return [i for i in api("GET", "/intents") if i["intent"]["id"].startswith(f"catalog-{sid}-")]


def _ping(tb: Testbed, ip: str, count: int = 1) -> str:
    r = tb.exec("laptop1", ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", ip],
                check=False)  # fmt: skip
    return str(r.stdout)


def _subscribe(api: Api, laptop_mac: str) -> str:
    """Alice subscribes at home (cpe1), her laptop as her device: the subscription's id."""
    sub = api.as_user("alice")("POST", "/catalog/subscriptions",
                               {"user": "alice", "chain": "sensor-path", "at": "cpe1",
                                "devices": [laptop_mac]})  # fmt: skip
    return str(sub["id"])


def _path(tb: Testbed, api: Api, sid: str, laptop_mac: str) -> dict[str, dict[str, Any]]:
    """Once the subscription's instances run and its intents (naming them) are active:
    laptop1 pings the last block three times, and each block's namespace captures who
    sent it the requests. Asserts chain order; returns the blocks' instances."""

    def running() -> dict[str, Any] | None:
        now: dict[str, Any] = api("GET", f"/catalog/subscriptions/{sid}")
        states = {i["state"] for i in now["instances"]}
        assert "failed" not in states, now["instances"]
        return now if states == {"running"} else None

    now = until("the chain's instances running", running, timeout=120)
    insts = {i["block"]: api("GET", f"/instances/{i['instance']}") for i in now["instances"]}
    ids = [insts[b]["id"] for b in ORDER]

    def active() -> bool:
        xs = _ours(api, sid)  # entry, steering, and the two talks
        steer = [x["intent"] for x in xs if x["intent"]["kind"] == "steering"]
        return (
            len(xs) == 4
            and all(x["state"] == "active" for x in xs)
            and [(s["chain"], s["to"]) for s in steer] == [(ids[:2], f"instance:{ids[2]}")]
        )

    until("the chain's four intents active, naming its instances", active, timeout=60)
    archive_ip = insts["archive"]["ip"].split("/")[0]
    until("laptop1 reaches the archive", lambda: "1 received" in _ping(tb, archive_ip), 60)
    socks = {}
    try:
        for b in ORDER:
            socks[b] = raw_socket(f"{tb.prefix}-{insts[b]['node']}-{insts[b]['id']}")
        out = _ping(tb, archive_ip, count=3)
        assert "3 received" in out, out
        got = {b: echo_senders(s, archive_ip, 3) for b, s in socks.items()}
    finally:
        for s in socks.values():
            s.close()
    mac = {b: insts[b]["mac"].lower() for b in ORDER}
    assert got == {
        "collector": [laptop_mac.lower()] * 3,
        "index": [mac["collector"]] * 3,
        "archive": [mac["index"]] * 3,
    }
    return insts


def test_a_subscriptions_chain_carries_its_users_packets_in_chain_order(
    tb: Testbed, api: Api
) -> None:
    laptop = next(h for h in api("GET", "/hosts") if h["name"] == "laptop1")
    sid = _subscribe(api, laptop["mac"])
    before = _path(tb, api, sid, laptop["mac"])

    # The index's instance is lost: the loop runs the block anew (another instance,
    # MAC and address), and the intents move to it.
    api("DELETE", f"/instances/{before['index']['id']}")
    after = _path(tb, api, sid, laptop["mac"])
    assert after["index"]["id"] != before["index"]["id"]
    assert after["collector"]["id"] == before["collector"]["id"]

    api.as_user("alice")("DELETE", f"/catalog/subscriptions/{sid}")
    until("the chain's intents removed", lambda: not _ours(api, sid), timeout=60)


def test_after_the_user_moves_the_packets_cross_the_chain_where_it_was_re_placed(
    tb: Testbed, api: Api
) -> None:
    """Alice carries her laptop to cpe2 (its access port moves to cpe2's bridge) and
    logs in there: the loop re-places her chain (the entry, bound to 5 ms of her,
    migrates to cpe2), and her packets cross the blocks in order where they now run."""
    assert tb.ovs_db is not None
    laptop = next(h for h in api("GET", "/hosts") if h["name"] == "laptop1")
    sid = _subscribe(api, laptop["mac"])
    before = _path(tb, api, sid, laptop["mac"])
    assert before["collector"]["node"] == "cpe1"

    port = str(tb.state.hosts["laptop1"]["port"])
    b = Vsctl(tb.ovs_db).batch()
    b.del_port(port)
    b.add_port(tb.bridge_of("cpe2"), port, peer="host:laptop1")
    b.commit()

    # The login at cpe2, as the firewall's RADIUS server records it on an Access-Accept
    # (this testbed runs no portal): what tells the conduit where alice is now. A
    # port that declares its host is not a sighting (the controller compiles the
    # laptop's flows there and sees no packet of it).
    db = Database(f"sqlite:///{tb.state.dir / 'orchestrator.db'}")
    try:
        with db.session() as s:
            record_event(s, "UserLoggedIn", {"user": "alice", "node": "cpe2", "previous": "cpe1"})
    finally:
        db.dispose()
    until(
        "alice's chain re-placed for cpe2",
        lambda: api("GET", f"/catalog/subscriptions/{sid}")["at"] == "cpe2",
        timeout=60,
    )
    after = _path(tb, api, sid, laptop["mac"])
    assert after["collector"]["id"] == before["collector"]["id"]  # migrated, not recreated
    assert after["collector"]["node"] == "cpe2"
    api.as_user("alice")("DELETE", f"/catalog/subscriptions/{sid}")
    until("the chain's intents removed", lambda: not _ours(api, sid), timeout=60)
