"""Secrets are write-only: what a read shows in their place.

RADIUS shared secrets, portal secrets, SRT passphrases and passwords are given to
the platform in configurations and settings, and handed on to the agent that runs
the function (its desired state), but no read of the API, event or page shows
them. `redact` replaces every value stored under such a key, at any depth, with
`HIDDEN`, so a reader still sees that one is set; `restore` puts the stored value
back where a writer sent HIDDEN (a configuration read, changed and written back).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["HIDDEN", "is_secret_key", "redact", "restore"]

HIDDEN = "(write-only)"
_SECRET_KEY = re.compile(r"(^|_)(secret|password|passphrase|private_key)$", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def redact(value: Any) -> Any:
    """A copy of `value` (JSON-like) with every secret's value replaced by HIDDEN."""
    if isinstance(value, dict):
        return {
            k: (HIDDEN if isinstance(k, str) and is_secret_key(k) and v else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def restore(new: Any, old: Any) -> Any:
    """`new` with each secret that reads HIDDEN taken from `old` at the same place
    (or dropped when `old` has none there)."""
    if isinstance(new, dict):
        prev = old if isinstance(old, dict) else {}
        out: dict[Any, Any] = {}
        for k, v in new.items():
            if isinstance(k, str) and is_secret_key(k) and v == HIDDEN:
                if k in prev:
                    out[k] = prev[k]
            else:
                out[k] = restore(v, prev.get(k))
        return out
    if isinstance(new, list):
        prev_list = old if isinstance(old, list) and len(old) == len(new) else [None] * len(new)
        return [restore(v, o) for v, o in zip(new, prev_list, strict=True)]
    return new
