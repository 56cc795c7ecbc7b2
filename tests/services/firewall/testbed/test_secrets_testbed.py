"""Secrets are write-only on a running platform (issue 12, section 5).

The NetFATE case study (services/firewall/topologies/firewall.yaml, the demo's own
steps) configures the most secrets of any demo: a RADIUS client's shared secret,
the accounting server's, the captive portals' (the same random value, as the demo
sets it), a user's password, and the run's credentials (the operator's password and
token, each agent's and the controller's token). After a login at cpe1, a move to
cpe2, a second login and the firewall's migration, while every process still runs,
none of those secrets may be found in:

- any GET of the API (every operation the OpenAPI lists, path parameters filled
  with the run's real names), the event log and the event stream;
- any log the run wrote (orchestrator, agents, controller, every VNF);
- any file under the run's directory readable by others: a file that holds one is
  0600 (owner only) and its directory is closed to others (0700 or so);
- the argument list of any process of the machine (/proc/PID/cmdline: the secrets
  are random, so only this run's processes can hold them).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from pathlib import Path

import httpx

from netfate.host.private import read_private
from netfate.services.firewall import demo
from netfate.testbed.builder import Testbed

EXAMPLE = demo.TOPOLOGY
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
    assert rows, "the scenario migrated the firewall"
    return {f"migration {mid} secret": str(secret) for mid, secret in rows}


def credentials(tb: Testbed) -> dict[str, str]:
    """The run's credentials, from its secrets directory (tokens, the operator's
    password)."""
    out: dict[str, str] = {}
    for f in sorted(tb.state.secrets.iterdir()):
        text = read_private(f)
        assert text, f
        if f.suffix == ".json":
            out[f"{f.name}:password"] = str(json.loads(text)["password"])
        else:
            out[f.name] = text
    assert {"operator.token", "operator.json:password"} <= set(out), sorted(out)
    assert any(k.startswith("agent-") for k in out) and any(k.startswith("controller") for k in out)
    return out


class Leaks:
    def __init__(self, secrets: dict[str, str]) -> None:
        assert all(len(v) >= 8 for v in secrets.values()), "too short to be found reliably"
        self.secrets = secrets
        self.found: list[str] = []

    def scan(self, where: str, data: bytes | str) -> bool:
        raw = data.encode() if isinstance(data, str) else data
        hit = [k for k, v in self.secrets.items() if v.encode() in raw]
        self.found += [f"{where}: {k}" for k in hit]
        return bool(hit)


def path_values(api: httpx.Client, sc: demo.Scenario) -> dict[str, str]:
    """A real value for each path parameter the API's GETs take."""
    insts = api.get("/api/v1/instances").raise_for_status().json()
    portal = next(i for i in insts if i["descriptor"] == "captive-portal")
    return {
        "node": "cpe2",
        "name": "cpe2",
        "iid": portal["id"],
        "address": "192.168.0.0/16",
        "intent_id": f"firewall-{demo.USER}",
    }


def fill(path: str, values: dict[str, str]) -> str:
    if path.startswith(("/api/v1/firewall/users/", "/api/v1/accounts/")):
        values = {**values, "name": demo.USER}
    # A parameter this run has no value for gets one that names nothing: its answer
    # (a 404) is scanned all the same.
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: str(values.get(m.group(1), "none")), path)


def scan_api(tb: Testbed, sc: demo.Scenario, leaks: Leaks) -> None:
    assert tb.api_url and tb.api_token
    auth = {"authorization": f"Bearer {tb.api_token}"}
    with httpx.Client(base_url=tb.api_url, headers=auth, timeout=30.0) as api:
        doc = api.get("/api/v1/openapi.json").raise_for_status().json()
        gets = sorted(p for p, ops in doc["paths"].items() if "get" in ops)
        values = path_values(api, sc)
        ok = 0
        for path in gets:
            if path in (DESIRED, STREAM):
                continue
            r = api.get(fill(path, values))
            assert r.status_code < 500, (path, r.status_code, r.text[:300])
            ok += r.status_code == 200
            leaks.scan(f"GET {path}", r.content)
        assert len(gets) > 30 and ok > 30, (len(gets), ok)
        events = api.get("/api/v1/events", params={"limit": 5000}).raise_for_status().json()
        kinds = {e["kind"] for e in events}
        assert {"UserLoggedIn", "FirewallMigrated"} <= kinds, sorted(kinds)
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


def scan_files(root: Path, leaks: Leaks) -> list[str]:
    """Every regular file under the run's directory: a secret in a log is a leak; in
    another file, when the file is open to group or others or its directory to others.
    Returns the logs scanned."""
    logs: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            f = Path(dirpath) / name
            st = f.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            try:
                data = f.read_bytes()
            except OSError:
                continue  # gone meanwhile (a temporary file renamed)
            if name.endswith(".log"):
                logs.append(str(f.relative_to(root)))
                leaks.scan(f"log {f}", data)
                continue
            hit = [k for k, v in leaks.secrets.items() if v.encode() in data]
            if not hit:
                continue
            where = f.parent.stat().st_mode
            if st.st_mode & 0o077 or where & 0o007:
                leaks.found.append(f"{f} ({oct(st.st_mode & 0o777)}, in a directory "
                                   f"{oct(where & 0o777)}): {hit}")  # fmt: skip
    return logs


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


def test_no_secret_in_reads_logs_files_or_argv(run_prefix: str) -> None:
    said: list[str] = []
    with Testbed.up(EXAMPLE, prefix=run_prefix, sdn=demo.SDN) as tb:
        sc = demo.Scenario(tb, said.append)
        try:
            sc.setup()
            sc.wait_captive()
            sc.login("cpe1")
            sc.wait_firewall_running("cpe1")
            sc.move_client("cpe2")
            sc.login("cpe2")
            sc.wait_migrated("cpe2")
            leaks = Leaks(
                {"radius secret": sc.secret, "user password": demo.PASSWORD,
                 **credentials(tb), **migration_secrets(tb)}
            )  # fmt: skip
            procs = scan_processes(leaks)
            scan_api(tb, sc, leaks)
            logs = scan_files(tb.state.dir, leaks)
        finally:
            sc.close()
    # What was scanned: every kind of process log of the run.
    assert procs > 10
    assert "logs/orchestrator.log" in logs and "logs/controller.log" in logs, logs
    assert any(p.startswith("logs/agent-") for p in logs), logs
    assert sum(p.startswith("agents/") for p in logs) >= 3, logs  # the portals, the firewall
    assert leaks.found == [], "\n".join(leaks.found)
