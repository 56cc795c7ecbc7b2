"""The dashboard's catalog panel (services/catalog/static/panel.js, registered through
the contract's `panels`) in headless Chromium (Debian's), on the demo's fog: the
operator's page, on loopback where the run's orchestrator serves it, is open while
the demo's steps run; the panel shows each subscription's placement and its latest
decision's reason once the users subscribe, and both change when alice walks from
cpe1 to cpe2 (a login at cpe2's captive portal, services/catalog/walk.py). The
catalog's events reach the page's live feed too. Every wait is for a selector or
a condition in the page."""

from __future__ import annotations

from typing import Any

from browser import chromium
from netfate.services.catalog import demo
from netfate.services.catalog.walk import Portals
from netfate.testbed.builder import Testbed

T = 90_000
"""Milliseconds the page gets for each state (the instances start, or move)."""
PANEL = "#panel-catalog"


def _sub(user: str, at: str) -> str:
    return f"{PANEL} .catalog-subscription[data-user='{user}'][data-at='{at}']"


def _why(page: Any, user: str, at: str) -> str:
    return str(page.locator(f"{_sub(user, at)} .catalog-decision.latest .catalog-why").inner_text())


def test_the_panel_shows_placements_and_reasons_live(run_prefix: str) -> None:
    with Testbed.up(demo.TOPOLOGY, prefix=run_prefix) as tb, chromium() as browser:
        op = tb.operator()
        assert tb.api_url and op
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.goto(tb.api_url + "/")  # behind sign-in: the form, then the dashboard
        page.fill("#signin-name", op[0])
        page.fill("#signin-password", op[1])
        page.click("#signin-submit")
        page.wait_for_selector("body[data-ready='1']", timeout=T)
        page.wait_for_selector("#conn[data-state='live']", timeout=T)
        page.wait_for_selector(f"{PANEL} h2", state="attached", timeout=T)
        assert page.locator(PANEL + " .catalog-subscription").count() == 0

        said: list[str] = []
        api, subs = demo._subscribe(tb, said.append)
        for user, at in demo.USERS.items():
            page.wait_for_selector(
                f"{_sub(user, at)} .catalog-block[data-block='collector'][data-node='{at}']"
                "[data-state='running']",
                state="attached",
                timeout=T,
            )
            assert _why(page, user, at).startswith(f"placed on {at} by mix"), _why(page, user, at)
        latest = page.locator(f"{_sub('alice', 'cpe1')} .catalog-decision.latest")
        assert latest.get_attribute("data-action") == "placed"

        portals = Portals(tb, api, demo.USERS.values(), demo.USERS)
        now = demo.walk(tb, api, subs["alice"], portals, said.append)
        placed = {i["block"]: i["node"] for i in now["instances"]}
        for block, node in placed.items():
            page.wait_for_selector(
                f"{_sub('alice', 'cpe2')} .catalog-block[data-block='{block}'][data-node='{node}']"
                "[data-state='running']",
                state="attached",
                timeout=T,
            )
        assert page.locator(_sub("alice", "cpe1")).count() == 0
        why = _why(page, "alice", "cpe2")
        assert why == now["decisions"][-1]["why"] and why.startswith("user seen at cpe2 (login)")
        latest = page.locator(f"{_sub('alice', 'cpe2')} .catalog-decision.latest")
        assert latest.get_attribute("data-action") == "moved"
        # The earlier decision is still listed under it, with its own reason.
        reasons = page.locator(f"{_sub('alice', 'cpe2')} .catalog-why").all_inner_texts()
        assert len(reasons) == 2 and reasons[1].startswith("placed on cpe1 by mix"), reasons
        # Bob did not move.
        assert _why(page, "bob", "cpe2").startswith("placed on cpe2 by mix")
        # The live feed says it too (the catalog's events through the stream).
        page.wait_for_selector("#feed li[data-kind='SubscriptionPlaced']", state="attached",
                               timeout=T)  # fmt: skip
        feed = page.locator("#feed li[data-kind='SubscriptionPlaced']").all_inner_texts()
        assert any("alice's sensor-archive@1 moved: " in f and "cpe2" in f for f in feed), feed
        assert not errors, errors
