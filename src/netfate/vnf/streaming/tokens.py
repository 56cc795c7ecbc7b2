"""Signed, expiring grants for the streaming functions' HTTP endpoints.

A join makes an edge streamer send a stream to the joining address, and a
recording is a user's own: when a function is given a ``secret``, such a request
must carry a token the back-end issued::

    token = "<expires>.<hex HMAC-SHA256(secret, scope + "|" + expires)>"

``scope`` names what is granted, e.g. ``join:CONTENT:VIEWER-ADDRESS`` or
``vod:RECORDING``; ``expires`` is a Unix time in whole seconds.
"""

from __future__ import annotations

import hashlib
import hmac

MAX_TOKEN = 200


def issue(secret: str, scope: str, expires: int) -> str:
    mac = hmac.new(secret.encode(), f"{scope}|{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def check(secret: str, scope: str, token: str, now: float) -> bool:
    """True if `token` grants `scope` at `now` (never raises on bad input)."""
    if len(token) > MAX_TOKEN or not token.isascii():  # compare_digest takes ASCII only
        return False
    expires_text, sep, _ = token.partition(".")
    if not sep or not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires < now:
        return False
    return hmac.compare_digest(issue(secret, scope, expires), token)
