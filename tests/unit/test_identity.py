"""Accounts, credentials and their bad input (issue 12, sections 1, 2, 7 and "bad
input"): sign-in, expiry, revocation, brute force, the PBKDF2 upgrade, the web
session's cookie and CSRF token, the Host check, the first operator, the audit
log, what a provider sees, and that no per-request token check hashes a password.
The role matrix over every route is tests/role_matrix_cases.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.contract import Role
from netfate.model.ratelimit import WindowCounter
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.identity import accounts, guard, passwords, tokens
from netfate.services.firewall.passwords import hash_password as pbkdf2_hash
from netfate.store.tables import AccountRow, TokenRow

TOPO: dict[str, Any] = {
    "name": "ids",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 2},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 2},
        "pe1": {"kind": "pe", "cpu": 4},
    },
    "hosts": {"laptop1": {"node": "cpe1"}, "laptop2": {"node": "cpe2"}},
    "links": [{"a": "cpe1", "b": "pe1"}, {"a": "cpe2", "b": "pe1"}],
}
PW = "correct horse battery"


@pytest.fixture
def app(tmp_path: Path) -> Any:
    return create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path}/o.db",
            heartbeat_timeout_s=3600,
            operator_file=tmp_path / "operator.json",
        )
    )


@pytest.fixture
def c(app: Any) -> Iterator[TestClient]:
    with authn.client(app) as client:
        assert client.put("/api/v1/topology", json=TOPO).status_code == 200
        for n in TOPO["nodes"]:  # agents (signed in as each node's) bring the nodes up
            r = client.post(f"/api/v1/agents/{n}/register", json={"endpoint": "127.0.0.1:9"})
            assert r.status_code == 200, r.text
        yield client


def person(c: TestClient, name: str, role: str, password: str = PW) -> None:
    r = c.post("/api/v1/accounts", json={"name": name, "role": role, "password": password})
    assert r.status_code == 201, r.text


def sign_in(c: TestClient, name: str, password: str = PW, **kw: Any) -> Any:
    return c.post("/api/v1/auth/token", json={"name": name, "password": password, **kw},
                  auth=None)  # fmt: skip


def as_(c: TestClient, method: str, url: str, tok: str, **kw: Any) -> Any:
    return c.request(method, url, headers=authn.bearer(tok), auth=None, **kw)


# ------------------------------------------------------------------ tokens


def test_a_signed_in_token_works_until_revoked(c: TestClient) -> None:
    person(c, "pat", "provider")
    r = sign_in(c, "pat")
    assert r.status_code == 200, r.text
    tok = r.json()["token"]
    me = as_(c, "GET", "/api/v1/auth/me", tok).json()
    assert me == {"name": "pat", "role": "provider", "node": None, "via": "api",
                  "expires_at": r.json()["expires_at"]}  # fmt: skip
    assert as_(c, "GET", "/api/v1/instances", tok).status_code == 200
    # Only the token's SHA-256 is stored.
    with c.app.state.db.session() as s:  # type: ignore[attr-defined]
        digests = set(s.scalars(select(TokenRow.digest)))
    assert tokens.digest(tok) in digests and tok not in digests
    assert as_(c, "DELETE", "/api/v1/auth/token", tok).status_code == 200
    # Revoked: refused at once (the cache entry went with it).
    assert as_(c, "GET", "/api/v1/instances", tok).status_code == 401


def test_an_expired_token_is_refused(c: TestClient) -> None:
    person(c, "pat", "provider")
    with c.app.state.db.session() as s:  # type: ignore[attr-defined]
        acct = accounts.get(s, "pat")
        assert acct is not None
        old, _ = tokens.issue(s, acct, tokens.API, 60.0, time.time() - 120)
    r = as_(c, "GET", "/api/v1/instances", old)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    # Asked for with a lifetime: it carries it.
    got = sign_in(c, "pat", ttl_s=30).json()
    assert got["expires_at"] - time.time() == pytest.approx(30, abs=5)


def test_disabling_an_account_or_resetting_its_password_refuses_its_tokens_at_once(
    c: TestClient,
) -> None:
    person(c, "pat", "provider")
    tok = sign_in(c, "pat").json()["token"]
    assert as_(c, "GET", "/api/v1/instances", tok).status_code == 200  # now cached
    assert c.patch("/api/v1/accounts/pat", json={"disabled": True}).status_code == 200
    assert as_(c, "GET", "/api/v1/instances", tok).status_code == 401
    assert sign_in(c, "pat").status_code == 401  # a disabled account cannot sign in
    assert c.patch("/api/v1/accounts/pat", json={"disabled": False}).status_code == 200
    assert as_(c, "GET", "/api/v1/instances", tok).status_code == 401  # stays revoked
    tok = sign_in(c, "pat").json()["token"]
    r = c.post("/api/v1/accounts/pat/password", json={})
    assert r.status_code == 200 and len(r.json()["password"]) >= 16
    assert as_(c, "GET", "/api/v1/instances", tok).status_code == 401
    assert sign_in(c, "pat").status_code == 401
    assert sign_in(c, "pat", r.json()["password"]).status_code == 200


def test_accounts_are_made_by_operators_with_valid_names_and_passwords(c: TestClient) -> None:
    r = c.post("/api/v1/accounts", json={"name": "alice@home.example", "role": "user"})
    assert r.status_code == 201
    made = r.json()["password"]  # shown once
    listed = c.get("/api/v1/accounts").json()
    assert all("password" not in a and "password_hash" not in a for a in listed)
    assert "alice@home.example" in {a["name"] for a in listed}
    assert sign_in(c, "alice@home.example", made).status_code == 200
    for body, status in (
        ({"name": "alice@home.example", "role": "user", "password": PW}, 409),
        ({"name": "agent:cpe1", "role": "user", "password": PW}, 422),  # reserved form
        ({"name": "x", "role": "agent", "password": PW}, 422),
        ({"name": "y", "role": "user", "password": "short"}, 422),
        ({"name": "", "role": "user"}, 422),
    ):
        assert c.post("/api/v1/accounts", json=body).status_code == status, body
    with c.app.state.db.session() as s:  # type: ignore[attr-defined]
        stored = s.scalar(select(AccountRow.password_hash).where(AccountRow.name == "x"))
        h = s.scalar(
            select(AccountRow.password_hash).where(AccountRow.name == "alice@home.example")
        )
    assert stored is None and h is not None and h.startswith("$argon2id$")


def test_an_agent_credential_is_one_per_node_and_acts_for_it_only(c: TestClient) -> None:
    first = c.post("/api/v1/accounts/agents", json={"node": "cpe1"})
    assert first.status_code == 201 and first.json()["account"]["name"] == "agent:cpe1"
    tok = first.json()["token"]
    assert as_(c, "GET", "/api/v1/agents/cpe1/desired", tok).status_code == 200
    assert as_(c, "GET", "/api/v1/agents/cpe2/desired", tok).status_code == 403
    assert as_(c, "GET", "/api/v1/instances", tok).status_code == 403
    again = c.post("/api/v1/accounts/agents", json={"node": "cpe1"}).json()["token"]
    assert as_(c, "GET", "/api/v1/agents/cpe1/desired", tok).status_code == 401  # replaced
    assert as_(c, "GET", "/api/v1/agents/cpe1/desired", again).status_code == 200
    assert c.post("/api/v1/accounts/agents", json={"node": "nowhere"}).status_code == 404
    ctl = c.post("/api/v1/accounts/controllers", json={}).json()
    assert ctl["account"]["name"] == "controller:sdn"
    assert as_(c, "GET", "/api/v1/sdn/view", ctl["token"]).status_code == 200
    assert as_(c, "POST", "/api/v1/intents", ctl["token"], json={}).status_code == 403
    # Machine accounts have no password: they cannot sign in.
    assert sign_in(c, "agent:cpe1", "anything at all").status_code == 401


# ------------------------------------------------------------------ passwords


def test_brute_force_is_refused_with_429_and_retry_after(c: TestClient) -> None:
    person(c, "pat", "provider")
    codes = [sign_in(c, "pat", f"wrong {k}").status_code for k in range(10)]
    assert codes == [401] * 10
    r = sign_in(c, "pat")  # the right password too, while the client is limited
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # Names that do not exist cost the same check and count the same.
    assert sign_in(c, "nobody").status_code == 429


def test_failure_counters_stay_bounded_and_keep_limited_keys() -> None:
    fc = WindowCounter(limit=3, window=60.0, max_keys=100)
    for _ in range(3):
        fc.record("attacker", 0.0)
    for k in range(10_000):  # a flood of other keys
        fc.record(f"k{k}", 1.0)
    assert len(fc) <= 100
    assert fc.limited("attacker", 2.0)  # not forgotten under the flood
    assert fc.retry_after("attacker", 2.0) == pytest.approx(58.0)
    # New keys share the overflow entry while the table is full of active ones.
    assert fc.limited("fresh", 2.0)
    assert not fc.limited("attacker", 61.0)  # its failures left the window


def test_a_pbkdf2_hash_is_upgraded_to_argon2id_at_sign_in(c: TestClient) -> None:
    with c.app.state.db.session() as s:  # type: ignore[attr-defined]
        now = time.time()
        s.add(AccountRow(name="old", role="user", password_hash=pbkdf2_hash(PW),
                         disabled=False, created_at=now, updated_at=now))  # fmt: skip
    assert sign_in(c, "old", "not it").status_code == 401
    assert sign_in(c, "old").status_code == 200
    with c.app.state.db.session() as s:  # type: ignore[attr-defined]
        h = s.scalar(select(AccountRow.password_hash).where(AccountRow.name == "old"))
    assert h is not None and h.startswith("$argon2id$")
    assert sign_in(c, "old").status_code == 200  # and it still signs in


class Counting:
    """argon2's hasher with its calls counted."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def hash(self, *a: Any) -> Any:
        self.calls += 1
        return self.real.hash(*a)

    def verify(self, *a: Any) -> Any:
        self.calls += 1
        return self.real.verify(*a)

    def check_needs_rehash(self, *a: Any) -> Any:
        return self.real.check_needs_rehash(*a)


def test_no_per_request_token_check_hashes_a_password(
    c: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    person(c, "pat", "provider")
    counting = Counting(passwords.HASHER)
    monkeypatch.setattr(passwords, "HASHER", counting)
    tok = sign_in(c, "pat").json()["token"]
    assert counting.calls == 1  # the sign-in
    ident = c.app.state.identity  # type: ignore[attr-defined]
    ident.cache.drop_account(authn.account(c.app, "pat").id)  # type: ignore[union-attr]
    before = ident.lookups
    for _ in range(50):
        assert as_(c, "GET", "/api/v1/instances", tok).status_code == 200
    assert as_(c, "POST", "/api/v1/instances", tok, json={"descriptor": "counter",
               "serves": "laptop1"}).status_code == 201  # fmt: skip
    assert counting.calls == 1  # 51 requests: no password hashed
    assert ident.lookups - before == 1  # one database read, then the cache


def test_requests_missing_the_cache_at_once_share_one_lookup(c: TestClient) -> None:
    # A busy client's entry ages out with tens of its requests in flight: they must
    # not each take a pooled connection to read the same row.
    person(c, "pat", "provider")
    tok = sign_in(c, "pat").json()["token"]
    ident = c.app.state.identity  # type: ignore[attr-defined]
    ident.cache.drop_account(authn.account(c.app, "pat").id)  # type: ignore[union-attr]
    before = ident.lookups

    async def many() -> list[Any]:
        return await asyncio.gather(*(ident.principal_of(tok) for _ in range(40)))

    got = asyncio.run(many())
    assert {(p.name, p.role) for p in got} == {("pat", Role.PROVIDER)}
    assert ident.lookups - before == 1
    assert asyncio.run(ident.principal_of("x" * 43)) is None  # unknown: looked up, not kept
    assert asyncio.run(ident.principal_of("x" * 43)) is None and ident.lookups - before == 3


def test_verified_cache_skips_argon2_only_for_a_known_good_password() -> None:
    stored = passwords.hash_password(PW)
    cache = passwords.VerifiedCache(ttl_s=60)
    assert cache.check("u", stored, PW, now=0.0).ok and cache.misses == 1
    assert cache.check("u", stored, PW, now=1.0).ok and cache.hits == 1
    assert not cache.check("u", stored, "wrong", now=2.0).ok  # never cached
    assert not cache.check("u", stored, "wrong", now=3.0).ok and cache.misses == 3
    assert cache.check("v", stored, PW, now=4.0).ok and cache.misses == 4  # other name
    new = passwords.hash_password("a new password")
    assert not cache.check("u", new, PW, now=5.0).ok  # the password changed
    assert cache.check("u", stored, PW, now=100.0).ok and cache.misses == 6  # expired
    legacy = pbkdf2_hash(PW)
    got = cache.check("w", legacy, PW, now=0.0)
    assert got.ok and got.rehash is not None and got.rehash.startswith("$argon2id$")
    assert cache.check("w", got.rehash, PW, now=1.0).ok and cache.hits == 2


# ------------------------------------------------------------------ the web session


def test_a_web_session_needs_its_csrf_token_to_change_anything(c: TestClient) -> None:
    person(c, "pat", "provider")
    r = c.post("/api/v1/auth/session", json={"name": "pat", "password": PW}, auth=None)
    assert r.status_code == 200
    cookies = {k.split("=")[0]: k for k in r.headers.get_list("set-cookie")}
    session_cookie = cookies[guard.SESSION_COOKIE].lower()
    assert "httponly" in session_cookie and "samesite=strict" in session_cookie
    assert "secure" not in session_cookie  # plain HTTP here; Secure under TLS
    assert "httponly" not in cookies[guard.CSRF_COOKIE].lower()  # the page reads it
    csrf = r.json()["csrf"]
    assert "token" not in r.json()
    create = {"descriptor": "counter", "serves": "laptop1"}
    assert c.get("/api/v1/instances", auth=None).status_code == 200  # the cookie
    assert c.post("/api/v1/instances", json=create, auth=None).status_code == 403
    bad = {guard.CSRF_HEADER: "x" * 43}
    assert c.post("/api/v1/instances", json=create, headers=bad, auth=None).status_code == 403
    ok = {guard.CSRF_HEADER: csrf}
    assert c.post("/api/v1/instances", json=create, headers=ok, auth=None).status_code == 201
    other = {**ok, "origin": "http://evil.example"}
    assert c.post("/api/v1/instances", json=create, headers=other, auth=None).status_code == 403
    assert c.delete("/api/v1/auth/session", headers=ok, auth=None).status_code == 200
    assert c.get("/api/v1/instances", auth=None).status_code == 401
    # The session token is no API token, and an API token no session cookie.
    api_tok = sign_in(c, "pat").json()["token"]
    c.cookies.set(guard.SESSION_COOKIE, api_tok)
    assert c.get("/api/v1/instances", auth=None).status_code == 401


def test_a_bearer_token_needs_no_csrf_token(c: TestClient) -> None:
    person(c, "pat", "provider")
    tok = sign_in(c, "pat").json()["token"]
    r = as_(c, "POST", "/api/v1/instances", tok, json={"descriptor": "counter",
            "serves": "laptop1"})  # fmt: skip
    assert r.status_code == 201


def test_the_host_header_must_be_an_allowed_name(app: Any) -> None:
    with TestClient(app, base_url="http://rebound.example") as c:
        assert c.get("/api/v1/health").status_code == 400
    with TestClient(app, base_url="http://localhost:8080") as c:
        assert c.get("/api/v1/health").status_code == 200


# ------------------------------------------------------------------ first operator


def test_the_first_operator_is_handed_over_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path}/fresh.db"
    with TestClient(create_app(Settings(database_url=url)), base_url=authn.BASE_URL):
        pass
    out = capsys.readouterr().out
    password = out.split("password ", 1)[1].split()[0]
    assert len(password) >= 16
    assert password not in caplog.text  # printed, never logged
    with TestClient(create_app(Settings(database_url=url)), base_url=authn.BASE_URL) as c:
        assert sign_in(c, "admin", password).status_code == 200
    assert "password" not in capsys.readouterr().out  # once only
    # To a file instead: 0600, JSON.
    f = tmp_path / "op.json"
    second = Settings(database_url=f"sqlite:///{tmp_path}/b.db", operator_file=f)
    with TestClient(create_app(second), base_url=authn.BASE_URL) as c:
        got = json.loads(f.read_text())
        assert os.stat(f).st_mode & 0o777 == 0o600
        assert sign_in(c, got["name"], got["password"]).status_code == 200
    assert got["password"] not in capsys.readouterr().out


# ------------------------------------------------------------------ audit, events


def test_each_state_change_names_its_actor(c: TestClient) -> None:
    person(c, "pat", "provider")
    tok = sign_in(c, "pat").json()["token"]
    iid = as_(c, "POST", "/api/v1/instances", tok, json={"descriptor": "counter",
              "serves": "laptop1"}).json()["id"]  # fmt: skip
    assert as_(c, "DELETE", f"/api/v1/instances/{iid}", tok).status_code == 202
    assert as_(c, "POST", "/api/v1/instances", tok, json={}).status_code == 422  # no line
    did = c.get("/api/v1/events", params={"actor": "pat"}).json()
    served = [(e["data"]["method"], e["data"]["path"]) for e in did if e["kind"] == "RequestServed"]
    assert served == [("POST", "/api/v1/instances"), ("DELETE", f"/api/v1/instances/{iid}")]
    # Written by the request's own commit, with its changes (no answer status yet),
    # not in a second transaction after it.
    assert all(e["data"]["status"] is None for e in did if e["kind"] == "RequestServed")
    assert {e["actor"] for e in did} == {"pat"}
    kinds = {e["kind"] for e in did}
    assert {"SignedIn", "InstancePlaced", "RequestServed"} <= kinds  # caused by pat
    # The operator's own requests are its own lines.
    assert {e["actor"] for e in c.get("/api/v1/events", params={"actor": authn.OPERATOR}).json()}


def test_a_provider_sees_its_own_instances_and_events_without_the_infrastructure(
    c: TestClient,
) -> None:
    person(c, "pat", "provider")
    person(c, "sam", "provider")
    pat, sam = (sign_in(c, n).json()["token"] for n in ("pat", "sam"))
    iid = as_(c, "POST", "/api/v1/instances", pat, json={"descriptor": "counter",
              "serves": "laptop1"}).json()["id"]  # fmt: skip
    c.post("/api/v1/instances", json={"descriptor": "counter", "node": "cpe2"})  # operator's
    mine = as_(c, "GET", "/api/v1/instances", pat).json()
    assert [i["id"] for i in mine] == [iid]
    assert mine[0]["location"] == {"tier": "cpe", "near": "laptop1"}
    shown = json.dumps(as_(c, "GET", f"/api/v1/instances/{iid}", pat).json())
    for secret in ("cpe1", "192.168.1.", '"node"', '"ip"', '"mac"', '"pid"'):
        assert secret not in shown
    assert as_(c, "GET", "/api/v1/instances", sam).json() == []
    assert as_(c, "GET", "/api/v1/instances?node=cpe1", pat).status_code == 403
    pinned = {"descriptor": "counter", "node": "cpe1"}
    assert as_(c, "POST", "/api/v1/instances", pat, json=pinned).status_code == 403
    moved = as_(c, "POST", f"/api/v1/instances/{iid}/migrate", pat, json={"node": "cpe2"})
    assert moved.status_code == 403
    for path in ("/api/v1/nodes", "/api/v1/topology", "/api/v1/hosts", "/api/v1/intents"):
        assert as_(c, "GET", path, pat).status_code == 403
    events = as_(c, "GET", "/api/v1/events", pat).json()
    assert "InstancePlaced" in {e["kind"] for e in events}
    assert "cpe1" not in json.dumps(events) and "cpe2" not in json.dumps(events)
    assert all(e["actor"] in ("pat", None) for e in events)
    theirs = as_(c, "GET", "/api/v1/events", sam).json()
    assert theirs and all(e["actor"] == "sam" for e in theirs)  # its sign-in, nothing of pat's
    with c.stream("GET", "/api/v1/events/stream", headers=authn.bearer(sam), auth=None) as r:
        first = next(line for line in r.iter_lines() if line.startswith("data:"))
    assert json.loads(first[5:])["data"] == {"account": "sam", "via": "api"}


def test_an_app_built_without_enforcement_answers_everyone(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db"), enforce=False)
    with TestClient(app, base_url=authn.BASE_URL) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        assert c.post("/api/v1/agents/cpe1/register", json={"endpoint": "x:1"}).status_code == 200
        assert c.get("/api/v1/nodes").status_code == 200
        r = c.post("/api/v1/instances", json={"descriptor": "counter", "serves": "laptop1"})
        assert r.status_code == 201 and r.json()["owner"] is None
        assert all(e["kind"] != "RequestServed" for e in c.get("/api/v1/events").json())


def test_a_machine_credential_cannot_take_a_persons_name(app: Any, c: TestClient) -> None:
    with app.state.db.session() as s, pytest.raises(accounts.AccountError):
        accounts.machine_credential(s, authn.OPERATOR, Role.AGENT, "cpe1", 60.0, time.time())
