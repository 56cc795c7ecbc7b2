"""Prometheus's API answers are untrusted bytes: every parser either returns or
raises PromError, for arbitrary bytes and for arbitrary JSON shaped like the API's."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.metrics.promapi import PromError, parse_matrix, parse_targets, parse_vector

PARSERS = (parse_matrix, parse_vector, parse_targets)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8)
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
points = st.lists(
    st.one_of(st.tuples(st.floats(allow_nan=True), st.text(max_size=6)).map(list), values),
    max_size=4,
)
items = st.fixed_dictionaries(
    {},
    optional={
        "metric": st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=5)), values),
        "values": st.one_of(points, values),
        "value": st.one_of(st.tuples(st.floats(), st.text(max_size=6)).map(list), values),
        "labels": st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), values)),
        "scrapeUrl": st.one_of(st.text(max_size=5), values),
        "health": st.one_of(st.sampled_from(["up", "down"]), values),
        "lastError": st.one_of(st.text(max_size=5), values),
    },
)
answers = st.fixed_dictionaries(
    {},
    optional={
        "status": st.one_of(st.sampled_from(["success", "error"]), values),
        "errorType": values,
        "error": values,
        "data": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "resultType": st.one_of(st.sampled_from(["matrix", "vector"]), values),
                    "result": st.one_of(st.lists(st.one_of(items, values), max_size=3), values),
                    "activeTargets": st.one_of(
                        st.lists(st.one_of(items, values), max_size=3), values
                    ),
                },
            ),
            values,
        ),
    },
)


def check(body: bytes | str) -> None:
    for parse in PARSERS:
        with contextlib.suppress(PromError):
            parse(body)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(body: bytes) -> None:
    check(body)


@settings(max_examples=1500, deadline=None)
@given(answers)
def test_json_shaped_like_the_api(doc: dict[str, Any]) -> None:
    check(json.dumps(doc))


def test_a_well_formed_matrix_survives_the_round_trip() -> None:
    doc = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"node": "a"}, "values": [[2, "+Inf"], [1, "0.5"]]}]}}  # fmt: skip
    (s,) = parse_matrix(json.dumps(doc))
    assert s.labels == {"node": "a"} and s.points[0] == (1.0, 0.5) and s.points[1][0] == 2.0
