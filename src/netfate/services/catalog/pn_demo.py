"""The demo's Personal Networks (issue 15 §2): each user's first subscription makes
their PN at their home, with its vHG, and the laptop they name joins it.

`check_pn` reads what the subscribing answer said against the platform: the PN is
the user's (any account name, not only an email), on their node's LAN; its vHG
runs; its devices are the ones the user named, and their MACs are the
subscription's `devices` (the catalog's and the PN's sets agree). With `dhcp`, the
laptop asks for a lease on its LAN (busybox udhcpc) and the vHG's dnsmasq offers one
with itself as router; the laptop records it but keeps its own address (the rest of
the demo reaches it there), and the lease shows in the PN's inventory from the vHG's
own report. The catalog reaches the PN only through the platform's API here too.
"""

from __future__ import annotations

from typing import Any

from netfate.demo import dhcp as udhcpc
from netfate.demo.platform import Api, DemoFailed, Say
from netfate.demo.sdn import until
from netfate.testbed.builder import Testbed


def check_pn(
    tb: Testbed,
    api: Api,
    user: str,
    at: str,
    laptop: str,
    sub: dict[str, Any],
    say: Say,
    dhcp: bool = False,
) -> dict[str, Any]:
    """The user's PN as their first subscription made it (module doc); returns it."""
    made = sub["personal_network"]
    pn = made["pn"]
    if not made["created"] or pn is None:
        raise DemoFailed(f"{user}'s first subscription made no PN: {made}")
    lans = [str(n) for n in tb.topology.nodes[at].lans]
    if (pn["owner"], pn["node"], pn["subnet"]) != (user, at, lans[0]):
        raise DemoFailed(f"{user}'s PN is {pn['owner']} at {pn['node']} {pn['subnet']}, "
                         f"not {user} at {at} {lans[0]}")  # fmt: skip
    vhg = api.wait_state(pn["vhg_instance"], "running", 60)
    mac = {h["name"]: h["mac"].lower() for h in api("GET", "/hosts")}[laptop]
    now = api.as_user(user)("GET", f"/sharing/pns/{user}")
    members = [d for d in now["devices"] if d["source"] == "topology"]
    if now["members"] != [laptop] or [d["name"] for d in members] != [laptop]:
        raise DemoFailed(f"{user}'s PN holds {now['members']} / {members}, not [{laptop}]")
    if sub["devices"] != [mac]:
        raise DemoFailed(f"{user}'s subscription lists {sub['devices']}, not {laptop}'s {mac}")
    say(
        f"{user}'s first subscription made {user}'s Personal Network at {at}: LAN "
        f"{pn['subnet']}, vHG {vhg['id']} running at {str(vhg['ip']).split('/')[0]}; "
        f"{laptop} ({mac}) joined it and is the subscription's device"
    )
    if dhcp:
        vhg_ip = str(vhg["ip"]).split("/")[0]
        lease, router = udhcpc.lease(tb.netns_of(laptop), laptop, take=False)
        if router != vhg_ip:
            raise DemoFailed(f"{laptop}'s lease {lease} names router {router}, not {vhg_ip}")
        found: dict[str, Any] = {}

        def listed() -> bool:
            for d in api("GET", f"/sharing/pns/{user}/devices"):
                if d["ip"] == lease and d["source"] == "lease":
                    found.update(d)
            return bool(found)

        until(f"{lease} in {user}'s PN's inventory", listed, 30.0)
        if str(found.get("mac", "")).lower() != mac:
            raise DemoFailed(f"the lease {lease} is {found.get('mac')}'s, not {laptop}'s")
        say(f"{user}'s vHG offered {laptop} the lease {lease}, itself as router; the PN "
            f"lists it from the vHG's report ({laptop} keeps its own address)")  # fmt: skip
    return dict(now)
