"""Find a run's secrets where they must not be (issue 12, section 5): in a GET of the
API (every operation the OpenAPI lists), the event log and stream, a log of the run,
a file under the run's directory open to others, or a process's argument list or
environment. Used by the testbed tests of the demos that configure secrets
(tests/services/*/testbed/test_secrets_*.py, and the streaming ingest's passphrases
and stream keys: tests/services/streaming/testbed/test_streaming_ingest.py).

    leaks = Leaks({"what": secret, ...} | credentials(tb))
    scan_processes(leaks); events = scan_api(tb, leaks, values); scan_files(root, leaks)
    assert leaks.found == []
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

import httpx

from netfate.host.private import read_private
from netfate.testbed.builder import Testbed

DESIRED = "/api/v1/agents/{node}/desired"
"""An agent's own desired state carries its functions' secrets: they run with them
(tests/unit/test_secrets.py proves that read is the only one)."""
STREAM = "/api/v1/events/stream"


def migration_secrets(tb: Testbed) -> dict[str, str]:
    """The per-migration secrets the orchestrator gave the agents (from its database,
    opened read-only: no API read shows them)."""
    db = sqlite3.connect(f"file:{tb.state.dir / 'orchestrator.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id, secret FROM migrations WHERE secret IS NOT NULL").fetchall()
    finally:
        db.close()
    assert rows, "the scenario migrated an instance"
    return {f"migration {mid} secret": str(secret) for mid, secret in rows}


def credentials(tb: Testbed, *, controller: bool = True) -> dict[str, str]:
    """The run's credentials, from its secrets directory (tokens, the operator's
    password; the controller's where the run has one)."""
    out: dict[str, str] = {}
    for f in sorted(tb.state.secrets.iterdir()):
        text = read_private(f)
        assert text, f
        if f.suffix == ".json":
            out[f"{f.name}:password"] = str(json.loads(text)["password"])
        else:
            out[f.name] = text
    assert {"operator.token", "operator.json:password"} <= set(out), sorted(out)
    assert any(k.startswith("agent-") for k in out), sorted(out)
    assert any(k.startswith("controller") for k in out) == controller, sorted(out)
    return out


class Leaks:
    """Secrets by what they are; `found` lists where each was found."""

    def __init__(self, secrets: dict[str, str]) -> None:
        assert all(len(v) >= 8 for v in secrets.values()), "too short to be found reliably"
        self.secrets = secrets
        self.found: list[str] = []

    def scan(self, where: str, data: bytes | str) -> bool:
        raw = data.encode() if isinstance(data, str) else data
        hit = [k for k, v in self.secrets.items() if v.encode() in raw]
        self.found += [f"{where}: {k}" for k in hit]
        return bool(hit)


def fill(path: str, values: dict[str, str]) -> str:
    """`path` with its parameters from `values` (by name, or "PATH-PREFIX:name" for one
    route family). A parameter the run has no value for gets one that names nothing:
    its answer (a 404) is scanned all the same."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        for key, v in values.items():
            family, _, param = key.rpartition(":")
            if family and param == name and path.startswith(family):
                return v
        return values.get(name, "none")

    return re.sub(r"\{(\w+)(?::\w+)?\}", one, path)


def scan_api(tb: Testbed, leaks: Leaks, values: dict[str, str]) -> list[dict[str, object]]:
    """Every GET of the OpenAPI as the operator (who reads everything), the event log
    and the event stream; returns the events."""
    assert tb.api_url and tb.api_token
    auth = {"authorization": f"Bearer {tb.api_token}"}
    with httpx.Client(base_url=tb.api_url, headers=auth, timeout=30.0) as api:
        doc = api.get("/api/v1/openapi.json").raise_for_status().json()
        gets = sorted(p for p, ops in doc["paths"].items() if "get" in ops)
        ok = 0
        for path in gets:
            if path in (DESIRED, STREAM):
                continue
            r = api.get(fill(path, values))
            assert r.status_code < 500, (path, r.status_code, r.text[:300])
            ok += r.status_code == 200
            leaks.scan(f"GET {path}", r.content)
        assert len(gets) > 30 and ok > 30, (len(gets), ok)
        events: list[dict[str, object]] = (
            api.get("/api/v1/events", params={"limit": 5000}).raise_for_status().json()
        )
        assert 0 < len(events) < 5000
        leaks.scan("GET /api/v1/events", json.dumps(events))
        seen = 0
        with api.stream("GET", STREAM, params={"after": 0}) as r:
            for line in r.iter_lines():  # every event so far (then it would wait)
                if line.startswith("data:"):
                    leaks.scan(STREAM, line)
                    seen += 1
                    if seen >= len(events):
                        break
        assert seen >= len(events)
    return events


def scan_files(root: Path, leaks: Leaks, also: Iterable[Path] = ()) -> list[str]:
    """Every regular file under the run's directory and under the paths `also` (the
    functions' own files elsewhere): a secret in a log is a leak; in another file,
    when the file is open to group or others or its directory to others. Returns the
    logs scanned (relative to `root` where under it)."""
    logs: list[str] = []
    for top in [root, *also]:
        walked = os.walk(top) if top.is_dir() else [(str(top.parent), [], [top.name])]
        for dirpath, _dirs, files in walked:
            for name in files:
                f = Path(dirpath) / name
                try:
                    st = f.lstat()
                    data = f.read_bytes() if stat.S_ISREG(st.st_mode) else None
                except OSError:
                    continue  # gone meanwhile (a temporary file renamed)
                if data is None:
                    continue
                if name.endswith(".log"):
                    logs.append(str(f.relative_to(root) if f.is_relative_to(root) else f))
                    leaks.scan(f"log {f}", data)
                    continue
                hit = [k for k, v in leaks.secrets.items() if v.encode() in data]
                where = f.parent.stat().st_mode
                if hit and (st.st_mode & 0o077 or where & 0o007):
                    leaks.found.append(f"{f} ({oct(st.st_mode & 0o777)}, in a directory "
                                       f"{oct(where & 0o777)}): {hit}")  # fmt: skip
    return logs


def temp_files(instances: Iterable[str]) -> list[Path]:
    """What the run's functions made in the machine's temporary directory (a portal's
    leases, a vHG's dnsmasq files): the names there carry the instance's id."""
    tmp = Path(tempfile.gettempdir())
    return sorted(p for i in instances for p in tmp.glob(f"*{i}*"))


def scan_processes(leaks: Leaks) -> int:
    """The argument list (anyone reads it) and the environment (inherited by every
    child, and printed by many tools) of every process of the machine."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # ended meanwhile
        n += 1
        leaks.scan(f"argv of {pid} ({argv[:120]!r})", argv)
        leaks.scan(f"environment of {pid} ({argv[:120]!r})", env)
    return n
