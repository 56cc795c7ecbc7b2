"""The NetFATE user's own page, in headless Chromium (Debian's) against a real
orchestrator: sign in with one's portal credentials, add a rule, save it; a bad
rule set is refused whole and the stored rules stay; a wrong password shows nothing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import chromium
from orchproc import Orchestrator


@pytest.fixture
def orch(tmp_path: Path) -> Iterator[Orchestrator]:
    o = Orchestrator(tmp_path)
    try:
        o.start()
        r = httpx.post(f"{o.base}/api/v1/firewall/users", headers=o.headers,
                       json={"name": "alice", "password": "s3cret"})  # fmt: skip
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
        # Wrong password: an error, no editor.
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
