"""The night switch-off on the testbed (topologies/fog.yaml), a step the catalog's
demo can call: ``night(tb, say)``.

1. acme publishes ``sensor-night`` (a 50 ms round-trip bound: it may run at the
   edge as well as at home); alice (cpe1) and bob (cpe2) subscribe;
2. a compressed day: one consolidation pass (POST /catalog/consolidate) at each
   hour the clock gives, under a load curve where the homes are busy by day and
   idle at night (the edge, pe1, 80 W idle, is the node to save):
   - by day (14:00) the homes have no room: the chains run at pe1;
   - at night (03:00) they fit at home: their instances migrate there (the
     platform's make-before-break migration), pe1 is drained and off;
   - in the morning (11:00) the homes fill again: pe1 is on, the chains move back;
   after each pass the instances run where the catalog placed them (never two
   copies: each block is one instance, moved) and pe1's power is as decided;
3. both unsubscribe.

What off means on this testbed: model/lifecycle.py NodePower (pe1's namespace,
switch and agent stay; it hosts nothing and counts 0 W).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from netfate.demo.platform import Api, DemoFailed, Say
from netfate.demo.sdn import until
from netfate.testbed.builder import Testbed

from .night import Clock

V = "/catalog"
USERS = {"alice": "cpe1", "bob": "cpe2"}
"""Each user's home (the demo's users; demo.py imports this module, not the reverse)."""
NIGHT_CHAIN = """
name: sensor-night
summary: Collects a home sensor's readings and archives them, anywhere within 50 ms.
blocks:
  - {name: collector, function: counter, cpu: 0.2}
  - {name: archive, function: forwarder, storage_mb: 100}
talks: [{from: collector, to: archive, mbps: 1}]
user_mbps: 1
sla: {latency_ms: 50, availability: 0.98}
"""
CURVE = {
    "cpe1": {"low": 0.1, "high": 2.5},
    "cpe2": {"low": 0.1, "high": 2.5},
    "pe1": {"low": 0.2, "high": 0.5},
}
"""Background CPU (cores): the homes (2 CPUs each in fog.yaml) idle at night, full
from late morning (a cosine peaking at 15:00: at 11:00 already 1.9 of their 2)."""
DAY = (14.0, 3.0, 11.0)
"""The compressed day the check runs: afternoon, night, morning."""
EDGE = "pe1"


class Hours:
    """A clock (night.Clock) that gives the hours of a list, one per pass."""

    def __init__(self, hours: Sequence[float]) -> None:
        self._hours: Iterator[float] = iter(hours)

    def hour(self) -> float:
        return next(self._hours)


def _settled(api: Api, sids: Sequence[str]) -> dict[str, dict[str, str]] | None:
    """Each subscription's block -> node once every instance runs where the catalog
    placed it (None while one is still moving)."""
    out: dict[str, dict[str, str]] = {}
    for sid in sids:
        sub = api("GET", f"{V}/subscriptions/{sid}")
        for i in sub["instances"]:
            if i["state"] == "failed":
                inst = api("GET", f"/instances/{i['instance']}")
                raise DemoFailed(f"{sid}: {i['block']} failed: {inst['detail']}")
            if i["state"] != "running":
                return None
            if api("GET", f"/instances/{i['instance']}")["node"] != i["node"]:
                return None  # the move's end not recorded yet (or undone: the loop re-places)
        out[sid] = {i["block"]: i["node"] for i in sub["instances"]}
    return out


def _pass(api: Api, hour: float) -> list[dict[str, Any]]:
    """One consolidation pass at `hour`, again while something still moves."""

    def decided() -> tuple[list[dict[str, Any]]] | None:
        got = api("POST", f"{V}/consolidate", {"hour": hour, "curve": CURVE})
        ds: list[dict[str, Any]] = got["decisions"]
        return None if any(d["action"] == "wait" for d in ds) else (ds,)  # [] decided too

    (got,) = until(f"a consolidation pass at {hour:g} h", decided, 120)
    out: list[dict[str, Any]] = got
    return out


def day(api: Api, say: Say, sids: Sequence[str], clock: Clock, passes: int) -> list[str]:
    """`passes` consolidation passes at the clock's hours; pe1's power after each."""
    powers = []
    for _ in range(passes):
        hour = clock.hour()
        decisions = _pass(api, hour)
        for d in decisions:
            say(f"{d['action']}: {d['why']}")
        if not decisions:
            say(f"at {hour:05.2f} h nothing to switch")
        where = until("the instances running where placed", lambda: _settled(api, sids), 180)
        power = until(
            f"{EDGE} on or off",
            lambda: (p := api("GET", f"/nodes/{EDGE}")["power"]) != "draining" and p,
            120,
        )
        say(f"{EDGE} {power}; the chains run at {where}")
        powers.append(power)
    return powers


def night(tb: Testbed, say: Say, clock: Clock | None = None, passes: int = len(DAY)) -> list[str]:
    """The whole step (the module docstring); pe1's power after each pass."""
    if tb.api_url is None:
        raise DemoFailed("the testbed runs without orchestrator")
    api = Api(tb.api_url)
    acme = api.as_user("acme", role="provider")
    acme("POST", f"{V}/chains", {"provider": "acme", "descriptor": NIGHT_CHAIN})
    sids = []
    for user, at in USERS.items():
        sub = api.as_user(user)("POST", f"{V}/subscriptions",
                                {"user": user, "chain": "sensor-night", "at": at})  # fmt: skip
        sids.append(sub["id"])
    until("the night chains running", lambda: _settled(api, sids), 120)
    say(f"alice and bob subscribed to sensor-night (50 ms): {sids}")
    powers = day(api, say, sids, clock or Hours(DAY), passes)
    for user, sid in zip(USERS, sids, strict=True):
        gone = api.as_user(user)("DELETE", f"{V}/subscriptions/{sid}")
        for i in api("GET", f"{V}/subscriptions/{gone['id']}")["instances"]:
            api.wait_state(i["instance"], "gone", timeout=60)
    say("the night chains ended")
    return powers
