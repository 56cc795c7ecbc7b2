"""The catalog on the testbed (topologies/fog.yaml): ``netfate demo catalog``.

check() walks through it, each step raising DemoFailed with the reason:

1. a provider publishes ``sensor-archive`` v1 (a collector and an archive, the
   platform's counter and forwarder functions, a 5 ms round-trip bound): stored
   as templates, nothing runs;
2. two users subscribe, one at each home, each naming the laptop that joins their
   Personal Network: the first subscription makes the user's PN (pn_demo.py: the
   sharing service's, on their home's LAN, its vHG running, the laptop in it and the
   subscription's device; alice's vHG offers her laptop a DHCP lease); the engine
   places each chain, its decision explained; the agents start the instances
   (real processes in their namespaces) and report them running; each user's
   laptop asks its collector (the platform's UDP counter) and gets an answer; the
   conduit's loop stores the chain's SDN intents (the laptop's traffic steered
   through the blocks in chain order), said with their states (compiled against the
   view: no controller runs);
3. the provider sees its subscriptions with abstract sites, never a node name;
4. alice walks from cpe1 to cpe2 (walk.py): she logs in at cpe1's captive portal
   (the firewall service's RADIUS server records the login; nothing moves), her
   laptop's port goes to cpe2's bridge, she logs in at cpe2's portal; the conduit
   re-places her chain on the login and the platform migrates what moves: her
   collector (the entry, under the SLA's bound) runs at cpe2, in the warm standby
   cpe2 kept ready (fog.yaml's `predeploy:`; the policy picked the counter, asked
   there by bob's chain; its migration's record says it took it), the archive where
   the engine's decision says (it follows: left at cpe1, the 1 Mbit/s between the
   blocks would cross cpe2 -> pe1 -> cpe1 and add 20 ms to the chain's path, more
   than a move costs), each the instance it was, one copy of each; the demo says
   which blocks followed and the decision's why; the collector's count of her
   requests came along, and her laptop at cpe2 gets its answers;
5. the provider publishes v2 (a third block); v1 keeps running until a user
   asks to move: then v2's instances run and v1's stop;
6. both unsubscribe: every instance stops, and the intents go;
7. the night (night_demo.py): a looser chain for each user, a compressed day
   under a load curve: by day the chains run at the edge (pe1), at night they
   migrate home and pe1 is drained and switched off, in the morning it is on again.

The dashboard's catalog panel (static/panel.js) shows each subscription's
placement and its decisions' reasons as they happen.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from netfate.demo.platform import Api, DemoFailed, Say
from netfate.demo.probe import CounterProbe, ProbeError, Reply
from netfate.demo.sdn import until
from netfate.testbed.builder import Testbed

from .night_demo import USERS, night
from .pn_demo import check_pn
from .walk import Portals, move

TOPOLOGY = Path(__file__).parent / "topologies" / "fog.yaml"
V = "/catalog"
CHAIN = """
name: sensor-archive
summary: Collects a home sensor's readings and archives them near their owner.
blocks:
  - {name: collector, function: counter, cpu: 0.2}
  - {name: archive, function: forwarder, storage_mb: 100}
talks: [{from: collector, to: archive, mbps: 1}]
user_mbps: 1
sla: {latency_ms: 5, availability: 0.98}
"""
V2 = CHAIN.replace(
    "  - {name: archive", "  - {name: index, function: counter}\n  - {name: archive"
).replace("talks: [{from: collector, to: archive, mbps: 1}]", "")
LAPTOPS = {"alice": "laptop1", "bob": "laptop2"}


def _running(api: Api, sub: dict[str, Any]) -> dict[str, Any]:
    def all_run() -> dict[str, Any] | None:
        now: dict[str, Any] = api("GET", f"{V}/subscriptions/{sub['id']}")
        states = {i["state"] for i in now["instances"]}
        if "failed" in states:
            raise DemoFailed(f"{sub['id']}: an instance failed: {now['instances']}")
        return now if states == {"running"} else None

    got: dict[str, Any] = until(f"{sub['id']}'s instances running", all_run, timeout=90)
    return got


def _intents(api: Api, sid: str) -> list[dict[str, Any]]:
    return [i for i in api("GET", "/intents") if i["intent"]["id"].startswith(f"catalog-{sid}-")]


def _intents_gone(api: Api, sid: str) -> bool:
    return not _intents(api, sid)


def _steered(api: Api, sub: dict[str, Any]) -> str:
    """The path the conduit asked of the network for a subscription (steering.py), once
    its intents are stored, with their states (this demo runs without the controller:
    `active` says they compile against the network's view, not that a switch holds them)."""
    sid = sub["id"]

    def stored() -> list[dict[str, Any]] | None:
        xs = _intents(api, sid)
        return xs if any(x["intent"]["kind"] == "steering" for x in xs) else None

    got: list[dict[str, Any]] = until(f"{sid}'s steering intent", stored, timeout=60)
    block = {i["instance"]: i["block"] for i in sub["instances"]}
    steer = next(x["intent"] for x in got if x["intent"]["kind"] == "steering")
    hops = [block.get(i, i) for i in steer["chain"]]
    to = block.get(steer["to"].partition(":")[2], steer["to"])
    prefix = f"catalog-{sid}-"
    states = ", ".join(
        sorted(f"{x['intent']['id'].removeprefix(prefix)} {x['state']}" for x in got)
    )
    return f"{sid} steered: {steer['host']} -> {' -> '.join(hops)} -> {to} ({states})"


def _subscribe(tb: Testbed, say: Say) -> tuple[Api, dict[str, dict[str, Any]]]:
    """Acme (signed in as the provider) publishes; each user (signed in as itself)
    subscribes. The operator's Api, and the subscriptions, are returned."""
    if tb.api_url is None:
        raise DemoFailed("the testbed runs without orchestrator")
    api = Api(tb.api_url)
    acme = api.as_user("acme", role="provider")
    v1 = acme("POST", f"{V}/chains", {"provider": "acme", "descriptor": CHAIN})
    blocks = [b["name"] for b in v1["templates"]["blocks"]]
    say(f"acme published {v1['name']} v{v1['version']}: templates {blocks}; nothing runs")
    subs = {}
    for user, at in USERS.items():
        # the laptop joins the user's PN, and its MAC is the subscription's device
        sub = api.as_user(user)("POST", f"{V}/subscriptions",
                                {"user": user, "chain": "sensor-archive", "at": at,
                                 "pn_devices": [LAPTOPS[user]]})  # fmt: skip
        say(f"{user} subscribed at {at}: {sub['decisions'][-1]['why']}")
        check_pn(tb, api, user, at, LAPTOPS[user], sub, say, dhcp=user == "alice")
        subs[user] = _running(api.as_user(user), sub)
        where = {i["block"]: i["node"] for i in subs[user]["instances"]}
        say(f"{user}'s instances run: {where}")
        say(_steered(api, subs[user]))
        ip, reply = ask_collector(tb, api, user, subs[user])
        say(f"{user}'s laptop asked the collector at {ip}: instance {reply.instance} answered")
    return api, subs


def ask_collector(tb: Testbed, api: Api, user: str, sub: dict[str, Any]) -> tuple[str, Reply]:
    """The user's laptop asks the chain's collector (the platform's UDP counter, in
    its namespace): its address and its answer."""
    coll = next(i for i in sub["instances"] if i["block"] == "collector")
    ip = str(api("GET", f"/instances/{coll['instance']}")["ip"]).split("/")[0]
    try:
        with CounterProbe(tb.netns_of(LAPTOPS[user]), ip) as probe:
            return ip, probe.ask()
    except ProbeError as e:
        raise DemoFailed(f"{user}'s collector does not answer: {e}") from None


def followed(api: Api, sub: dict[str, Any], node: str, timeout: float = 90) -> dict[str, Any]:
    """The subscription once its user is recorded at `node`, its entry block (the one
    the user talks to, under the SLA's bound) was placed there, and every block runs
    where that decision put it. (The engine moves a block without a bound of its own
    only when that pays, e.g. to keep the traffic between blocks off the links: its
    reason says so.)"""

    def there() -> dict[str, Any] | None:
        now: dict[str, Any] = api("GET", f"{V}/subscriptions/{sub['id']}")
        placed = now["decisions"][-1]["nodes"]
        if now["at"] != node or placed.get("collector") != node:
            return None
        if all(i["node"] == placed.get(i["block"]) and i["state"] == "running"
               for i in now["instances"]):  # fmt: skip
            return now
        return None

    got: dict[str, Any] = until(f"{sub['id']}'s chain following to {node}", there, timeout=timeout)
    return got


def copies(api: Api, sub: dict[str, Any]) -> dict[str, list[str]]:
    """Block -> the live instances of that block (its name), on the platform's list."""
    out: dict[str, list[str]] = {i["block"]: [] for i in sub["instances"]}
    for inst in api("GET", "/instances"):
        for block in out:
            if inst["name"] == f"{sub['id']}-{block}" and inst["state"] != "gone":
                out[block].append(f"{inst['id']}@{inst['node']}")
    return out


def standby_ready(api: Api, node: str, function: str, timeout: float = 60) -> str:
    """Wait until `node`'s agent reports a warm standby of `function` ready (the
    pre-deploy policy planned it from the demand there: fog.yaml's `predeploy:`)."""
    t0 = time.monotonic()

    def ready() -> dict[str, Any] | None:
        plan: dict[str, Any] = api("GET", "/predeploy").get(node, {})
        return plan if (plan.get("standbys_ready") or {}).get(function, 0) > 0 else None

    plan: dict[str, Any] = until(f"{node}'s warm standby of {function}", ready, timeout=timeout)
    return (
        f"{node} keeps a warm standby of {function} (pre-deployed: planned "
        f"{plan['standbys']}, ready {plan['standbys_ready']}; waited "
        f"{time.monotonic() - t0:.1f} s for its report)"
    )


def walk(tb: Testbed, api: Api, sub: dict[str, Any], portals: Portals, say: Say) -> dict[str, Any]:
    """alice logs in at home (cpe1), walks to cpe2 and logs in there; her chain follows
    (module docstring, step 4). Returns her subscription once it runs at cpe2."""
    user, laptop = "alice", LAPTOPS["alice"]
    # A few requests first: a fresh counter (state lost) would answer 1 (or a little
    # more, when a reply was lost and the probe asked again), never more than these.
    for _ in range(4):
        _, before = ask_collector(tb, api, user, sub)
    portals.login(laptop, "cpe1", user)
    say(f"{user} logged in at cpe1's captive portal (RADIUS): her chain stays at cpe1")
    say(standby_ready(api, "cpe2", "counter"))
    move(tb, laptop, "cpe2")
    portals.login(laptop, "cpe2", user)
    say(f"{user} walked to cpe2 with {laptop} and logged in at cpe2's captive portal")
    now = followed(api, sub, "cpe2")
    say(f"{user}'s chain followed: {now['decisions'][-1]['why']}")
    there = sorted(i["block"] for i in now["instances"] if i["node"] == "cpe2")
    left = sorted(i["block"] for i in now["instances"] if i["node"] != "cpe2")
    whole = "the whole chain" if not left else f"{there} only ({left} stayed)"
    say(f"{user}'s blocks at cpe2: {whole}")
    old = {i["block"]: (i["instance"], i["node"]) for i in sub["instances"]}
    new = {i["block"]: (i["instance"], i["node"]) for i in now["instances"]}
    if {b: i for b, (i, _) in old.items()} != {b: i for b, (i, _) in new.items()}:
        raise DemoFailed(f"{user}'s chain was recreated, not moved: {old} -> {new}")
    for block, (iid, node) in new.items():
        if node == old[block][1]:
            continue
        migs = api("GET", f"/instances/{iid}")["migrations"]
        if not migs or migs[-1]["target"] != node or migs[-1]["phase"] != "done":
            raise DemoFailed(f"{block} ({iid}) has no finished migration to {node}: {migs}")
        warm = "warm standby" in migs[-1]["reason"]
        if block == "collector" and not warm:
            plan = api("GET", "/predeploy").get(node, {})
            raise DemoFailed(
                f"the collector's move to {node} took no pre-deployed standby: "
                f"{migs[-1]['reason']!r}; {node}'s plan {plan.get('standbys')}, "
                f"ready {plan.get('standbys_ready')}"
            )
        say(f"{block}'s move to {node}: {migs[-1]['reason'] or 'a cold start there'}")
    seen = copies(api, now)
    if any(len(v) != 1 for v in seen.values()):
        raise DemoFailed(f"two copies of a block: {seen}")
    say(f"{user}'s instances, one copy each: {seen}")
    ip, after = ask_collector(tb, api, user, now)
    if after.instance != before.instance or after.count <= before.count:
        raise DemoFailed(
            f"the collector's state did not come along: {before} then, at cpe2, {after}"
        )
    say(
        f"{user}'s laptop at cpe2 asked the collector at {ip}: instance {after.instance} "
        f"answered, request {after.count} of hers (its count of {before.count} came along)"
    )
    return now


def check(tb: Testbed, say: Say) -> None:
    api, subs = _subscribe(tb, say)
    acme, alice = api.as_user("acme", role="provider"), api.as_user("alice")
    view = acme("GET", f"{V}/providers/acme/subscriptions")
    text = repr(view)
    leaked = [n for n in (*USERS.values(), "pe1") if n in text]
    if leaked or len(view) != len(USERS):
        raise DemoFailed(f"the provider's view shows {leaked} or {len(view)} subscriptions")
    sites = sorted({b["site"] for v in view for b in v["blocks"]})
    say(f"acme sees {len(view)} subscriptions at abstract sites {sites}")

    portals = Portals(tb, api, USERS.values(), USERS)
    say(f"captive portals run at {sorted(portals.ip)}; RADIUS in pe1")
    subs["alice"] = walk(tb, api, subs["alice"], portals, say)

    v2 = acme("POST", f"{V}/chains", {"provider": "acme", "descriptor": V2})
    still = alice("GET", f"{V}/subscriptions/{subs['alice']['id']}")["version"]
    say(f"acme published v{v2['version']}; alice's subscription still runs v{still}")
    old = {i["instance"] for i in subs["alice"]["instances"]}
    up = alice("POST", f"{V}/subscriptions/{subs['alice']['id']}/upgrade", {})
    up = _running(alice, up)
    say(f"alice moved to v{up['version']}: {[i['block'] for i in up['instances']]} run")
    for iid in old:
        api.wait_state(iid, "gone", timeout=60)
    say("v1's instances stopped")

    for user, sub in subs.items():
        ended = api.as_user(user)("DELETE", f"{V}/subscriptions/{sub['id']}")
        for i in api("GET", f"{V}/subscriptions/{ended['id']}")["instances"]:
            api.wait_state(i["instance"], "gone", timeout=60)
        until(f"{sub['id']}'s intents removed", partial(_intents_gone, api, sub["id"]), 60)
        say(f"{user} unsubscribed: the instances and the intents are gone")
    night(tb, say)
    say("demo check passed")


def show(tb: Testbed, say: Say) -> None:
    """Leave both subscriptions running for the person at the terminal."""
    _subscribe(tb, say)
    say(f"try: curl {tb.api_url}/api/v1/catalog/providers/acme/subscriptions")
