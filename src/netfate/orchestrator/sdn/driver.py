"""The controller's driver: the threads, the clock and HTTP around the core.

    poller             GET /api/v1/sdn/view (a long poll): view + intents, given to
                       the core; every switch woken when what they should hold changed
    outbox             POST /api/v1/sdn/events: the core's reports, in order
    a runner per switch   the core's reconcile steps for that switch, when woken or
                       when its next table read is due

Everything here reads `time.monotonic()` and hands it to the core as `now`;
reports are stamped with the wall clock as they are handed over.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from netfate.orchestrator.sdn.core import ControllerCore
from netfate.orchestrator.sdn.intents import ViewAndIntents
from netfate.orchestrator.sdn.keeper import SwitchKeeper, Timers
from netfate.orchestrator.sdn.osken_switch import OsKenSwitch
from netfate.orchestrator.sdn.reports import Report

log = logging.getLogger("netfate.sdn")

LONG_POLL_S = 1.0
"""The view's long poll is held at most this long, so settle() is looked at that often."""


@dataclass
class Settings:
    orchestrator: str
    """Base URL, e.g. http://127.0.0.1:8080 (the API lives under /api/v1)."""
    poll_interval_s: float = 0.5
    snapshot_interval_s: float = 2.0
    """How often each switch's table is read back (counters, drift repair)."""
    post_interval_s: float = 5.0
    """How often a table is sent to the orchestrator when its flows did not change."""
    reply_timeout_s: float = 5.0
    suppress_s: int = 10
    """How long packet-ins from one (port, MAC) are dropped at the switch once handled."""
    verify: ssl.SSLContext | bool = True
    """How the orchestrator's certificate is checked (clihelp.client_tls)."""
    token: str | None = None
    """The controller's credential (it may read the view and post events only)."""

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def timers(self) -> Timers:
        return Timers(self.snapshot_interval_s, self.post_interval_s, self.suppress_s)


class SwitchRunner:
    """The thread that runs one switch's reconcile steps (they block on its replies)."""

    def __init__(self, core: ControllerCore, io: OsKenSwitch, keeper: SwitchKeeper) -> None:
        self.core = core
        self.io = io
        self.keeper = keeper
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"switch-{io.dpid:x}", daemon=True)

    def stop(self) -> None:
        self.io.stop()
        self.wake.set()

    def _run(self) -> None:
        while self.io.alive:
            try:
                step = self.core.reconcile(self.keeper, self.io, time.monotonic())
                if step.retry_after is not None:
                    time.sleep(step.retry_after)
                    self.wake.set()
            except Exception:
                # One switch's trouble (a bad reply, a bug) must not end its thread for good.
                log.exception("switch %016x: reconcile step failed", self.io.dpid)
                time.sleep(self.keeper.failed())
            if self.io.alive:
                self.wake.wait(max(0.0, self.keeper.next_snapshot - time.monotonic()))
                self.wake.clear()
        log.info("switch %016x: thread ends", self.io.dpid)


class ViewPoller:
    """Keeps the core's view equal to the orchestrator's, as soon as it changes."""

    def __init__(
        self, settings: Settings, core: ControllerCore, wake_all: Callable[[], None]
    ) -> None:
        self.settings = settings
        self.core = core
        self.wake_all = wake_all

    def run(self) -> None:
        url = f"{self.settings.orchestrator.rstrip('/')}/api/v1/sdn/view"
        brain = self.core.brain
        # A long poll: the orchestrator answers when the version changes (or after
        # LONG_POLL_S), so a migrated instance's flows move within milliseconds.
        client = httpx.Client(
            timeout=5.0 + LONG_POLL_S, verify=self.settings.verify, headers=self.settings.headers
        )
        failing = False
        while True:
            t0 = time.monotonic()
            try:
                params: dict[str, str | float] = {"since": brain.version or "", "wait": LONG_POLL_S}
                r = client.get(url, params=params if brain.version else None)
                r.raise_for_status()
                raw = r.json()
                if failing:
                    log.info("orchestrator reachable again")
                failing = False
                version = raw.get("version") if isinstance(raw, dict) else None
                if version and version == brain.version:
                    # Unchanged: skip validating thousands of intents twice a second.
                    if self.core.settle(time.monotonic()):
                        self.wake_all()
                    # An orchestrator that does not hold the poll is asked at the interval.
                    time.sleep(max(0.0, self.settings.poll_interval_s - (time.monotonic() - t0)))
                    continue
                data = ViewAndIntents.model_validate(raw)
                t1 = time.monotonic()
                if self.core.take_view(data):
                    log.debug(
                        "view %s taken in %.1f ms", data.version, 1e3 * (time.monotonic() - t1)
                    )
                    self.wake_all()
                elif self.core.settle(time.monotonic()):
                    self.wake_all()
            except Exception as e:  # keep the last view; switches keep their flows
                if not failing:
                    log.warning("cannot read the view from %s: %s", url, e)
                failing = True
                time.sleep(self.settings.poll_interval_s)


@dataclass
class Outbox:
    """POSTs events in order from its own thread; packet-in handling never waits on HTTP."""

    url: str
    verify: ssl.SSLContext | bool = True
    headers: dict[str, str] = field(default_factory=dict)
    q: queue.Queue[dict[str, Any]] = field(default_factory=lambda: queue.Queue(maxsize=10000))

    def put(self, report: Report) -> None:
        event = report.to_json(time.time())
        try:
            self.q.put_nowait(event)
        except queue.Full:
            log.warning("event outbox full; dropping a %s event", event.get("kind"))

    def run(self) -> None:
        client = httpx.Client(timeout=5.0, verify=self.verify, headers=self.headers)
        failing = False
        while True:
            ev = self.q.get()
            if ev.get("kind") == "host_seen":
                # A host_seen is raised in the middle of installing that host's flows:
                # posting it a moment later keeps HTTP off that path's GIL time.
                time.sleep(0.02)
            for attempt in range(20):
                try:
                    r = client.post(f"{self.url}/api/v1/sdn/events", json=ev)
                    if r.status_code < 500:
                        if r.status_code >= 400:
                            log.warning(
                                "orchestrator refused a %s event: %s", ev.get("kind"), r.text[:200]
                            )
                        failing = False
                        break
                except httpx.HTTPError as e:
                    if not failing:
                        log.warning("cannot post events to the orchestrator: %s", e)
                    failing = True
                if ev.get("kind") == "flows":
                    break  # snapshots are periodic; do not hold up the queue for a stale one
                time.sleep(min(2.0, 0.1 * (attempt + 1)))
