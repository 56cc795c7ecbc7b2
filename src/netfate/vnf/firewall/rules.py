"""A user's firewall rule set: validation and compilation to one nftables transaction.

A rule set is plain JSON (API, database, VNF config, migration state):

    {"default_in": "deny", "default_out": "allow",
     "rules": [{"action": "deny", "direction": "out", "proto": "tcp",
                "port": 25, "address": "0.0.0.0/0"}, ...]}

- direction "out": traffic the user sends (source = the user's address);
  "in": traffic to the user (destination = the user's address); "both".
- proto any | tcp | udp | icmp; `port` (tcp/udp only) is the destination port of
  the connection's first packet, one number or "lo-hi"; `address` is the remote
  end (CIDR), absent = anywhere.
- Rules are evaluated in order, first match wins; then the default of the direction.

Enforcement is stateful: a rule decides a connection's first packet; packets of an
established or related connection pass (`ct state established,related accept`),
invalid ones are dropped. So "default_in deny" still lets answers to the user's own
connections in, as a personal firewall should.

Validation is strict and total (`RuleError`) before anything reaches nft, and the
compiled document replaces the whole table in one `nft -j -f -` transaction: either
all of it applies or nothing changes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from netfate.host import nft

TABLE = "netfate_fw"
MAX_RULES = 512
ACTIONS = ("allow", "deny")
DIRECTIONS = ("in", "out", "both")
PROTOS = ("any", "tcp", "udp", "icmp")


class RuleError(ValueError):
    """A rule set that cannot be accepted; the message says which rule and why."""


@dataclass(frozen=True)
class Rule:
    action: str
    direction: str
    proto: str = "any"
    port: tuple[int, int] | None = None
    address: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "direction": self.direction,
            "proto": self.proto,
        }
        if self.port is not None:
            lo, hi = self.port
            out["port"] = lo if lo == hi else f"{lo}-{hi}"
        if self.address is not None:
            out["address"] = self.address
        return out


@dataclass(frozen=True)
class RuleSet:
    default_in: str = "deny"
    default_out: str = "allow"
    rules: tuple[Rule, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "default_in": self.default_in,
            "default_out": self.default_out,
            "rules": [r.to_json() for r in self.rules],
        }


def _choice(
    doc: dict[str, Any], key: str, allowed: tuple[str, ...], default: str, where: str
) -> str:
    v = doc.get(key, default)
    if v not in allowed:
        raise RuleError(f"{where}: {key} must be one of {', '.join(allowed)} (got {v!r})")
    return str(v)


def _port(v: Any, where: str) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise RuleError(f"{where}: port must be a number or 'lo-hi'")
    if isinstance(v, int):
        lo = hi = v
    elif isinstance(v, str) and v.count("-") <= 1:
        a, _, b = v.partition("-")
        if not a.isdigit() or (b and not b.isdigit()) or len(v) > 11:
            raise RuleError(f"{where}: port {v!r} is not a number or 'lo-hi'")
        lo, hi = int(a), int(b or a)
    else:
        raise RuleError(f"{where}: port must be a number or 'lo-hi'")
    if not (1 <= lo <= hi <= 65535):
        raise RuleError(f"{where}: port range {lo}-{hi} outside 1..65535")
    return lo, hi


def _address(v: Any, where: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > 43:
        raise RuleError(f"{where}: address must be an IPv4 CIDR string")
    try:
        return str(ipaddress.IPv4Network(v, strict=False))
    except ValueError as e:
        raise RuleError(f"{where}: address {v!r}: {e}") from None


def parse_rule(doc: Any, where: str) -> Rule:
    if not isinstance(doc, dict):
        raise RuleError(f"{where}: a rule is an object")
    unknown = set(doc) - {"action", "direction", "proto", "port", "address", "comment"}
    if unknown:
        raise RuleError(f"{where}: unknown keys {sorted(unknown)}")
    action = _choice(doc, "action", ACTIONS, "", where)
    direction = _choice(doc, "direction", DIRECTIONS, "", where)
    proto = _choice(doc, "proto", PROTOS, "any", where)
    port = _port(doc.get("port"), where)
    if port is not None and proto not in ("tcp", "udp"):
        raise RuleError(f"{where}: a port needs proto tcp or udp")
    return Rule(action, direction, proto, port, _address(doc.get("address"), where))


def parse_ruleset(doc: Any) -> RuleSet:
    """Validate a JSON rule set completely; raise RuleError naming the first fault."""
    if not isinstance(doc, dict):
        raise RuleError("a rule set is an object")
    unknown = set(doc) - {"default_in", "default_out", "rules"}
    if unknown:
        raise RuleError(f"unknown keys {sorted(unknown)}")
    rules = doc.get("rules", [])
    if not isinstance(rules, list):
        raise RuleError("rules must be a list")
    if len(rules) > MAX_RULES:
        raise RuleError(f"{len(rules)} rules (at most {MAX_RULES})")
    return RuleSet(
        _choice(doc, "default_in", ACTIONS, "deny", "rule set"),
        _choice(doc, "default_out", ACTIONS, "allow", "rule set"),
        tuple(parse_rule(r, f"rule {i + 1}") for i, r in enumerate(rules)),
    )


# ---------------------------------------------------------------- nftables JSON


def _match(field: str, proto: str, value: Any) -> dict[str, Any]:
    return {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": proto, "field": field}},
            "right": value,
        }
    }


def _verdict(action: str) -> dict[str, Any]:
    return {"accept": None} if action == "allow" else {"drop": None}


def _rule_exprs(rule: Rule, user: str, direction: str) -> list[dict[str, Any]]:
    """nft expressions of one rule for one direction ("in" or "out")."""
    mine, theirs = ("saddr", "daddr") if direction == "out" else ("daddr", "saddr")
    exprs = [_match(mine, "ip", user)]
    if rule.address is not None:
        net = ipaddress.IPv4Network(rule.address)
        right: Any = (
            str(net.network_address)
            if net.prefixlen == 32
            else {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
        )
        exprs.append(_match(theirs, "ip", right))
    if rule.proto in ("tcp", "udp"):
        exprs.append(
            {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": rule.proto}}
        )
        if rule.port is not None:
            lo, hi = rule.port
            exprs.append(_match("dport", rule.proto, lo if lo == hi else {"range": [lo, hi]}))
    elif rule.proto == "icmp":
        exprs.append({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "icmp"}})
    exprs.append({"counter": None})
    exprs.append(_verdict(rule.action))
    return exprs


def compile_nft(rs: RuleSet, user_ip: str) -> dict[str, Any]:
    """One nft JSON batch that (re)creates table inet netfate_fw with this rule set.

    `add table` + `delete table` + `add table` would fail on a first run; instead the
    batch adds the table (no-op if present), flushes it, deletes its chains, and
    builds them again. All commands of one `nft -f` are one kernel transaction.
    """
    user = str(ipaddress.IPv4Address(user_ip))
    t = {"family": "inet", "table": TABLE}
    cmds: list[dict[str, Any]] = [
        *nft.fresh_table("inet", TABLE),
        {
            "add": {
                "chain": {
                    **t,
                    "name": "forward",
                    "type": "filter",
                    "hook": "forward",
                    "prio": 0,
                    "policy": "drop",
                }
            }
        },
        # A one-armed router receives and sends on the same link, so the kernel would
        # send ICMP redirects telling the user to bypass us; the send_redirects sysctl
        # is per interface (OR of all/iface) and the interface may appear after we
        # start. Dropping them here holds whatever the sysctls say.
        {
            "add": {
                "chain": {
                    **t,
                    "name": "output",
                    "type": "filter",
                    "hook": "output",
                    "prio": 0,
                    "policy": "accept",
                }
            }
        },
        {"add": {"chain": {**t, "name": "user_out"}}},
        {"add": {"chain": {**t, "name": "user_in"}}},
    ]

    def rule(chain: str, expr: list[dict[str, Any]]) -> None:
        cmds.append({"add": {"rule": {**t, "chain": chain, "expr": expr}}})

    ct = {"ct": {"key": "state"}}
    rule(
        "forward",
        [
            {"match": {"op": "in", "left": ct, "right": ["established", "related"]}},
            {"counter": None},
            {"accept": None},
        ],
    )
    rule(
        "forward",
        [
            {"match": {"op": "in", "left": ct, "right": "invalid"}},
            {"counter": None},
            {"drop": None},
        ],
    )
    rule("forward", [_match("saddr", "ip", user), {"jump": {"target": "user_out"}}])
    rule("output", [_match("type", "icmp", "redirect"), {"drop": None}])
    rule("forward", [_match("daddr", "ip", user), {"jump": {"target": "user_in"}}])
    # Anything else is not this user's traffic: the chain policy drops it.
    for r in rs.rules:
        for d in ("out", "in"):
            if r.direction in (d, "both"):
                rule(f"user_{d}", _rule_exprs(r, user, d))
    rule("user_out", [{"counter": None}, _verdict(rs.default_out)])
    rule("user_in", [{"counter": None}, _verdict(rs.default_in)])
    return {"nftables": cmds}
