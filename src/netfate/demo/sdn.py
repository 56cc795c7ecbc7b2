"""The SDN demo (issue: SDN controller): the demo network with bridges in secure
mode under netfate's own OpenFlow controller.

check(): nothing but the fabric intents opens the bridges; laptop1 reaches laptop2
on the direct path, as the switches' flow counters show; a steering
intent sends laptop1's traffic through a `forwarder` instance on pe1, and the
instance's own packet counter proves the packets crossed it; deleting the intent
removes exactly its flows and the direct path is back (the counter stands still).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from netfate.demo.platform import EXAMPLES, Api, DemoFailed, Say
from netfate.host import netns
from netfate.testbed.builder import Testbed

TOPOLOGY = EXAMPLES / "demo.yaml"
SDN = True


def until(what: str, cond: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _ping(tb: Testbed, src: str, dst_ip: str, count: int = 1) -> bool:
    r = tb.exec(
        src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", dst_ip], check=False
    )
    return r.returncode == 0


def rx_packets(ns: str) -> int:
    """Packets received by eth0 in namespace `ns` (an instance's one interface)."""
    out = netns.run_in(ns, ["cat", "/proc/net/dev"]).stdout
    for line in out.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "eth0":
            return int(rest.split()[1])
    raise DemoFailed(f"no eth0 in namespace {ns}")


def check(tb: Testbed, say: Say) -> None:
    if tb.api_url is None or not tb.state.sdn:
        raise DemoFailed("this scenario needs a testbed with its SDN controller")
    api = Api(tb.api_url, tb.api_token)
    laptop2 = str(tb.topology.hosts["laptop2"].ip)

    intents = api("GET", "/intents")
    if not intents or any(i["state"] != "active" for i in intents):
        until(
            "fabric intents active",
            lambda: all(i["state"] == "active" for i in api("GET", "/intents")),
        )
    say(f"bridges in secure mode; {len(api('GET', '/intents'))} fabric intents active")
    until("laptop1 -> laptop2 on the direct path", lambda: _ping(tb, "laptop1", laptop2))
    counted = until(
        "cpe1's flow counters to count laptop1's packets",
        lambda: sum(f["packets"] for f in api("GET", "/nodes/cpe1/flows")["flows"]),
    )
    say(f"laptop1 reaches laptop2 directly; cpe1's flows have counted {counted} packets")

    inst = api("POST", "/instances", {"descriptor": "forwarder", "node": "pe1"})
    iid = inst["id"]
    api.wait_state(iid, "running")
    ns = f"{tb.prefix}-pe1-{iid}"
    say(f"forwarder {iid} running on pe1")

    intent_id = f"demo-{iid}"
    api(
        "POST",
        "/intents",
        {
            "kind": "steering",
            "id": f"demo-{iid}",
            "host": "laptop1",
            "chain": [iid],
            "to": "host:laptop2",
        },
    )
    until(
        "the steering intent to be active",
        lambda: api("GET", f"/intents/{intent_id}")["state"] == "active",
    )
    until("laptop1 -> laptop2 through the forwarder", lambda: _ping(tb, "laptop1", laptop2))
    before = rx_packets(ns)
    if not _ping(tb, "laptop1", laptop2, count=5):
        raise DemoFailed("pings through the steering intent were lost")
    crossed = rx_packets(ns) - before
    if crossed < 5:
        raise DemoFailed(f"only {crossed} packets crossed the forwarder for 5 pings")
    say(f"steered laptop1 -> {iid} -> laptop2: {crossed} packets crossed the forwarder for 5 pings")

    api("DELETE", f"/intents/{intent_id}")
    until("laptop1 -> laptop2 on the direct path again", lambda: _ping(tb, "laptop1", laptop2))
    # Flows are removed by the controller shortly after the API forgets the intent.
    until("the forwarder to see no more of laptop1's pings", lambda: _quiet(tb, ns, laptop2))
    say("intent deleted: laptop1 reaches laptop2 directly again, bypassing the forwarder")
    api("DELETE", f"/instances/{iid}")
    api.wait_state(iid, "gone")


def _quiet(tb: Testbed, ns: str, laptop2: str) -> bool:
    before = rx_packets(ns)
    ok = _ping(tb, "laptop1", laptop2, count=3)
    return ok and rx_packets(ns) - before < 3


def show(tb: Testbed, say: Say) -> None:
    if tb.api_url is None:
        return
    say("secure-mode bridges under the controller; try: netfate flow list, netfate flow show cpe1")
