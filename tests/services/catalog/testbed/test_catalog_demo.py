"""`netfate demo catalog --check` (services/catalog/topologies/fog.yaml) exits 0: a
chain published, two subscriptions placed by the engine whose instances really run
(the agents start them in their namespaces and report them running), the
provider's abstract view, each chain's steering intents stored, alice's walk from
cpe1 to cpe2 (a login at each CPE's captive portal through the firewall service's
RADIUS server; her whole chain follows her, the entry under the SLA's bound and the
archive with it, the decision saying why; moved with its state, one copy of each
block, her laptop answered at cpe2), an upgrade to v2, both unsubscribed
(their intents gone), and the night: the edge switched off and on again
(services/catalog/demo.py)."""

from __future__ import annotations

import re
import subprocess
import sys

from netfate.host import netns


def test_demo_catalog_check_exits_zero() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "netfate", "demo", "catalog", "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "acme published sensor-archive v1: templates ['collector', 'archive']" in out
    assert "alice subscribed at cpe1: placed on cpe1 by mix" in out
    # The first subscription made each user's PN (an account name, not an email) at
    # home, its vHG running, the laptop the user named in it (pn_demo.py checks each).
    assert re.search(r"alice's first subscription made alice's Personal Network at cpe1: "
                     r"LAN 192\.168\.81\.0/24, vHG i-\w+ running at 192\.168\.81\.\d+; "
                     r"laptop1 \([0-9a-f:]{17}\) joined it and is the subscription's device",
                     out), out[-6000:]  # fmt: skip
    assert (
        "bob's first subscription made bob's Personal Network at cpe2: LAN 192.168.82.0/24" in out
    )
    assert re.search(r"alice's vHG offered laptop1 the lease 192\.168\.81\.1\d\d, itself as "
                     r"router; the PN lists it", out), out[-6000:]  # fmt: skip
    assert "alice's instances run: {'archive': 'cpe1', 'collector': 'cpe1'}" in out
    assert "bob's instances run: {'archive': 'cpe2', 'collector': 'cpe2'}" in out
    assert "alice's laptop asked the collector at 192.168.81." in out
    assert "bob's laptop asked the collector at 192.168.82." in out
    # The conduit's loop stored each chain's intents: the laptop steered through it.
    assert out.count(" steered: laptop1 -> collector -> archive (") == 1, out[-6000:]
    assert out.count(" steered: laptop2 -> collector -> archive (") == 1, out[-6000:]
    assert out.count("unsubscribed: the instances and the intents are gone") == 2
    assert "acme sees 2 subscriptions at abstract sites ['site-" in out
    assert "alice logged in at cpe1's captive portal (RADIUS): her chain stays at cpe1" in out
    assert "alice's chain followed: user seen at cpe2 (login): moved on " in out
    # The whole chain follows her: the archive's traffic would cross pe1 otherwise.
    assert "alice's blocks at cpe2: the whole chain" in out
    assert "archive follows collector: 1 Mbit/s between them would cross " in out
    assert re.search(r"alice's instances, one copy each: \{'archive': \['i-\w+@cpe2'\], "
                     r"'collector': \['i-\w+@cpe2'\]\}", out)  # fmt: skip
    assert "alice's laptop at cpe2 asked the collector at 192.168.81." in out
    assert "(its count of " in out
    assert "alice's subscription still runs v1" in out
    assert "alice moved to v2" in out and "v1's instances stopped" in out
    assert "demo check passed" in out
    prefix = out.split("as run ", 1)[1].split()[0]
    assert netns.list_with_prefix(prefix + "-") == []
