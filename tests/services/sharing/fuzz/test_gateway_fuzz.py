"""Fuzz the gateway settings' checks and the vHG's ruleset (hypothesis).

- A rule as a person types it (the CLI's ``tcp/8080=192.168.1.20:80``): any text is
  a rule or a ValueError, never another exception.
- Any settings of the right types, against a PN: the vHG's configuration schema
  (vnf/vhg/config.py) refuses them (pydantic's ValidationError naming the field) or
  takes them, and whatever it takes builds an nftables document (no exception on
  the way to the agent's `configure`); every keyed problem `rule_problems` finds
  is one the schema refuses too.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from netfate.services.sharing.gateway import rule_spec, rule_text
from netfate.vnf.vhg import firewall_ruleset
from netfate.vnf.vhg.config import VhgConfig, rule_problems

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUBNET = "192.168.1.0/24"

# Mostly what a person would type (so that much is taken), some of anything.
hosts = st.integers(1, 254).map(lambda n: f"192.168.1.{n}")
odd = st.one_of(
    st.builds(lambda a, b: f"192.168.{a}.{b}", st.integers(0, 3), st.integers(0, 255)),
    st.sampled_from(["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.1.0/24", "x", ""]),
)
addresses = st.one_of(hosts, hosts, hosts, odd)
ports = st.one_of(st.integers(1, 65535), st.integers(1, 65535), st.integers(-5, 70000))
protos = st.one_of(st.sampled_from(["tcp", "udp"]), st.sampled_from(["icmp", "TCP"]))
forwards = st.fixed_dictionaries(
    {"proto": protos, "port": ports, "to": addresses},
    optional={"to_port": st.one_of(st.none(), ports)},
)
allows = st.fixed_dictionaries({"port": ports}, optional={"proto": protos, "to": addresses})


@FUZZ
@given(st.text(max_size=60), st.booleans())
def test_a_typed_rule_is_a_rule_or_a_value_error(text: str, forward: bool) -> None:
    try:
        rule = rule_spec(text, forward)
    except ValueError:
        return
    assert rule["proto"] in ("tcp", "udp") and isinstance(rule["port"], int)
    assert rule_spec(rule_text(rule, forward).removesuffix(" (any device)"), forward) == {
        **rule, **({"to_port": rule.get("to_port") or rule["port"]} if forward else {}),
    }  # fmt: skip


@FUZZ
@given(
    st.lists(forwards, max_size=6),
    st.lists(allows, max_size=4),
    st.one_of(st.just("192.168.1.100"), addresses),
    st.one_of(st.just("192.168.1.199"), addresses),
    st.one_of(st.integers(120, 86400), st.integers(0, 10**6)),
)
def test_settings_are_taken_or_refused_and_what_is_taken_builds_a_ruleset(
    fwd: list[dict[str, Any]], allow: list[dict[str, Any]], first: str, last: str, lease: int
) -> None:
    cfg = {"subnet": SUBNET, "dhcp_first": first, "dhcp_last": last, "lease_seconds": lease,
           "forwards": fwd, "allow": allow}  # fmt: skip
    try:
        VhgConfig.model_validate(cfg)
    except ValidationError as e:
        assert e.errors(), e
        return
    assert rule_problems(SUBNET, fwd, allow) == {}
    doc = firewall_ruleset(SUBNET, "eth0", allow, fwd, "192.168.1.254")
    assert len([c for c in doc["nftables"] if "rule" in c.get("add", {})]) == (
        3 + len(allow) + 2 * len(fwd)
    )
