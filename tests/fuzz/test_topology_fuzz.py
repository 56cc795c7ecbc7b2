"""Fuzz the topology parser (model/topology.py): a valid document, mutated at random,
is either accepted (and then round-trips) or refused with TopologyError naming the
key at fault; never another exception. The same for the YAML text, mutated."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.model.topology import Topology, TopologyError, generate_tree

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEEDS: list[dict[str, Any]] = [
    Topology.load(EXAMPLES / "demo.yaml").to_dict(),
    {
        "name": "t",
        "nodes": {
            "cpe1": {"kind": "cpe", "lans": ["192.168.1.0/24", "192.168.3.0/28"]},
            "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 0.5, "memory": "256MiB"},
            "pe1": {
                "kind": "pe",
                "description": "provider edge",
                "predeploy": {"storage_mb": 5, "standbys": 1},
            },
        },
        "hosts": {
            "laptop1": {"node": "cpe1"},
            "tv": {"node": "cpe2", "ip": "192.168.2.20", "kind": "tv", "mac": "02:00:00:00:00:20"},
        },
        "links": [
            {"a": "cpe1", "b": "pe1", "rate": "100Mbit", "delay": "5ms", "loss": "0.1%"},
            {"a": "cpe2", "b": "pe1", "mtu": 1500},
        ],
    },
    generate_tree(6, hosts_per_cpe=2, access_delay="2ms").to_dict(),
]
TOP_KEYS = {"name", "description", "transit", "nodes", "hosts", "links"}

# Values a mutation writes: wrong types, edge numbers, and plausible words of the
# format (names, subnets, addresses, units) so that mutants reach the deeper checks.
WORDS = [
    "cpe1", "cpe2", "pe1", "sw", "laptop1", "tv", "Bad_Name", "", "-x", "a" * 40,
    "cpe", "pe", "pop", "core", "hrh", "router",
    "192.168.1.0/24", "192.168.1.0/30", "192.168.1.5/24", "10.255.0.0/24", "10.255.0.0/31",
    "192.168.2.0", "0.0.0.0/0", "127.0.0.0/8", "224.0.0.0/4", "fe80::/64", "1.2.3.4/33",
    "192.168.1.1", "192.168.1.255", "192.168.2.20", "300.1.1.1", "::1",
    "02:00:00:00:00:20", "01:00:5e:00:00:01", "00:00:00:00:00:00", "02:00:00:00:00",
    "100Mbit", "1Gbit", "9600bps", "1bit", "200Gbit", "5ms", "0.5s", "20s", "7", "5 parsecs",
    "0.1%", "150%", "2", "512MiB", "2GiB", "512MB", "15MiB", "1.5MiB",
    "9" * 400, "9" * 400 + "Mbit", "9" * 400 + "ms", "9" * 400 + "MiB", "9" * 400 + "%",
]  # fmt: skip
JUNK = st.one_of(
    st.sampled_from(WORDS),
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.sampled_from([10**400, -(10**400), 2**63, 576, 9000, 9001, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.sampled_from(WORDS), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "kind", "node", "lan", "ip"]),
                    st.sampled_from(WORDS), max_size=3),
)  # fmt: skip
KEYS = st.one_of(st.sampled_from(["kind", "lan", "ip", "mac", "a", "b", "rate", "x", "",
                                  "predeploy", "storage_mb", "standbys"]),
                 st.integers(0, 3), st.none(), st.text(max_size=6))  # fmt: skip


def _containers(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every dict or list in `doc`, by its path of keys and indexes."""
    out = [path]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for k, v in items:
        if isinstance(v, dict | list):
            out += _containers(v, (*path, k))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        doc = doc[k]
    return doc


@st.composite
def mutants(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        where = _at(doc, draw(st.sampled_from(_containers(doc))))
        keys = list(where) if isinstance(where, dict) else list(range(len(where)))
        op = draw(st.sampled_from(["replace", "delete", "insert", "copy"]))
        if op == "insert" or not keys:
            if isinstance(where, dict):
                where[draw(KEYS)] = draw(JUNK)
            else:
                where.insert(draw(st.integers(0, len(where))), draw(JUNK))
            continue
        key = draw(st.sampled_from(keys))
        if op == "replace":
            where[key] = draw(JUNK)
        elif op == "delete":
            del where[key]
        elif isinstance(where, dict):  # copy: another entry's value under this key
            where[key] = copy.deepcopy(where[draw(st.sampled_from(keys))])
        else:
            where.append(copy.deepcopy(where[key]))
    return doc


@settings(max_examples=1500, deadline=None)
@given(mutants())
def test_a_mutated_document_is_accepted_or_refused_naming_a_key(doc: dict[str, Any]) -> None:
    try:
        topo = Topology.from_dict(doc)
    except TopologyError as e:
        assert e.path, f"refused without naming a key: {e}"
        named = TOP_KEYS | {str(k) for k in doc} | {repr(k) for k in doc}
        # A key may hold '.' or '[' itself (a mutant's key '[' is the path '['), so
        # the path starts with a named key rather than splits into one.
        assert any(e.path == k or e.path.startswith((f"{k}.", f"{k}[")) for k in named), (
            f"{e.path!r} names no key of the document"
        )
        assert str(e).startswith(f"{e.path}: ") and e.problem
        return
    assert Topology.from_dict(topo.to_dict()) == topo


@st.composite
def mutated_yaml(draw: st.DrawFn) -> str:
    text = Topology.from_dict(draw(st.sampled_from(SEEDS))).to_yaml()
    chars = list(text)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(chars)))
        op = draw(st.sampled_from(["set", "insert", "delete"]))
        c = draw(st.one_of(st.sampled_from(list(":-[]{},'\"#&*!|> \n\t%@`0")), st.characters()))
        if op == "insert":
            chars.insert(i, c)
        elif i < len(chars):
            if op == "set":
                chars[i] = c
            else:
                del chars[i]
    return "".join(chars)


@settings(max_examples=1000, deadline=None)
@given(mutated_yaml())
def test_mutated_yaml_is_accepted_or_refused(text: str) -> None:
    try:
        Topology.from_yaml(text)
    except TopologyError as e:
        assert e.problem  # the whole document's ("invalid YAML at line ...") or a key's
