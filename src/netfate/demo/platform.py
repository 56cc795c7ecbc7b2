"""The platform demo (issue: platform core): two CPEs with a client each, a PE.

check(): create a `counter` instance for laptop1, prove laptop1's traffic reaches
it, migrate it to cpe2 and prove its state came along (the count goes on), destroy
it and prove nothing of it remains. Each step raises DemoFailed with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from netfate.apiclient import find_token
from netfate.clihelp import client_tls
from netfate.demo.probe import CounterProbe, ProbeError
from netfate.host import netns
from netfate.model.lifecycle import MigrationPhase
from netfate.testbed.builder import Testbed

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
"""The platform's example topologies (a source checkout's; the services keep theirs)."""
TOPOLOGY = EXAMPLES / "demo.yaml"
Say = Callable[[str], None]


class DemoFailed(Exception):
    pass


class Api:
    """The orchestrator's API, signed in: as `token`, or (None) as whoever the CLI
    would be (NETFATE_TOKEN, `netfate login`, the testbed run's operator)."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.root = base.rstrip("/")
        self.base = self.root + "/api/v1"
        token = token or find_token(self.root)
        headers = {"authorization": f"Bearer {token}"} if token else None
        # NETFATE_CA for https
        self.http = httpx.Client(timeout=30.0, headers=headers, verify=client_tls())
        self._users: dict[str, Api] = {}

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        r = self.http.request(method, self.base + path, json=body)
        if r.status_code >= 400:
            raise DemoFailed(f"{method} {path} -> {r.status_code}: {r.text[:500]}")
        return r.json()

    def as_user(self, name: str, role: str = "user") -> Api:
        """The API signed in as the end user (or, with `role`, the provider) `name` (an
        operator's Api makes the account, or gives it a new password, and signs in
        with it; kept per name)."""
        if name not in self._users:
            r = self.http.post(self.base + "/accounts", json={"name": name, "role": role})
            if r.status_code == 409:  # made earlier: a new password, to sign in with
                r = self.http.post(self.base + f"/accounts/{name}/password", json={})
            if r.status_code >= 400:
                raise DemoFailed(f"account {name}: {r.status_code}: {r.text[:300]}")
            signed = httpx.post(self.base + "/auth/token", timeout=30.0, verify=client_tls(),
                                json={"name": name, "password": r.json()["password"]})  # fmt: skip
            if signed.status_code != 200:
                raise DemoFailed(f"{name} cannot sign in: {signed.status_code}: {signed.text}")
            self._users[name] = Api(self.root, signed.json()["token"])
        return self._users[name]

    def forget(self, name: str) -> None:
        """`as_user(name)` signs in afresh next time: its password was reset elsewhere
        (which revoked the token kept here)."""
        self._users.pop(name, None)

    def wait_state(self, iid: str, want: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            inst: dict[str, Any] = self("GET", f"/instances/{iid}")
            if inst["state"] == want:
                return inst
            if inst["state"] == "failed":
                raise DemoFailed(f"instance {iid} failed: {inst['detail']}")
            if time.monotonic() > deadline:
                raise DemoFailed(f"instance {iid} still {inst['state']} after {timeout:.0f} s")
            time.sleep(0.05)

    def wait_migration(self, iid: str, mid: int, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            inst = self("GET", f"/instances/{iid}")
            mig: dict[str, Any] = next(m for m in inst["migrations"] if m["id"] == mid)
            if mig["phase"] == MigrationPhase.DONE:
                return mig
            if mig["phase"] == MigrationPhase.FAILED:
                raise DemoFailed(f"migration {mid} failed: {mig['reason']}")
            if time.monotonic() > deadline:
                raise DemoFailed(f"migration {mid} still {mig['phase']} after {timeout:.0f} s")
            time.sleep(0.05)


def check(tb: Testbed, say: Say) -> None:
    if tb.api_url is None:
        raise DemoFailed("the testbed runs without orchestrator")
    api = Api(tb.api_url, tb.api_token)
    laptop = tb.netns_of("laptop1")

    inst = api("POST", "/instances", {"descriptor": "counter", "serves": "laptop1"})
    iid, ip = inst["id"], inst["ip"].split("/")[0]
    say(f"created {iid} for laptop1: placed on {inst['node']} at {ip}")
    inst = api.wait_state(iid, "running")
    ts = {t["state"]: t["at"] for t in inst["transitions"]}
    say(f"{iid} running after {(ts['running'] - ts['requested']) * 1000:.0f} ms")

    with CounterProbe(laptop, ip) as probe:
        try:
            first = [probe.ask() for _ in range(3)]
        except ProbeError as e:
            raise DemoFailed(f"laptop1 cannot reach {iid}: {e}") from e
        if any(r.instance != iid for r in first) or [r.count for r in first] != [1, 2, 3]:
            raise DemoFailed(f"unexpected answers from {ip}: {first}")
        say(f"laptop1's traffic reaches {iid} (counts {[r.count for r in first]})")

        target = "cpe2" if inst["node"] != "cpe2" else "cpe1"
        mig = api("POST", f"/instances/{iid}/migrate", {"node": target})
        mig = api.wait_migration(iid, mig["id"])
        say(
            f"migrated {iid} {mig['source']} -> {mig['target']}: downtime "
            f"{mig['downtime_ms']:.2f} ms, {mig['state_bytes']} bytes of state"
        )
        try:
            after = probe.ask()
        except ProbeError as e:
            raise DemoFailed(f"laptop1 lost {iid} after the migration: {e}") from e
        if after.count != 4:
            raise DemoFailed(f"state did not move: count {after.count} after 3, expected 4")
        say(f"state moved with it: laptop1's next request is number {after.count}")

    api("DELETE", f"/instances/{iid}")
    api.wait_state(iid, "gone")
    # `gone` means the agent of its node removed it. The copy a migration left at
    # the source is removed by that agent on its own, right after the hand-off.
    deadline = time.monotonic() + 10
    while left := [n for n in netns.list_with_prefix(tb.prefix + "-") if iid in n]:
        if time.monotonic() > deadline:
            raise DemoFailed(f"namespaces of {iid} remain after destroy: {left}")
        time.sleep(0.05)
    say(f"destroyed {iid}: nothing of it remains")


def show(tb: Testbed, say: Say) -> None:
    """Leave one instance running for the person looking at the dashboard."""
    if tb.api_url is None:
        return
    api = Api(tb.api_url, tb.api_token)
    inst = api("POST", "/instances", {"descriptor": "counter", "serves": "laptop1"})
    api.wait_state(inst["id"], "running")
    say(f"instance {inst['id']} runs on {inst['node']} for laptop1 at {inst['ip']}")
    say(f"try: netfate vnf migrate {inst['id']} cpe2")
