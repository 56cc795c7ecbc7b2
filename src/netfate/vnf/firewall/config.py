"""The configuration of a user's personal firewall (function.py), as a schema the API
and the agent check before the function starts: what the firewall service gives it
(services/firewall/policy.firewall_config): the user, the user's address, the rule
set (rules.py, whose own parser each rule and the whole set must also pass) and
the accounting channel (services/firewall settings ``accounting``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from netfate.vnf.configs import Endpoint, FunctionConfig, IPv4, write_only
from netfate.vnf.firewall.rules import MAX_RULES, parse_rule

Action = Literal["allow", "deny"]
USER = r"^([A-Za-z0-9][A-Za-z0-9_.@-]{0,63})?$"
"""A firewall user's name as the service's API takes it (services/firewall/api.py)."""


class RuleConfig(FunctionConfig):
    action: Action
    direction: Literal["in", "out", "both"]
    proto: Literal["any", "tcp", "udp", "icmp"] = "any"
    port: int | Annotated[str, Field(max_length=11)] | None = Field(
        default=None, description="The destination port, one number or 'lo-hi' (tcp, udp)"
    )
    address: str | None = Field(default=None, max_length=43, description="The remote end (CIDR)")
    comment: str | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _as_the_firewall_reads_it(self) -> RuleConfig:
        parse_rule(self.model_dump(exclude_none=True), "rule")  # RuleError: a ValueError
        return self


class RuleSetConfig(FunctionConfig):
    default_in: Action = "deny"
    default_out: Action = "allow"
    rules: list[RuleConfig] = Field(default_factory=list, max_length=MAX_RULES)


class AccountingConfig(FunctionConfig):
    """Where the firewall sends its Interim-Updates (the orchestrator's RADIUS
    accounting listener), with the shared secret they are signed with."""

    server: Endpoint = Field(description="IPv4:PORT of the RADIUS accounting server")
    secret: str = write_only(description="The RADIUS shared secret (write-only)")
    interval: float = Field(default=1.0, gt=0, le=3600, description="Seconds between updates")


class FirewallConfig(FunctionConfig):
    user: str = Field(default="", pattern=USER, description="The user it protects")
    user_ip: IPv4 = Field(description="The user's address: the rules are about it")
    rules: RuleSetConfig = Field(default_factory=RuleSetConfig)
    rules_version: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    tcp_loose: bool = Field(default=False, description="Take up TCP connections it never saw begin")
    accounting: AccountingConfig | None = None
