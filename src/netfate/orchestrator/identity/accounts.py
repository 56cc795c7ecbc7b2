"""Accounts: create, sign in, disable, reset; agents' and controllers' credentials;
the first operator of a fresh install.

Names: a person's or a provider's account is 1-254 characters of letters, digits
and ``. _ @ + -`` (an email fits); the platform's own accounts carry a colon,
which no other name may: ``agent:NODE`` (one per node) and ``controller:NAME``.

Sign-in failures are counted per client address and per account name
(model/ratelimit.WindowCounter, bounded memory); past the limit a sign-in is refused
with 429 before any password is checked.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.contract import Role
from netfate.model.ratelimit import WindowCounter
from netfate.orchestrator.identity import passwords, tokens
from netfate.store.tables import AccountRow, TokenRow

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,253}$")
PERSON_ROLES = (Role.OPERATOR, Role.PROVIDER, Role.USER)
"""Roles of accounts that sign in with a password."""
MIN_PASSWORD = 8
DAY = 86400.0


class AccountError(Exception):
    """A request about accounts that cannot be done; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 422, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class Limits:
    """Sign-in failure limits and token lifetimes of one orchestrator."""

    per_client: WindowCounter = field(default_factory=lambda: WindowCounter(10, 60.0))
    per_account: WindowCounter = field(default_factory=lambda: WindowCounter(20, 300.0))
    token_ttl_s: float = 12 * 3600.0
    """A sign-in's token or web session (the client may ask for less, or up to 30 days)."""
    machine_ttl_s: float = 365 * DAY
    """An agent's or a controller's token."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Sign-ins run in worker threads; the counters are not thread-safe alone."""


def agent_name(node: str) -> str:
    return f"agent:{node}"


def controller_name(name: str) -> str:
    return f"controller:{name}"


def view(a: AccountRow) -> dict[str, Any]:
    return {
        "name": a.name,
        "role": a.role,
        "node": a.node,
        "disabled": a.disabled,
        "has_password": a.password_hash is not None,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    }


def get(session: Session, name: str) -> AccountRow | None:
    return session.scalar(select(AccountRow).where(AccountRow.name == name))


def _require(session: Session, name: str) -> AccountRow:
    acct = get(session, name)
    if acct is None:
        raise AccountError(f"no account {name!r}", 404)
    return acct


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= passwords.MAX_PASSWORD:
        raise AccountError(f"a password is {MIN_PASSWORD} to {passwords.MAX_PASSWORD} characters")


def new_password() -> str:
    return secrets.token_urlsafe(18)


def create(
    session: Session, name: str, role: Role, password: str | None, now: float
) -> tuple[AccountRow, str | None]:
    """A person's or a provider's account. Without `password`, one is made and
    returned (to be shown once); with one, None is returned. Does not commit."""
    if not NAME_RE.match(name):
        raise AccountError(
            "a name is 1-254 letters, digits and . _ @ + - (starting with a letter or digit)"
        )
    if role not in PERSON_ROLES:
        raise AccountError(f"role {role.value!r}: agents and controllers get credentials")
    made = None
    if password is None:
        password = made = new_password()
    check_password(password)
    if get(session, name) is not None:
        raise AccountError(f"account {name!r} exists", 409)
    acct = AccountRow(
        name=name,
        role=role.value,
        password_hash=passwords.hash_password(password),
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    session.add(acct)
    session.flush()
    return acct, made


def machine_credential(
    session: Session, name: str, role: Role, node: str | None, ttl_s: float, now: float
) -> tuple[str, TokenRow, AccountRow]:
    """The one live token of an agent (node) or a controller: the account is made on
    first use, and any token it had before is revoked. Does not commit."""
    acct = get(session, name)
    if acct is None:
        acct = AccountRow(
            name=name, role=role.value, node=node, disabled=False, created_at=now, updated_at=now
        )
        session.add(acct)
        session.flush()
    elif acct.role != role.value or acct.node != node:
        raise AccountError(f"account {name!r} exists with another role", 409)
    tokens.revoke_all(session, acct.id, now)
    acct.disabled = False
    acct.updated_at = now
    token, row = tokens.issue(session, acct, tokens.API, ttl_s, now)
    return token, row, acct


def set_disabled(session: Session, name: str, disabled: bool, now: float) -> AccountRow:
    """Disable (every token revoked) or enable an account. Does not commit."""
    acct = _require(session, name)
    acct.disabled = disabled
    acct.updated_at = now
    if disabled:
        tokens.revoke_all(session, acct.id, now)
    return acct


def reset_password(
    session: Session, name: str, password: str | None, now: float
) -> tuple[AccountRow, str | None]:
    """A new password (made and returned when None is given); every token of the
    account is revoked. Does not commit."""
    acct = _require(session, name)
    if acct.password_hash is None:
        raise AccountError(f"{name!r} signs in with a token, not a password", 409)
    made = None
    if password is None:
        password = made = new_password()
    check_password(password)
    acct.password_hash = passwords.hash_password(password)
    acct.updated_at = now
    tokens.revoke_all(session, acct.id, now)
    return acct, made


def operators(session: Session) -> int:
    return len(
        session.scalars(select(AccountRow.id).where(AccountRow.role == Role.OPERATOR.value)).all()
    )


def ensure_first_operator(session: Session, now: float, name: str = "admin") -> str | None:
    """On a database with no operator, make one with a random password and return the
    password (to be handed over once); None when an operator exists. Does not commit."""
    if operators(session):
        return None
    _, made = create(session, name, Role.OPERATOR, None, now)
    return made


def sign_in(
    session: Session, name: str, password: str, client: str, limits: Limits, now: float
) -> AccountRow:
    """The account if `password` is its password. AccountError 429 past the failure
    limits (no password checked), 401 otherwise; an unknown name costs the same
    check as a wrong password. A PBKDF2 hash is upgraded to argon2id here (the
    caller commits)."""
    client_key, account_key = f"c:{client}", f"a:{name[:254]}"
    with limits.lock:
        wait = max(
            limits.per_client.retry_after(client_key, now),
            limits.per_account.retry_after(account_key, now),
        )
    if wait > 0:
        raise AccountError("too many failed sign-ins; try again later", 429, retry_after=wait)
    acct = get(session, name) if len(name) <= 254 else None
    stored = acct.password_hash if acct is not None else None
    got = passwords.check(stored or passwords.dummy(), password)
    if acct is None or stored is None or not got.ok or acct.disabled:
        with limits.lock:
            limits.per_client.record(client_key, now)
            limits.per_account.record(account_key, now)
        raise AccountError("wrong name or password", 401)
    if got.rehash is not None:
        acct.password_hash = got.rehash
        acct.updated_at = now
    return acct
