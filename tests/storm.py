"""Concurrent clients against a real orchestrator over HTTP (issue 10, section 3).

Clients are threads, each with its own connection. The agents are played by one
more thread through the same API (desired state in, reports out): they run what
they are asked to, complete most migrations and fail some, and drop what is being
destroyed. What must hold whatever the interleaving is checked in the database,
each time in one snapshot: no address held twice, no node over its CPU or memory
(counting migration targets' reservations as coordinator.used_capacity does), at
most one open migration per instance; and in the answers: no 5xx, every refusal a
409 with its reason under "detail".
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from netfate.apiclient import SignedIn
from netfate.demo.sdn import until
from netfate.host.ports import free_port
from netfate.model.topology import Topology
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.store import Database

TOPOLOGY = Path(__file__).resolve().parents[1] / "examples" / "contention.yaml"
TOPO: dict[str, Any] = Topology.load(TOPOLOGY).to_dict()
NODES = ("cpe1", "cpe2", "pe1", "core1")
HOSTING = ("cpe1", "cpe2", "pe1")
CAPACITY = 30  # counters that fit (the topology file says how)
# Placed creates: each succeeds if any node has room.
PLACED: tuple[dict[str, Any], ...] = (
    {"descriptor": "counter", "serves": "laptop1"},
    {"descriptor": "counter", "serves": "laptop2"},
    {"descriptor": "counter"},
)
PINNED: tuple[dict[str, Any], ...] = tuple({"descriptor": "counter", "node": n} for n in HOSTING)
EXPECTED = {
    "create": {201, 409},
    "migrate": {202, 409},
    "destroy": {202, 409},
    "desired": {200},
    "report": {200},
    "health": {200},
}


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """The app behind a real uvicorn server on 127.0.0.1, in a thread of this process."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    t = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    t.start()
    try:
        until("the server to start", lambda: server.started, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(30)


SIGNED_IN: dict[str, SignedIn] = {}
"""Each orchestrator's credentials by its base URL (`sign_in`)."""


def sign_in(base: str, credentials: SignedIn) -> None:
    """Every client of `base` from now on sends these credentials."""
    SIGNED_IN[base] = credentials


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base + "/api/v1", timeout=120.0, auth=SIGNED_IN.get(base))


def prepare(base: str) -> None:
    with client(base) as c:
        r = c.put("/topology", json=TOPO)
        assert r.status_code == 200, r.text
        for n in NODES:
            r = c.post(f"/agents/{n}/register", json={"endpoint": f"127.0.0.1:{n}"})
            assert r.status_code == 200, r.text


@dataclass(frozen=True)
class Answer:
    op: str
    status: int
    body: Any
    started: float
    """time.monotonic() when the request was sent."""


class Log:
    """Every answer, from every thread; and the ids of the instances created."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self.created: dict[str, dict[str, Any]] = {}

    def call(self, c: httpx.Client, op: str, method: str, path: str, body: Any = None) -> Answer:
        t = time.monotonic()
        try:
            r = c.request(method, path, json=body)
            status, content = r.status_code, _json(r)
        except httpx.TransportError as e:  # the orchestrator itself failed: never expected
            status, content = 0, repr(e)
        a = Answer(op, status, content, t)
        with self._lock:
            self.answers.append(a)
            if op == "create" and status == 201:
                self.created[content["id"]] = content
        return a

    def created_ids(self) -> list[str]:
        with self._lock:
            return list(self.created)

    def statuses(self, op: str | None = None) -> Counter[int]:
        with self._lock:
            return Counter(a.status for a in self.answers if op is None or a.op == op)


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


def creates_at_once(base: str, log: Log, bodies: list[dict[str, Any]]) -> None:
    """One thread per create, all released together."""
    gate = threading.Barrier(len(bodies))

    def one(body: dict[str, Any]) -> None:
        with client(base) as c:
            c.get("/health")  # connected before the gate opens
            gate.wait()
            log.call(c, "create", "POST", "/instances", body)

    threads = [threading.Thread(target=one, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)


class Agents(threading.Thread):
    """Every node's agent, played through the API."""

    def __init__(self, base: str, log: Log, seed: int = 1) -> None:
        super().__init__(name="agents", daemon=True)
        self.base, self.log = base, log
        self.rng = random.Random(seed)
        self.halt = threading.Event()

    def run(self) -> None:
        with client(self.base) as c:
            while not self.halt.is_set():
                for node in NODES:
                    d = self.log.call(c, "desired", "GET", f"/agents/{node}/desired")
                    if d.status == 200:
                        self.log.call(
                            c, "report", "POST", f"/agents/{node}/report", self.report(d.body)
                        )
                time.sleep(0.01)

    def report(self, desired: dict[str, Any]) -> dict[str, Any]:
        instances, migrations = [], []
        for spec in desired["instances"]:
            m = spec.get("migration")
            if spec["role"] == "standby" and m and m["role"] == "target":
                ok = self.rng.random() < 0.8
                migrations.append(
                    {
                        "id": m["id"],
                        "instance": spec["id"],
                        "status": "done" if ok else "failed",
                        "downtime_ms": 1.0,
                        "state_bytes": 8,
                        "reason": "" if ok else "the played agent refused it",
                    }
                )
                if not ok:
                    continue
            instances.append({"id": spec["id"], "status": "running", "role": "active", "pid": 1})
        return {"instances": instances, "migrations": migrations}

    def stop(self) -> None:
        self.halt.set()
        self.join(60)


class Mixer(threading.Thread):
    """Creates (placed and pinned), migrations and destroys in random order, until
    `ops` are done or `halt` is set."""

    def __init__(self, base: str, log: Log, halt: threading.Event, seed: int, ops: int) -> None:
        super().__init__(name=f"mixer-{seed}", daemon=True)
        self.base, self.log, self.halt, self.ops = base, log, halt, ops
        self.rng = random.Random(seed)

    def run(self) -> None:
        with client(self.base) as c:
            for _ in range(self.ops):
                if self.halt.is_set():
                    return
                ids = self.log.created_ids()
                x = self.rng.random()
                if x < 0.35 or not ids:
                    body = self.rng.choice(PLACED + PINNED)
                    self.log.call(c, "create", "POST", "/instances", body)
                elif x < 0.75:
                    iid, target = self.rng.choice(ids), self.rng.choice(HOSTING)
                    self.log.call(
                        c, "migrate", "POST", f"/instances/{iid}/migrate", {"node": target}
                    )
                else:
                    self.log.call(c, "destroy", "DELETE", f"/instances/{self.rng.choice(ids)}")


class Sampler(threading.Thread):
    """Checks the database's invariants over and over while the storm runs."""

    def __init__(self, db: Database) -> None:
        super().__init__(name="sampler", daemon=True)
        self.db = db
        self.halt = threading.Event()
        self.problems: list[str] = []
        self.samples = 0

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.problems += problems(self.db)
                self.samples += 1
            except Exception:  # the database may be down (the kill test): try again
                time.sleep(0.05)
            time.sleep(0.02)

    def stop(self) -> list[str]:
        self.halt.set()
        self.join(60)
        return self.problems


def problems(db: Database) -> list[str]:
    """coordinator.violations, read in one snapshot of the database."""
    with db.session(write=False) as s:
        if not db.url.startswith("sqlite"):  # a SQLite read transaction is a snapshot
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return nfv.violations(s)


def bad_answers(log: Log, allowed_503: Callable[[Answer], bool] = lambda _a: False) -> list[str]:
    """Answers outside what each operation may answer; refusals without a reason."""
    out = []
    for a in log.answers:
        ok = a.status in EXPECTED[a.op] or (a.status == 503 and allowed_503(a))
        if not ok:
            out.append(f"{a.op}: {a.status} {a.body!r}"[:400])
        elif a.status >= 400 and not (
            isinstance(a.body, dict) and isinstance(a.body.get("detail"), str)
        ):
            out.append(f"{a.op}: {a.status} without a keyed reason: {a.body!r}"[:400])
    return out


def stored(base: str) -> Counter[str]:
    """Every instance id the API lists, gone ones included, with how often."""
    with client(base) as c:
        r = c.get("/instances", params={"include_gone": "true", "limit": 100000})
        assert r.status_code == 200, r.text
        return Counter(i["id"] for i in r.json())


def check_created(base: str, log: Log) -> None:
    """Every create answered 201 exists, once, where and with the address it was told."""
    ids = stored(base)
    with client(base) as c:
        for iid, told in log.created.items():
            assert ids[iid] == 1, (iid, ids[iid])
            got = c.get(f"/instances/{iid}").json()
            assert got["ip"] == told["ip"], (iid, told["ip"], got["ip"])
