"""Fuzz the streaming functions' configuration schemas (vnf/streaming/schemas.py)
against the functions' own readers (hypothesis).

- Any JSON object: the schema takes it or refuses it with a ValidationError (never
  another exception), and what it takes the function's reader takes too.
- A documented configuration with one value changed, added or removed: the schema
  and the reader agree both ways, so the schema refuses nothing the function would
  run with, except where the reader is knowingly lenient (a false or empty value
  read as "not given" for an object or the work directory) and the paths written as
  root, which the schema alone confines to the image directory.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from netfate.vnf import registry
from netfate.vnf.streaming.acquirer import AcquirerConfig
from netfate.vnf.streaming.config import ConfigError
from netfate.vnf.streaming.edge import EdgeConfig
from netfate.vnf.streaming.relay import RelayConfig
from netfate.vnf.streaming.storage import StorageConfig
from streaming_configs import ACQ, EDGE, HOP, RELAY, SECRET, STORAGE, documented, json_values

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
IMAGES = Path("/nonexistent-netfate-images")  # resolved as far as it exists: itself
DOC = documented(IMAGES)
CASES: dict[str, tuple[Callable[[Any], object], dict[str, Any]]] = {
    ACQ: (AcquirerConfig.parse, DOC[ACQ]),
    RELAY: (RelayConfig.parse, DOC[RELAY]),
    EDGE: (EdgeConfig.parse, DOC[EDGE]),
    STORAGE: (StorageConfig.parse, DOC[STORAGE]),
}
ROOT_PATHS = ("volume", "work_dir")
"""Written as root: the schema confines them below the image directory, the reader not."""
LENIENT = ("hls", "join", "quota", "users")
"""The reader takes a false or empty value here as "not given"; the schema wants null."""

POOL: list[Any] = [
    None, True, False, 0, 1, -1, 2, 19, 20, 72, 240, 241, 1000, 5000, 5031, 65534, 65535,
    65536, 2**50, 2**50 + 1, 0.05, 0.1, 0.2, 0.5, 0.6, 1.0, 2.5, 30.5, 3600.5, 1e11, 1e12,
    float("inf"), float("nan"), "", "x", "low", "source", "X", "../x", "a b", "10.0.0.1",
    "fd00::1", "fe80::1%eth0", "10.0.0.256", "srt", "rtp", "rtmp", "ts", "fmp4", "dash",
    "recording", "stopped", "deleted", "started", "ended", "a passphrase", "short", SECRET,
    "p" * 80, "/", "relative", [], {}, [HOP], [HOP, HOP], ["10.0.0.1"], {"alice": 5},
    {"first": 5000, "last": 5000}, {"../x": 1},
]  # fmt: skip
"""Values at and just past the limits, of every type, well-formed and not."""
VALUES = st.sampled_from(POOL)


def schema_takes(fn: str, value: Any) -> bool:
    try:
        registry.check_config(fn, value, IMAGES)
    except ValidationError:
        return False
    return True


def reader_takes(parse: Callable[[Any], object], value: Any) -> bool:
    try:
        parse(value)
    except ConfigError:
        return False
    return True


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(CASES)), json_values(VALUES), min_size=1))
def test_any_json_is_taken_or_refused_and_what_is_taken_runs(values: dict[str, Any]) -> None:
    for fn, value in values.items():
        if isinstance(value, dict) and schema_takes(fn, value):
            assert reader_takes(CASES[fn][0], value), value


def paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value`` (dict keys and list indexes), outermost first."""
    out = [at] if at else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*at, i))
    return out


def changed(cfg: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> Any:
    """``cfg`` changed at ``path`` in place: the value replaced, deleted, or one
    added beside it (an unknown key, or one more list entry); the key changed."""
    parent: Any = cfg
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if how == "replace":
        parent[key] = value
    elif how == "delete":
        del parent[key]
    elif isinstance(parent, dict):
        key = "unknown_key"
        parent[key] = value
    else:
        parent.append(value)
    return key


@pytest.mark.parametrize("fn", sorted(CASES))
def test_one_change_is_taken_by_the_schema_exactly_when_the_reader_takes_it(fn: str) -> None:
    """Every place of the documented configuration, every change, every value of the
    pool (exhaustively: a random draw misses a bound off by one step)."""
    parse, base = CASES[fn]
    assert schema_takes(fn, base) and reader_takes(parse, base)
    checked = 0
    for path in paths(base):
        for how in ("replace", "delete", "add"):
            for value in POOL if how != "delete" else (None,):
                cfg = copy.deepcopy(base)
                key = changed(cfg, path, how, value)
                schema, reader = schema_takes(fn, cfg), reader_takes(parse, cfg)
                if schema:
                    assert reader, (path, how, value)
                lenient = how != "delete" and (
                    (key in LENIENT and value in (False, 0, "", [], {}))
                    or (key == "work_dir" and not value)
                )
                if key not in ROOT_PATHS and not lenient:
                    assert schema == reader, (path, how, value, schema, reader)
                checked += 1
    assert checked > 1000
