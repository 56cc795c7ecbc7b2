"""The catalog's descriptors (services/catalog/descriptor.py): a chain in YAML, checked
against a schema with keyed errors; what the platform's nodes cannot meet."""

from __future__ import annotations

import pytest

from netfate.services.catalog.descriptor import (
    DescriptorError,
    Function,
    check_against,
    parse,
)

FNS = {
    "counter": Function("counter", 0.1, 64),
    "forwarder": Function("forwarder", 0.2, 64),
}

GOOD = """
name: sensor-archive
summary: Archive a sensor's readings near its owner.
blocks:
  - {name: collector, function: counter, cpu: 0.3, storage_mb: 10}
  - {name: archive, function: forwarder}
user_mbps: 2
sla: {latency_ms: 20, availability: 0.98}
"""


def errors_of(text: str) -> dict[str, str]:
    with pytest.raises(DescriptorError) as e:
        parse(text, FNS)
    return e.value.errors


def test_a_good_descriptor_fills_in_the_functions_figures_and_the_chain_order() -> None:
    d = parse(GOOD, FNS)
    assert d.name == "sensor-archive" and d.version is None
    assert [(b.name, b.function, b.cpu, b.memory_mb, b.storage_mb) for b in d.blocks] == [
        ("collector", "counter", 0.3, 64.0, 10.0),
        ("archive", "forwarder", 0.2, 64.0, 0.0),
    ]
    # Without talks, each block talks to the next (the chain order).
    assert [(t.a, t.b, t.mbps) for t in d.talks] == [("collector", "archive", 0.0)]
    assert (d.user_mbps, d.latency_ms, d.availability) == (2.0, 20.0, 0.98)
    assert d.to_dict()["talks"] == [{"from": "collector", "to": "archive", "mbps": 0.0}]


def test_a_cycle_is_named_at_the_relationship_that_closes_it() -> None:
    text = """
name: loop
blocks: [{name: a, function: counter}, {name: b, function: counter}, {name: c, function: counter}]
talks: [{from: a, to: b}, {from: b, to: c}, {from: c, to: a}]
"""
    errs = errors_of(text)
    assert set(errs) == {"talks[2]"}
    assert errs["talks[2]"] == "closes a cycle: a -> b -> c -> a"


def test_an_unknown_function_is_named_with_the_known_ones() -> None:
    errs = errors_of("name: x\nblocks: [{name: a, function: counter}, {name: b, function: mine}]")
    assert set(errs) == {"blocks[1].function"}
    assert "unknown function 'mine'" in errs["blocks[1].function"]
    assert "counter, forwarder" in errs["blocks[1].function"]


@pytest.mark.parametrize(
    ("sla", "key", "words"),
    [
        ("{latency_ms: 0}", "sla.latency_ms", "impossible"),
        ("{latency_ms: -3}", "sla.latency_ms", ">= 0"),
        ("{availability: 1.5}", "sla.availability", "impossible"),
        ("{availability: 0}", "sla.availability", "impossible"),
        ("{latency_ms: .inf}", "sla.latency_ms", "finite"),
        ("{latency_ms: fast}", "sla.latency_ms", "must be a number, not str"),
        ("[1, 2]", "sla", "must be a mapping"),
    ],
)
def test_an_impossible_or_malformed_sla_is_keyed(sla: str, key: str, words: str) -> None:
    errs = errors_of(f"name: x\nblocks: [{{name: a, function: counter}}]\nsla: {sla}")
    assert set(errs) == {key} and words in errs[key]


def test_unknown_keys_and_bad_types_are_all_named_at_once() -> None:
    text = """
name: Bad Name
version: true
colour: blue
blocks:
  - {name: a, function: counter, cpu: lots, colour: red}
  - {name: a, function: counter, memory_mb: 1}
  - 7
talks: [{from: a, to: ghost, mbps: -1}]
"""
    errs = errors_of(text)
    assert set(errs) == {
        "name",
        "version",
        "colour",
        "blocks[0].cpu",
        "blocks[0].colour",
        "blocks[1].name",
        "blocks[1].memory_mb",
        "blocks[2]",
        "talks[0].to",
        "talks[0].mbps",
    }
    assert errs["blocks[0].cpu"] == "must be a number, not str"
    assert errs["blocks[1].name"] == "block 'a' defined twice"
    assert errs["blocks[1].memory_mb"] == "below the function's own 64"
    assert errs["talks[0].to"] == "unknown block 'ghost'"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: &x [1]\nb: *x", "anchors and aliases are not accepted"),
        ("name: [unclosed", "not valid YAML"),
        ("- just\n- a list", "must be a mapping, not list"),
        ("", "must be a mapping, not null"),
        ("x" * (64 * 1024 + 1), "larger than"),
        ("[" * 5000 + "]" * 5000, "cannot be read"),
    ],
)
def test_a_document_that_is_not_a_descriptor_gets_one_document_error(text: str, words: str) -> None:
    errs = errors_of(text)
    assert set(errs) == {"document"} and words in errs["document"]


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(DescriptorError) as e:
        parse(b"name: \xff\xfe", FNS)
    assert "not UTF-8" in e.value.errors["document"]


def test_what_no_node_can_meet_is_keyed_against_the_platforms_nodes() -> None:
    d = parse(GOOD.replace("cpu: 0.3", "cpu: 9"), FNS)
    nodes = [(1.0, 512.0, 4096.0, 0.99), (4.0, 4096.0, 65536.0, 0.97)]
    errs = check_against(d, nodes)
    assert set(errs) == {"blocks[0].cpu"}
    assert errs["blocks[0].cpu"] == "impossible: needs 9, the largest node offers 4"
    d = parse(GOOD.replace("availability: 0.98", "availability: 0.995"), FNS)
    assert set(check_against(d, nodes)) == {"sla.availability"}
    assert check_against(parse(GOOD, FNS), nodes) == {}
    assert check_against(d, []) == {}  # no topology yet: nothing to hold it to
