"""The web's sign-in page (orchestrator/identity/pages.py) and the pages behind it.

A browser (Accept: text/html) that opens a page without a session is sent to
/signin?next=PAGE; an API client gets 401 JSON. The form signs in, sets the
session's cookies and goes back to `next`, a path of this origin only. Wrong
passwords and the throttle are shown on the form. Signing out ends the session: its
cookie is refused from then on. The firewall's data routes take the web session
(the firewall user of the account's name) and want its CSRF token on a change.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.contract import Role
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.identity import guard
from netfate.services.firewall import SERVICE as FIREWALL
from netfate.services.sharing import SERVICE as SHARING

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600,
                        operator_file=tmp_path / "operator.json")  # fmt: skip
    return create_app(settings, services=[FIREWALL, SHARING])


@pytest.fixture
def c(app: Any) -> Iterator[TestClient]:
    with authn.client(app, signed_in=False) as client:
        authn.token(app, "alice", Role.USER)  # makes the accounts (authn.PASSWORD)
        authn.token(app, "bob", Role.USER)
        authn.token(app, "acme", Role.PROVIDER)
        yield client


def sign_in(c: TestClient, name: str, password: str = authn.PASSWORD, nxt: str = "/",
            **headers: str) -> Any:  # fmt: skip
    from urllib.parse import urlencode

    body = urlencode({"name": name, "password": password, "next": nxt})
    return c.post("/signin", content=body, headers={**FORM, **headers}, follow_redirects=False)


@pytest.mark.parametrize(
    "value",
    ["/", "/api/v1/sharing/page?pn=a@b.example&to=ABCD", "/api/v1/firewall/me", "/x#frag"],
)
def test_a_path_of_this_origin_is_kept(value: str) -> None:
    assert guard.safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [None, "", "//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
     "/\t/evil.example", "javascript:alert(1)", "evil.example", " /x", "/x\r\nSet-Cookie: a=b",
     "/signin?next=//evil.example", "/" + "a" * 3000, "http:/evil.example"],
)  # fmt: skip
def test_anything_that_could_leave_the_origin_becomes_the_dashboard(value: str | None) -> None:
    assert guard.safe_next(value) == "/"


@pytest.mark.parametrize("path", ["/", "/api/v1/sharing/page?pn=x", "/api/v1/firewall/me"])
def test_a_browser_without_a_session_is_sent_to_sign_in(c: TestClient, path: str) -> None:
    r = c.get(path, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/signin?next=%2F")
    page = c.get(r.headers["location"])
    assert page.status_code == 200
    assert f'name="next" value="{path.replace("&", "&amp;")}"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    # An API client asking the same gets the API's 401, not a page.
    api = c.get(path, headers={"accept": "application/json"}, follow_redirects=False)
    assert api.status_code == 401 and api.json()["detail"]


def test_a_dead_session_is_sent_to_sign_in_too(c: TestClient) -> None:
    c.cookies.set(guard.SESSION_COOKIE, "A" * 43)
    r = c.get("/", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2F"


def test_sign_in_goes_back_to_next_and_the_page_is_served(c: TestClient) -> None:
    r = sign_in(c, "alice", nxt="/api/v1/sharing/page")
    assert r.status_code == 303 and r.headers["location"] == "/api/v1/sharing/page"
    assert "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    page = c.get("/api/v1/sharing/page", headers=HTML, follow_redirects=False)
    assert page.status_code == 200 and 'id="session"' in page.text
    assert c.get("/api/v1/auth/me").json()["name"] == "alice"


@pytest.mark.parametrize("nxt", ["//evil.example/", "https://evil.example/x", "/\\evil.example"])
def test_next_cannot_leave_the_origin(c: TestClient, nxt: str) -> None:
    r = sign_in(c, "alice", nxt=nxt)
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = c.get("/signin", params={"next": nxt})
    assert 'name="next" value="/"' in page.text


def test_a_wrong_password_shows_the_error_and_signs_nobody_in(c: TestClient) -> None:
    r = sign_in(c, "alice", "not her password", nxt="/api/v1/firewall/me")
    assert r.status_code == 401
    assert "Wrong name or password." in r.text
    assert 'role="alert"' in r.text and 'aria-invalid="true"' in r.text
    assert 'value="alice"' in r.text  # the name is kept, the password is not
    assert 'name="next" value="/api/v1/firewall/me"' in r.text
    assert guard.SESSION_COOKIE not in r.headers.get("set-cookie", "")
    assert c.get("/api/v1/auth/me").status_code == 401


def test_an_empty_or_unreadable_form_is_a_clear_error(c: TestClient) -> None:
    r = sign_in(c, "", "")
    assert r.status_code == 400 and "Enter your name and your password." in r.text
    r = c.post("/signin", content=b"\xff\xfe=", headers=FORM)
    assert r.status_code == 400 and "could not be read" in r.text
    r = c.post("/signin", content="a=1&" * 20, headers=FORM)
    assert r.status_code == 400


def test_too_many_failures_show_the_wait(c: TestClient) -> None:
    for _ in range(20):
        r = sign_in(c, "alice", "guess")
        if r.status_code == 429:
            break
        assert r.status_code == 401
    assert r.status_code == 429
    wait = int(r.headers["retry-after"])
    assert wait >= 1
    assert re.search(rf"Too many failed sign-ins\. Try again in {wait} seconds\.", r.text)
    # The right password is refused too while the wait lasts.
    assert sign_in(c, "alice").status_code == 429


def test_a_form_from_another_site_signs_nobody_in(c: TestClient) -> None:
    r = sign_in(c, "alice", origin="http://evil.example")
    assert r.status_code == 403 and "another site" in r.text
    assert c.get("/api/v1/auth/me").status_code == 401
    assert sign_in(c, "alice", origin="http://127.0.0.1").status_code == 303


def test_sign_out_ends_the_session(c: TestClient) -> None:
    assert sign_in(c, "bob").status_code == 303
    cookie = c.cookies[guard.SESSION_COOKIE]
    csrf = c.cookies[guard.CSRF_COOKIE]
    assert c.get("/", headers=HTML, follow_redirects=False).status_code == 200
    r = c.delete("/api/v1/auth/session", headers={guard.CSRF_HEADER: csrf})
    assert r.status_code == 200
    c.cookies.clear()
    c.cookies.set(guard.SESSION_COOKIE, cookie)  # the old cookie, kept by someone
    assert c.get("/api/v1/auth/me").status_code == 401
    r = c.get("/", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2F"


def test_a_page_of_another_role_is_refused(c: TestClient) -> None:
    assert sign_in(c, "acme").status_code == 303  # a provider
    assert c.get("/", headers=HTML, follow_redirects=False).status_code == 200
    for page in ("/api/v1/sharing/page", "/api/v1/firewall/me"):
        r = c.get(page, headers=HTML, follow_redirects=False)  # a browser: the form, saying so
        assert r.status_code == 403
        assert "Refused (not for the provider role)" in r.text
        assert f'name="next" value="{page}"' in r.text
        api = c.get(page, headers={"accept": "application/json"}, follow_redirects=False)
        assert api.status_code == 403 and api.json()["detail"] == "not for the provider role"


def test_the_firewall_page_takes_the_web_session(c: TestClient) -> None:
    op = {"authorization": f"Bearer {authn.token(c.app, authn.OPERATOR, Role.OPERATOR)}"}
    r = c.post("/api/v1/firewall/users", json={"name": "alice", "password": "portal pw"},
               headers=op)  # fmt: skip
    assert r.status_code == 201, r.text
    assert sign_in(c, "alice").status_code == 303
    r = c.get("/api/v1/firewall/me/rules")
    assert r.status_code == 200 and r.json()["user"] == "alice"
    rule = {"action": "deny", "direction": "out", "proto": "tcp", "port": 25}
    rules = {"default_in": "deny", "default_out": "allow", "rules": [rule]}
    # A change without the session's CSRF token changes nothing.
    assert c.put("/api/v1/firewall/me/rules", json=rules).status_code == 403
    assert c.get("/api/v1/firewall/me/rules").json()["version"] == 1
    csrf = {guard.CSRF_HEADER: c.cookies[guard.CSRF_COOKIE]}
    r = c.put("/api/v1/firewall/me/rules", json=rules, headers=csrf)
    assert r.status_code == 200 and r.json()["version"] == 2
    # The change is recorded as alice's.
    events = c.get("/api/v1/events", params={"actor": "alice"}, headers=op).json()
    assert any(e["kind"] == "RequestServed" and e["data"]["method"] == "PUT" for e in events)
    # Bob has an account but no personal firewall: nothing of alice's.
    c.cookies.clear()
    assert sign_in(c, "bob").status_code == 303
    r = c.get("/api/v1/firewall/me/rules")
    assert r.status_code == 404 and "alice" not in r.text
