"""Rule-set validation and its compilation to one nftables JSON transaction."""

from __future__ import annotations

from typing import Any

import pytest

from netfate.vnf.firewall.rules import RuleError, compile_nft, parse_ruleset


def test_defaults_and_round_trip() -> None:
    rs = parse_ruleset({})
    assert (rs.default_in, rs.default_out, rs.rules) == ("deny", "allow", ())
    doc = {
        "default_in": "allow",
        "default_out": "deny",
        "rules": [
            {
                "action": "deny",
                "direction": "both",
                "proto": "udp",
                "port": "5000-5010",
                "address": "10.0.0.0/8",
            },
            {"action": "allow", "direction": "in", "proto": "icmp"},
        ],
    }
    assert parse_ruleset(doc).to_json() == {
        **doc,
        "rules": [
            {**doc["rules"][0]},
            {"action": "allow", "direction": "in", "proto": "icmp"},
        ],
    }


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ([], "a rule set is an object"),
        ({"rules": {}}, "rules must be a list"),
        ({"default_in": "maybe"}, "default_in"),
        ({"extra": 1}, "unknown keys"),
        ({"rules": [{"action": "deny"}]}, "direction"),
        ({"rules": [{"action": "deny", "direction": "out", "port": 80}]}, "needs proto tcp"),
        ({"rules": [{"action": "deny", "direction": "out", "proto": "tcp", "port": 0}]}, "outside"),
        (
            {"rules": [{"action": "deny", "direction": "out", "proto": "tcp", "port": "9-1"}]},
            "outside",
        ),
        (
            {"rules": [{"action": "deny", "direction": "out", "proto": "tcp", "port": True}]},
            "port must be",
        ),
        (
            {"rules": [{"action": "deny", "direction": "out", "proto": "tcp", "port": "1;drop"}]},
            "not a number",
        ),
        ({"rules": [{"action": "deny", "direction": "out", "address": "10.0.0.0/33"}]}, "address"),
        ({"rules": [{"action": "deny", "direction": "out", "address": "<script>"}]}, "address"),
        ({"rules": [{"action": "deny", "direction": "out"}] * 513}, "at most"),
        ({"rules": ["deny all"]}, "a rule is an object"),
    ],
)
def test_invalid_rule_sets_refused(doc: Any, why: str) -> None:
    with pytest.raises(RuleError, match=why):
        parse_ruleset(doc)


def test_compile_is_one_batch_that_replaces_the_table() -> None:
    rs = parse_ruleset(
        {"rules": [{"action": "deny", "direction": "both", "proto": "tcp", "port": 25}]}
    )
    cmds = compile_nft(rs, "192.168.1.10")["nftables"]
    # add + delete + add: idempotent replacement inside the same transaction.
    assert [next(iter(c)) for c in cmds[:3]] == ["add", "delete", "add"]
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    by_chain: dict[str, int] = {}
    for r in rules:
        by_chain[r["chain"]] = by_chain.get(r["chain"], 0) + 1
    # forward: established, invalid, two jumps; output: drop ICMP redirects;
    # each user chain: the rule + default.
    assert by_chain == {"forward": 4, "output": 1, "user_out": 2, "user_in": 2}
    out_rule = next(r for r in rules if r["chain"] == "user_out")
    assert out_rule["expr"][-1] == {"drop": None}
    assert {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "tcp", "field": "dport"}},
            "right": 25,
        }
    } in out_rule["expr"]
    with pytest.raises(ValueError):
        compile_nft(rs, "not-an-ip")
