"""Who may speak on the migration channel: both ends prove they hold the migration's secret.

The orchestrator makes a random secret for each migration and puts it only in the
desired state of the migration's two agents (never in a read of the API or in an
event). A migration id, which the API does publish, opens nothing: before any
request the two ends answer each other's challenge with an HMAC-SHA256 (RFC 2104)
over it, with a fresh nonce from each side per connection, so a recorded exchange
proves nothing on another connection:

    target                                            source
      | {"op": "hello", instance, migration, nonce: Nt} -->|  finds that migration's secret
      |<-- {"ok": true, nonce: Ns, proof: P("source")} ----|
      | checks the source's proof (an impostor source      |
      | is not believed: its state is never imported)      |
      | {"op": "auth", proof: P("target")} --------------->|  checks it (compare_digest)
      |<-- {"ok": true} -----------------------------------|  this connection's requests are
                                                              for that instance and migration only

    P(role) = HMAC-SHA256(secret, "netfate-migration/1" | role | Nt | Ns | instance | migration)
    (fields joined by NUL; the nonces are 32 random bytes in hex)

A missing or wrong proof is answered with a refusal and the connection is closed:
nothing was read, frozen, thawed or released. This module holds no socket
(migration.py's serve and Peer do the I/O).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

LABEL = b"netfate-migration/1"
NONCE_BYTES = 32


class AuthFailed(Exception):
    """The peer could not prove it holds the migration's secret (or spoke out of turn)."""


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def proof(secret: str, role: str, nt: str, ns: str, instance: str, migration: int) -> str:
    msg = b"\0".join(
        [LABEL, role.encode(), nt.encode(), ns.encode(), instance.encode(), str(migration).encode()]
    )
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def _same(a: object, b: str) -> bool:
    return isinstance(a, str) and hmac.compare_digest(a.encode(), b.encode())


def _nonce(v: object) -> str:
    if not isinstance(v, str) or len(v) != 2 * NONCE_BYTES:
        raise AuthFailed("a nonce of 32 bytes in hex was expected")
    try:
        bytes.fromhex(v)
    except ValueError:
        raise AuthFailed("a nonce of 32 bytes in hex was expected") from None
    return v


@dataclass
class Credentials:
    """What the target presents: the migration it drives and that migration's secret."""

    instance: str
    migration: int
    secret: str = field(repr=False)


class ClientAuth:
    """The target's side of the handshake."""

    def __init__(self, cred: Credentials) -> None:
        if not cred.secret:
            raise AuthFailed(f"no secret for migration {cred.migration}: it cannot be driven")
        self.cred = cred
        self.nt = new_nonce()

    def hello(self) -> dict[str, Any]:
        c = self.cred
        return {"op": "hello", "instance": c.instance, "migration": c.migration, "nonce": self.nt}

    def on_challenge(self, resp: dict[str, Any]) -> dict[str, Any]:
        """The source's answer to hello (ok already checked): its proof is checked, and
        the target's own is returned, as the next request."""
        c = self.cred
        ns = _nonce(resp.get("nonce"))
        if not _same(resp.get("proof"), proof(c.secret, "source", self.nt, ns, *self._ids())):
            raise AuthFailed("the source agent could not prove the migration's secret")
        return {"op": "auth", "proof": proof(c.secret, "target", self.nt, ns, *self._ids())}

    def _ids(self) -> tuple[str, int]:
        return self.cred.instance, self.cred.migration


class ServerAuth:
    """The source's side of the handshake, one per connection."""

    def __init__(self) -> None:
        self.ns = new_nonce()
        self._expect: str | None = None
        self._ids: tuple[str, int] | None = None
        self.bound: tuple[str, int] | None = None
        """(instance, migration) once the target has proven the secret."""

    @staticmethod
    def hello_ids(req: dict[str, Any]) -> tuple[str, int]:
        """The migration a hello names (AuthFailed if it is not a hello)."""
        if req.get("op") != "hello":
            raise AuthFailed("authenticate first (hello)")
        iid, mid = req.get("instance"), req.get("migration")
        if not isinstance(iid, str) or not isinstance(mid, int) or isinstance(mid, bool):
            raise AuthFailed("hello names an instance (string) and a migration (integer)")
        return iid, mid

    def challenge(self, req: dict[str, Any], secret: str) -> dict[str, Any]:
        """The answer to a hello, given the secret of the migration it names."""
        iid, mid = self.hello_ids(req)
        nt = _nonce(req.get("nonce"))
        self._expect = proof(secret, "target", nt, self.ns, iid, mid)
        self._ids = (iid, mid)
        mine = proof(secret, "source", nt, self.ns, iid, mid)
        return {"ok": True, "nonce": self.ns, "proof": mine}

    def on_auth(self, req: dict[str, Any]) -> dict[str, Any]:
        if self._expect is None or self._ids is None or req.get("op") != "auth":
            raise AuthFailed("authenticate first (hello, then auth)")
        if not _same(req.get("proof"), self._expect):
            raise AuthFailed("authentication failed")
        self.bound = self._ids
        return {"ok": True}

    def check(self, req: dict[str, Any]) -> None:
        """A request after the handshake: for the bound instance and migration only."""
        if self.bound is None:
            raise AuthFailed("authenticate first (hello, then auth)")
        if (req.get("instance"), req.get("migration")) != self.bound:
            raise AuthFailed("this connection is for another instance or migration")
