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

import secrets

import httpx

from netfate.demo.platform import Api
from netfate.services.firewall import demo
from netfate.testbed.builder import Testbed
from secret_scan import (
    Leaks,
    credentials,
    migration_secrets,
    scan_api,
    scan_files,
    scan_processes,
    temp_files,
)

EXAMPLE = demo.TOPOLOGY


def path_values(tb: Testbed) -> dict[str, str]:
    """A real value for each path parameter the API's GETs take."""
    assert tb.api_url
    insts = Api(tb.api_url, tb.api_token)("GET", "/instances")
    portal = next(i for i in insts if i["descriptor"] == "captive-portal")
    return {
        "node": "cpe2",
        "name": "cpe2",
        "/api/v1/firewall/users/:name": demo.USER,
        "/api/v1/accounts/:name": demo.USER,
        "iid": portal["id"],
        "address": "192.168.0.0/16",
        "intent_id": f"firewall-{demo.USER}",
    }


def account(tb: Testbed) -> dict[str, str]:
    """An end user's account made by the operator, its API token and web session
    (their cookie and CSRF token), each used once."""
    assert tb.api_url
    made = Api(tb.api_url, tb.api_token)("POST", "/accounts", {"name": "carol", "role": "user"})
    signin = {"name": "carol", "password": made["password"]}
    with httpx.Client(base_url=tb.api_url + "/api/v1", timeout=30.0) as c:
        token = c.post("/auth/token", json=signin).raise_for_status().json()["token"]
        me = c.get("/auth/me", headers={"authorization": f"Bearer {token}"})
        web = c.post("/auth/session", json=signin).raise_for_status()
        assert me.status_code == 200 and c.get("/auth/me").status_code == 200
    return {"account password": made["password"], "account token": token,
            "session": web.cookies["netfate_session"], "csrf": web.json()["csrf"]}  # fmt: skip


def test_no_secret_in_reads_logs_files_or_argv(run_prefix: str) -> None:
    said: list[str] = []
    with Testbed.up(EXAMPLE, prefix=run_prefix, sdn=demo.SDN) as tb:
        sc = demo.Scenario(tb, said.append)
        try:
            sc.setup()
            sc.wait_captive()
            # A wrong password tried first: refused, and no more written down than a
            # right one (portal, RADIUS server, events).
            wrong = "wrong-" + secrets.token_hex(8)
            form = ["--data-urlencode", f"username={demo.USER}",
                    "--data-urlencode", f"password={wrong}"]  # fmt: skip
            login = f"http://{sc.portals['cpe1']}/login"
            r = tb.exec("client1", ["curl", "-s", "-m", "10", *form, login])
            assert "Logged in as" not in r.stdout and r.stdout, r.stdout
            sc.login("cpe1")
            sc.wait_firewall_running("cpe1")
            sc.move_client("cpe2")
            sc.login("cpe2")
            sc.wait_migrated("cpe2")
            leaks = Leaks(
                {"radius secret": sc.secret, "user password": demo.PASSWORD, "tried": wrong,
                 **credentials(tb), **migration_secrets(tb), **account(tb)}
            )  # fmt: skip
            procs = scan_processes(leaks)
            events = scan_api(tb, leaks, path_values(tb))
            ids = [i["id"] for i in Api(tb.api_url, tb.api_token)("GET", "/instances")]
            # (the demo's portals serve no DHCP: no leases of theirs in /tmp)
            logs = scan_files(tb.state.dir, leaks, temp_files(ids))
        finally:
            sc.close()
    # What was scanned: the scenario's events, every kind of process log of the run.
    assert {"UserLoggedIn", "FirewallMigrated"} <= {e["kind"] for e in events}
    assert procs > 10
    assert "logs/orchestrator.log" in logs and "logs/controller.log" in logs, logs
    assert any(p.startswith("logs/agent-") for p in logs), logs
    assert sum(p.startswith("agents/") for p in logs) >= 3, logs  # the portals, the firewall
    assert leaks.found == [], "\n".join(leaks.found)
