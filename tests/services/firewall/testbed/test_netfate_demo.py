"""The NetFATE case study on a real testbed (services/firewall/topologies/firewall.yaml):
orchestrator, agents, OVS in secure mode under netfate's SDN controller, the portal and firewall
VNFs, nftables, conntrack, RADIUS in pe1.

The scenario's check() is the test: login at cpe1 starts the firewall there, the
blocked port is blocked, a TCP connection survives the move to cpe2 (migration
with conntrack state), the blocked port stays blocked, the idle release happens,
and the tables and the timeline say so. Any failed step raises DemoFailed.
"""

from __future__ import annotations

from browser import chromium
from netfate.services.firewall import demo
from netfate.testbed.builder import Testbed

EXAMPLE = demo.TOPOLOGY


def test_netfate_case_study(run_prefix: str) -> None:
    said: list[str] = []
    with Testbed.up(EXAMPLE, prefix=run_prefix, sdn=demo.SDN) as tb:
        demo.check(tb, said.append)
        assert tb.api_url
        tables = dashboard_tables(tb)
    assert any("alice" in row for row in tables["users"]), tables
    # After the idle release (d), Table II says the firewall is no longer active.
    assert any("firewall" in row and "no" in row for row in tables["functions"]), tables
    assert any(m.startswith("(c) login at cpe2: firewall migrated") for m in said)
    # On secure bridges: traffic crossed the firewall at each CPE, steered by intents.
    assert sum("crossed" in m or "through the firewall at cpe2" in m for m in said) >= 2
    assert any(m.startswith("steering follows the firewall") for m in said)
    assert any(m.startswith("after the release: steering intent") for m in said)
    assert any(m.startswith("(d) idle") for m in said)


def dashboard_tables(tb: Testbed) -> dict[str, list[str]]:
    """The NFVI tables as the dashboard shows them, in headless Chromium (Debian's),
    signed in as the run's operator."""
    url, operator = tb.api_url, tb.operator()
    assert url and operator
    with chromium() as browser:
        ctx = browser.new_context()
        signed = ctx.request.post(f"{url}/api/v1/auth/session",
                                  data={"name": operator[0], "password": operator[1]})  # fmt: skip
        assert signed.ok, signed.text()
        page = ctx.new_page()
        page.goto(url + "/")
        page.wait_for_selector("table.firewall-users tr td", timeout=30_000)
        return {
            key: page.locator(f"table.firewall-{key} tr").all_inner_texts()
            for key in ("users", "functions", "forwarding")
        }
