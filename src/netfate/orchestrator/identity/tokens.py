"""Credentials: random tokens, stored as their SHA-256, with an expiry, revocable.

A token is 32 random bytes (``secrets.token_urlsafe``, 43 characters). The store
keeps its SHA-256 only: a token is not a password (it cannot be guessed, so a
slow hash would protect nothing) and checking one is a single index read. A
request's token is checked against a small process-local cache first (`TokenCache`):
an entry lives a few seconds, and revoking a token or disabling an account
through this orchestrator drops its entries at once (a change made to the
database by another process, `netfate admin`, takes effect within the TTL).

Web sessions are tokens of kind ``session`` held in an HttpOnly cookie; their CSRF
token is derived from the session token (`csrf_for`), so the server keeps nothing
more and a page can read it from the non-HttpOnly ``netfate_csrf`` cookie.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from netfate.contract import Role
from netfate.store.tables import AccountRow, TokenRow

API, SESSION = "api", "session"
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
"""What a token looks like; anything else in an Authorization header is malformed."""


@dataclass(frozen=True)
class Principal:
    """Who a request is from: an account and the credential it used."""

    name: str
    role: Role
    account_id: int
    node: str | None = None
    """An agent's node: the only node it may act for."""
    token_id: int | None = None
    via: str = API
    """api (Authorization: Bearer), session (the web's cookie), or unchecked (an app
    built with enforcement off: tests and the API benchmark's baseline only)."""
    expires_at: float = float("inf")

    @property
    def operator(self) -> bool:
        return self.role is Role.OPERATOR

    def owns(self, owner: str | None) -> bool:
        """Whether this principal may see and act on a row with this owner: an operator
        any row, anyone else its own."""
        return self.operator or (owner is not None and owner == self.name)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(session_token: str) -> str:
    """The CSRF token of a web session: bound to it, and telling nothing of it."""
    mac = hashlib.sha256(b"netfate-csrf\0" + session_token.encode()).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def issue(
    session: Session, account: AccountRow, kind: str, ttl_s: float, now: float
) -> tuple[str, TokenRow]:
    """A new token for `account`; only its digest is stored. Does not commit."""
    token = new_token()
    row = TokenRow(
        account_id=account.id,
        digest=digest(token),
        kind=kind,
        created_at=now,
        expires_at=now + ttl_s,
    )
    session.add(row)
    session.flush()
    return token, row


def lookup(session: Session, token_digest: str, now: float) -> Principal | None:
    """The principal a token stands for, or None (unknown, expired, revoked, or its
    account disabled). Reads only."""
    row = session.execute(
        select(TokenRow, AccountRow)
        .join(AccountRow, AccountRow.id == TokenRow.account_id)
        .where(TokenRow.digest == token_digest)
    ).first()
    if row is None:
        return None
    tok, acct = row
    if tok.revoked_at is not None or tok.expires_at <= now or acct.disabled:
        return None
    return Principal(
        name=acct.name,
        role=Role(acct.role),
        account_id=acct.id,
        node=acct.node,
        token_id=tok.id,
        via=tok.kind,
        expires_at=tok.expires_at,
    )


def revoke(session: Session, token_id: int, now: float) -> None:
    session.execute(
        update(TokenRow)
        .where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_all(session: Session, account_id: int, now: float) -> None:
    """Every live token of an account (a disabled account, a new password, an agent's
    new credential)."""
    session.execute(
        update(TokenRow)
        .where(TokenRow.account_id == account_id, TokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )


class TokenCache:
    """Principals of recently seen tokens (digest -> principal), bounded and short-lived.
    Only found tokens are kept: an unknown one is looked up each time."""

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 4096) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token_digest: str, now: float) -> Principal | None:
        with self._lock:
            got = self._entries.get(token_digest)
            if got is None:
                return None
            principal, at = got
            if now - at > self.ttl_s or principal.expires_at <= now:
                del self._entries[token_digest]
                return None
            return principal

    def put(self, token_digest: str, principal: Principal, now: float) -> None:
        with self._lock:
            self._entries[token_digest] = (principal, now)
            self._entries.move_to_end(token_digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def drop_token(self, token_id: int) -> None:
        with self._lock:
            for d in [d for d, (p, _) in self._entries.items() if p.token_id == token_id]:
                del self._entries[d]

    def drop_account(self, account_id: int) -> None:
        with self._lock:
            for d in [d for d, (p, _) in self._entries.items() if p.account_id == account_id]:
                del self._entries[d]
