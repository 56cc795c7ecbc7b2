"""Reading the streaming functions' configurations: typed, bounded, every error named.

A configuration comes from the orchestrator as JSON. Each function turns it into
frozen dataclasses through the readers below, which refuse (with a
:class:`ConfigError` naming the field) unknown keys, wrong types and values
outside their limits, so that a typo never silently means "default" and no value
can make a function allocate without bound. ``configure`` raises the same error:
the control protocol answers ``{"ok": false, "error": ...}`` and the running
configuration stays as it was.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Identifiers (flows, contents, events, users, recordings): safe as file and URL names."""
MAX_HOPS = 64
"""Next hops (or configured viewers) of one stream."""


class ConfigError(ValueError):
    """A configuration was refused; the message says which field and why."""


_MISSING: Any = object()


def obj(value: Any, where: str, allowed: Collection[str]) -> Mapping[str, Any]:
    """`value` as a JSON object holding only `allowed` keys."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    return value


def _get(d: Mapping[str, Any], key: str, where: str, default: Any) -> Any:
    if key in d and d[key] is not None:
        return d[key]
    if default is _MISSING:
        raise ConfigError(f"{where}.{key}: required")
    return default


def integer(
    d: Mapping[str, Any], key: str, where: str, *, lo: int, hi: int, default: Any = _MISSING
) -> int:
    v = _get(d, key, where, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{where}.{key}: expected an integer, got {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"{where}.{key}: {v} is outside {lo}..{hi}")
    return v


def number(
    d: Mapping[str, Any], key: str, where: str, *, lo: float, hi: float, default: Any = _MISSING
) -> float:
    v = _get(d, key, where, default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{where}.{key}: expected a number, got {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"{where}.{key}: {v} is outside {lo}..{hi}")
    return float(v)


def optional_number(
    d: Mapping[str, Any], key: str, where: str, *, lo: float, hi: float
) -> float | None:
    if d.get(key) is None:
        return None
    return number(d, key, where, lo=lo, hi=hi)


def boolean(d: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING) -> bool:
    v = _get(d, key, where, default)
    if not isinstance(v, bool):
        raise ConfigError(f"{where}.{key}: expected true or false, got {v!r}")
    return v


def text(
    d: Mapping[str, Any], key: str, where: str, *, max_len: int = 256, default: Any = _MISSING
) -> str:
    v = _get(d, key, where, default)
    if not isinstance(v, str):
        raise ConfigError(f"{where}.{key}: expected a string, got {v!r}")
    if len(v) > max_len:
        raise ConfigError(f"{where}.{key}: longer than {max_len} characters")
    return v


def name(d: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING) -> str:
    """An identifier matching :data:`NAME` (letters, digits, ``_.-``; 1-64)."""
    v = text(d, key, where, max_len=64, default=default)
    if not NAME.fullmatch(v):
        raise ConfigError(f"{where}.{key}: {v!r} is not a name (letters, digits, _ . -)")
    return v


def choice(
    d: Mapping[str, Any], key: str, where: str, options: Collection[str], *, default: Any = _MISSING
) -> str:
    v = text(d, key, where, default=default)
    if v not in options:
        raise ConfigError(f"{where}.{key}: {v!r} is not one of {', '.join(sorted(options))}")
    return v


def address(value: Any, where: str) -> str:
    """An IP address (v4 or v6) in its canonical text form."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected an IP address, got {value!r}")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not an IP address") from None


def port(d: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING) -> int:
    return integer(d, key, where, lo=1, hi=65535, default=default)


def listed(
    d: Mapping[str, Any], key: str, where: str, *, max_items: int, default: Any = ()
) -> list[Any]:
    v = _get(d, key, where, default)
    if not isinstance(v, list | tuple):
        raise ConfigError(f"{where}.{key}: expected a list, got {type(v).__name__}")
    if len(v) > max_items:
        raise ConfigError(f"{where}.{key}: more than {max_items} entries")
    return list(v)


def addresses(d: Mapping[str, Any], key: str, where: str) -> frozenset[str] | None:
    """An optional allow-list of sender addresses (None: anyone)."""
    if d.get(key) is None:
        return None
    items = listed(d, key, where, max_items=MAX_HOPS)
    return frozenset(address(a, f"{where}.{key}[{i}]") for i, a in enumerate(items))


def unique(items: list[T], key: Any, where: str, what: str) -> list[T]:
    """Refuse two entries with the same `key(item)`."""
    seen: set[Any] = set()
    for it in items:
        k = key(it)
        if k in seen:
            raise ConfigError(f"{where}: {what} {k} appears twice")
        seen.add(k)
    return items


@dataclass(frozen=True, order=True)
class Hop:
    """A UDP destination: RTP to ``port``, RTCP to ``port + 1``."""

    host: str
    port: int

    @property
    def key(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, value: Any, where: str) -> Hop:
        d = obj(value, where, ("host", "port"))
        # An RTP receiver binds port and port + 1 (RTCP): both must be valid ports.
        return cls(
            address(d.get("host"), f"{where}.host"), integer(d, "port", where, lo=1, hi=65534)
        )

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port}


def hops(
    d: Mapping[str, Any], key: str, where: str, *, max_items: int = MAX_HOPS
) -> tuple[Hop, ...]:
    items = listed(d, key, where, max_items=max_items)
    parsed = [Hop.parse(h, f"{where}.{key}[{i}]") for i, h in enumerate(items)]
    return tuple(unique(parsed, lambda h: h.key, f"{where}.{key}", "hop"))
