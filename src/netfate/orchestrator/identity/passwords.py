"""Password hashes: argon2id (argon2-cffi), and the upgrade of earlier PBKDF2 hashes.

Only sign-ins hash a password (an account's, a firewall user's); a request that
carries a token never does (tokens are looked up by their SHA-256: tokens.py).

    hash_password(pw)            argon2id, argon2-cffi's RFC 9106 low-memory profile
    check(stored, pw)            Checked(ok, rehash): rehash is the argon2id hash to store
                                 instead when `stored` was PBKDF2 or older parameters
    dummy()                      a hash to check when the account does not exist, so
                                 an unknown name costs what a wrong password costs

The earlier format (``pbkdf2_sha256$ITER$SALT$HASH``, base64; the firewall service
stored its users' passwords so) is still verified, with hashlib's PBKDF2, and
upgraded: a service's sign-in stores ``rehash`` when it is not None.

argon2id costs tens of milliseconds and 64 MiB a check by design; ``SLOTS`` bounds
how many run at once in this process (each sign-in route takes one), so a burst of
sign-ins queues instead of taking every core and a gigabyte.

A service that must check the same password often (the firewall's RADIUS server:
an Access-Request per portal login, hundreds a second) keeps a ``VerifiedCache``:
a hit (same user, same password, same stored hash, recently checked) skips argon2.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

HASHER = argon2.PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4 (RFC 9106 low memory)
SLOTS = threading.BoundedSemaphore(2)
"""argon2 checks at once in this process."""
MAX_PASSWORD = 1024
"""Longer passwords are refused before hashing (bounds the cost of one check)."""
LEGACY_PREFIX = "pbkdf2_sha256$"


@dataclass(frozen=True)
class Checked:
    ok: bool
    rehash: str | None = None
    """When ok: the argon2id hash to store in place of the checked one (it was PBKDF2,
    or argon2 with older parameters); None when the stored hash is current."""


def hash_password(password: str) -> str:
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"a password is at most {MAX_PASSWORD} characters")
    with SLOTS:
        return HASHER.hash(password)


@functools.cache
def dummy() -> str:
    """A hash of a random password nobody knows (made once, at the first use)."""
    return hash_password(os.urandom(16).hex())


def check(stored: str, password: str) -> Checked:
    """Whether `password` matches `stored` (argon2id, or the earlier PBKDF2 format)."""
    if len(password) > MAX_PASSWORD:
        return Checked(False)
    if stored.startswith(LEGACY_PREFIX):
        if not verify_pbkdf2(password.encode(), stored):
            return Checked(False)
        return Checked(True, hash_password(password))
    try:
        with SLOTS:
            HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Checked(False)
    if HASHER.check_needs_rehash(stored):
        return Checked(True, hash_password(password))
    return Checked(True)


def verify_pbkdf2(password: bytes, stored: str) -> bool:
    """The earlier format: ``pbkdf2_sha256$ITER$SALT$HASH`` (standard base64)."""
    try:
        algo, iters, salt, want = stored.split("$")
        if algo != "pbkdf2_sha256":
            return False
        n = int(iters)
        if not 1 <= n <= 10_000_000:
            return False
        dk = hashlib.pbkdf2_hmac("sha256", password, base64.b64decode(salt), n)
        return hmac.compare_digest(dk, base64.b64decode(want))
    except (ValueError, TypeError):
        return False


class VerifiedCache:
    """Passwords checked recently, for a service that checks the same ones often.

    The key is HMAC-SHA256(process key, name NUL password NUL stored hash): the
    process key is random and never leaves memory, so the cache holds nothing an
    attacker could test guesses against offline without that memory, and a changed
    password (a new stored hash) misses. Entries live `ttl_s` seconds; at most
    `max_entries` (least recently used dropped first). Only successes are kept: a
    wrong password always costs a full check (and the caller's failure limits).
    """

    def __init__(self, ttl_s: float = 300.0, max_entries: int = 4096) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._key = os.urandom(32)
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _mac(self, name: str, password: str, stored: str) -> bytes:
        msg = b"\0".join((name.encode(), password.encode(), stored.encode()))
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def check(self, name: str, stored: str, password: str, now: float | None = None) -> Checked:
        """`check(stored, password)`, skipped when this name, password and stored hash
        were found good within the last `ttl_s` seconds."""
        now = time.monotonic() if now is None else now
        if len(password) > MAX_PASSWORD:
            return Checked(False)
        mac = self._mac(name, password, stored)
        with self._lock:
            at = self._seen.get(mac)
            if at is not None and now - at <= self.ttl_s:
                self._seen.move_to_end(mac)
                self.hits += 1
                return Checked(True)
            self.misses += 1
        got = check(stored, password)
        if got.ok:
            # Remember what will be stored from now on (the upgraded hash, if any).
            mac = self._mac(name, password, got.rehash or stored)
            with self._lock:
                self._seen[mac] = now
                self._seen.move_to_end(mac)
                while len(self._seen) > self.max_entries:
                    self._seen.popitem(last=False)
        return got

    def forget(self) -> None:
        with self._lock:
            self._seen.clear()
