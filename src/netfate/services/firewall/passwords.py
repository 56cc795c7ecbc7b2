"""Users' passwords, stored as salted PBKDF2-HMAC-SHA256 (never in clear).

The iteration count is a trade-off this service makes openly: every RADIUS
Access-Request costs one derivation, and the orchestrator must answer hundreds
per second (bench/radius.py). 20 000 iterations of SHA-256 is ~5 ms of CPU per
login, too slow for that; the default is 2000 and the count is stored with each
hash, so it can be raised later without invalidating what exists.
"""

from __future__ import annotations

import base64
import hashlib
import os

from netfate.orchestrator.identity.passwords import verify_pbkdf2

ITERATIONS = 2000


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(dk).decode()}"


def verify_password(password: bytes, stored: str) -> bool:
    # The core checks this format too (it upgrades such hashes to argon2id at an
    # account's sign-in: netfate.orchestrator.identity.passwords); one implementation.
    return verify_pbkdf2(password, stored)
