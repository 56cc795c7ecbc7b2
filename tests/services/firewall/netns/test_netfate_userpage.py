"""The NetFATE user's own page, in headless Chromium (Debian's) against a real
orchestrator: the page is behind sign-in (the platform's sign-in page, the account of
the firewall user's name); add a rule, save it; a bad rule set is refused whole and
the stored rules stay; a wrong password shows nothing. API clients may still send the
portal credentials (HTTP Basic)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import chromium
from orchproc import Orchestrator

ACCOUNT_PW = "alice's account password"


@pytest.fixture
def orch(tmp_path: Path) -> Iterator[Orchestrator]:
    o = Orchestrator(tmp_path)
    try:
        o.start()
        r = httpx.post(f"{o.base}/api/v1/firewall/users", headers=o.headers,
                       json={"name": "alice", "password": "s3cret"})  # fmt: skip
        assert r.status_code == 201, r.text
        r = httpx.post(f"{o.base}/api/v1/accounts", headers=o.headers,
                       json={"name": "alice", "role": "user", "password": ACCOUNT_PW})  # fmt: skip
        assert r.status_code == 201, r.text
        yield o
    finally:
        o.stop()


def stored(o: Orchestrator) -> dict[str, Any]:
    url = f"{o.base}/api/v1/firewall/users/alice/rules"
    rules: dict[str, Any] = httpx.get(url, headers=o.headers).json()
    return rules


def test_user_edits_own_rules_in_a_browser(orch: Orchestrator) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{orch.base}/api/v1/firewall/me")
        # No session: the sign-in page. A wrong password: its error, no page.
        page.wait_for_url("**/signin?next=%2Fapi%2Fv1%2Ffirewall%2Fme")
        page.fill("#signin-name", "alice")
        page.fill("#signin-password", "nope")
        page.click("#signin-submit")
        page.wait_for_selector("#signin-error:not([hidden])")
        assert page.inner_text("#signin-error") == "Wrong name or password."

        page.fill("#signin-password", ACCOUNT_PW)
        page.click("#signin-submit")
        page.wait_for_url(f"{orch.base}/api/v1/firewall/me")
        page.wait_for_selector("#editor:not([hidden])")
        assert "Signed in as alice" in page.inner_text("#who")
        page.wait_for_selector("#session #signout")

        page.click("#add")
        row = page.locator("#rules tbody tr").last
        row.locator("[name=action]").select_option("deny")
        row.locator("[name=direction]").select_option("out")
        row.locator("[name=proto]").select_option("tcp")
        row.locator("[name=port]").fill("8081")
        row.locator("[name=comment]").fill("<b>no</b> games")
        page.click("#save")
        page.wait_for_selector("#message.ok")
        # (Comments help the person editing; the stored rule set keeps the rule.)
        assert stored(orch)["rules"]["rules"] == [
            {"action": "deny", "direction": "out", "proto": "tcp", "port": 8081}
        ]
        version = stored(orch)["version"]

        # A port that does not parse: the whole set is refused, nothing changes.
        page.click("#add")
        page.locator("#rules tbody tr").last.locator("[name=port]").fill("99999")
        page.click("#save")
        page.wait_for_selector("#message.error")
        assert "unchanged" in page.inner_text("#message")
        assert stored(orch)["version"] == version
        assert len(stored(orch)["rules"]["rules"]) == 1
        # Markup typed by the user is shown as text, never rendered.
        assert page.locator("#rules b").count() == 0


def test_an_account_without_a_firewall_user_signs_in_with_the_portals(
    orch: Orchestrator,
) -> None:
    """An account whose name is no firewall user's (alice@home.example; the firewall
    user is alice): the page asks for the login page's name and password."""
    r = httpx.post(f"{orch.base}/api/v1/accounts", headers=orch.headers,
                   json={"name": "alice@home.example", "role": "user",
                         "password": ACCOUNT_PW})  # fmt: skip
    assert r.status_code == 201, r.text
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{orch.base}/api/v1/firewall/me")
        page.wait_for_url("**/signin?next=*")
        page.fill("#signin-name", "alice@home.example")
        page.fill("#signin-password", ACCOUNT_PW)
        page.click("#signin-submit")
        page.wait_for_selector("#signin:not([hidden])")
        assert "no personal firewall is registered for alice@home.example" in page.inner_text(
            "#message"
        )
        page.fill("#user", "alice")
        page.fill("#password", "nope")
        page.click("#signin button")
        page.wait_for_selector("#message.error")
        assert "wrong user name or password" in page.inner_text("#message")
        assert page.locator("#editor").is_hidden()
        page.fill("#password", "s3cret")
        page.click("#signin button")
        page.wait_for_selector("#editor:not([hidden])")
        assert "Signed in as alice" in page.inner_text("#who")
        assert page.locator("#signin").is_hidden()


def test_api_needs_the_users_own_password(orch: Orchestrator) -> None:
    url = f"{orch.base}/api/v1/firewall/me/rules"
    assert httpx.get(url).status_code == 401
    bad = base64.b64encode(b"alice:wrong").decode()
    assert httpx.get(url, headers={"Authorization": f"Basic {bad}"}).status_code == 401
    good = base64.b64encode(b"alice:s3cret").decode()
    r = httpx.get(url, headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 200 and r.json()["user"] == "alice"
    # Repeated failures from one client are refused for a while.
    codes = [httpx.get(url, headers={"Authorization": f"Basic {bad}"}).status_code
             for _ in range(6)]  # fmt: skip
    assert codes[-1] == 429
