"""Fuzz the catalog's descriptor parser: any text is a descriptor or a DescriptorError,
never another exception (and the API answers 422, never 500; test_catalog_api.py).

Three feeds (h11 ``fuzz/README.rst`` style, with hypothesis): arbitrary text and
bytes; YAML documents made of arbitrary values (every type in every field);
and valid descriptors with one field replaced by an arbitrary value.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfate.services.catalog.descriptor import ChainDescriptor, DescriptorError, Function, parse

FNS = {"counter": Function("counter", 0.1, 64), "forwarder": Function("forwarder", 0.2, 64)}
EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["counter", "forwarder", "a", "b", "from", "to", "latency_ms"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), inner, max_size=5),
    ),
    max_leaves=30,
)
GOOD: dict[str, Any] = {
    "name": "chain",
    "version": 1,
    "summary": "s",
    "blocks": [{"name": "a", "function": "counter"}, {"name": "b", "function": "forwarder"}],
    "talks": [{"from": "a", "to": "b", "mbps": 1}],
    "user_mbps": 1,
    "sla": {"latency_ms": 10, "availability": 0.9},
}


def _outcome(text: str | bytes) -> None:
    try:
        got = parse(text, FNS)
    except DescriptorError as e:
        assert e.errors and all(isinstance(k, str) for k in e.errors)
    else:
        assert isinstance(got, ChainDescriptor)


@FUZZ
@given(st.text(max_size=400))
def test_any_text(text: str) -> None:
    _outcome(text)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    _outcome(data)


@FUZZ
@given(values)
def test_any_yaml_document(doc: Any) -> None:
    _outcome(yaml.safe_dump(doc))


@FUZZ
@given(
    st.sampled_from(
        [("name",), ("version",), ("blocks",), ("blocks", 0), ("blocks", 0, "cpu"),
         ("blocks", 1, "function"), ("talks",), ("talks", 0, "from"), ("talks", 0, "mbps"),
         ("user_mbps",), ("sla",), ("sla", "latency_ms"), ("sla", "availability")]
    ),
    values,
)  # fmt: skip
def test_a_valid_descriptor_with_one_field_replaced(path: tuple[Any, ...], v: Any) -> None:
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    here = doc
    for k in path[:-1]:
        here = here[k]
    here[path[-1]] = v
    _outcome(yaml.safe_dump(doc))


def test_the_unchanged_descriptor_is_accepted() -> None:
    assert parse(yaml.safe_dump(GOOD), FNS).name == "chain"
