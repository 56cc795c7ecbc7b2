"""The CLI signed in, against a real orchestrator process on 127.0.0.1: `netfate
admin create-operator` on its database, `netfate login` (the token kept in a 0600
file of the user's config directory), commands that then carry it, `netfate events
--actor`, an agent token written to a 0600 file, `netfate logout`; NETFATE_TOKEN
wins over a kept login."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from orchproc import REPO, Orchestrator


def netfate(
    home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("NETFATE_TOKEN", "NETFATE_API")}
    e |= {"XDG_CONFIG_HOME": str(home), "NETFATE_RUN_DIR": str(home / "runs")} | (env or {})
    return subprocess.run([sys.executable, "-m", "netfate", *args], input=stdin, text=True,
                          capture_output=True, cwd=REPO, env=e, timeout=120)  # fmt: skip


def test_admin_login_commands_events_logout(orch: Orchestrator, tmp_path: Path) -> None:
    home = tmp_path / "home"
    api = ["--api", orch.base]
    r = netfate(home, "admin", "create-operator", "ops", "--database-url",
                f"sqlite:///{orch.db}", "--password-stdin", stdin="the ops password\n")  # fmt: skip
    assert r.returncode == 0 and "made operator ops" in r.stdout, r.stderr
    assert "the ops password" not in r.stdout
    again = netfate(home, "admin", "create-operator", "ops", "--database-url",
                    f"sqlite:///{orch.db}", "--password-stdin", stdin="another one\n")  # fmt: skip
    assert again.returncode == 1 and "exists" in again.stderr

    # Not signed in: a clear refusal.
    r = netfate(home, "vnf", "list", *api)
    assert r.returncode == 1 and "401" in r.stderr and "netfate login" in r.stderr
    r = netfate(home, "login", "--name", "ops", "--password-stdin", *api,
                stdin="the ops password\n")  # fmt: skip
    assert r.returncode == 0 and "signed in" in r.stdout, r.stderr
    kept = home / "netfate" / "tokens.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    token = json.loads(kept.read_text())[orch.base]["token"]
    assert netfate(home, "vnf", "list", *api).returncode == 0

    out = tmp_path / "cpe1.token"
    r = netfate(home, "accounts", "agent-token", "cpe1", "--out", str(out), *api)
    assert r.returncode == 0 and out.stat().st_mode & 0o777 == 0o600, r.stderr
    assert out.read_text().strip() not in r.stdout + r.stderr
    r = netfate(home, "accounts", "create", "pat", "--role", "provider", *api)
    assert r.returncode == 0 and "password (shown once)" in r.stdout

    r = netfate(home, "events", "--actor", "ops", "--json", *api)
    assert r.returncode == 0, r.stderr
    did = json.loads(r.stdout)
    served = [e["data"]["path"] for e in did if e["kind"] == "RequestServed"]
    assert served == ["/api/v1/accounts/agents", "/api/v1/accounts"]
    assert {e["actor"] for e in did} == {"ops"}

    # NETFATE_TOKEN wins over the kept login.
    r = netfate(home, "accounts", "me", *api, env={"NETFATE_TOKEN": orch.token})
    assert json.loads(r.stdout)["name"] == "admin"
    r = netfate(home, "logout", *api)
    assert r.returncode == 0 and orch.base not in json.loads(kept.read_text())
    got = httpx.get(f"{orch.base}/api/v1/auth/me", headers={"authorization": f"Bearer {token}"})
    assert got.status_code == 401  # revoked, not only forgotten
