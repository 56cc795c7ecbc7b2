"""Request and response bodies. Unknown fields are refused (extra="forbid"), so a
typo in a request is an error, not a silently ignored option."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
INT32_MAX = 2**31 - 1
"""Integers the database stores or looks up fit its INTEGER columns (32-bit on
PostgreSQL); a larger one is invalid input (422), not a database error."""
DbInt = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]


class Strict(BaseModel):
    # Finite numbers only: JSON has no NaN or Infinity, and a stored one could not be
    # answered back as JSON.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class InstanceCreate(Strict):
    descriptor: str = Field(min_length=1, max_length=64, description="VNF descriptor name")
    name: str | None = Field(default=None, pattern=NAME)
    node: str | None = Field(default=None, description="Pin to this node; else placement")
    serves: str | None = Field(default=None, description="Host the instance serves")
    policy: str = Field(default="nearest", description="Placement policy")
    config: dict[str, Any] | None = None


class InstancePatch(Strict):
    config: dict[str, Any] = Field(description="The function's new configuration (whole)")


class MigrateRequest(Strict):
    node: str = Field(min_length=1, max_length=64, description="Target node")


class PowerRequest(Strict):
    state: Literal["on", "off"] = Field(
        description="off: drain the node (its instances migrate away), then off; on: back "
        "for placement"
    )
    why: str = Field("", max_length=500, description="Recorded with the change")


class PredeployBudget(Strict):
    storage_mb: float = Field(
        ge=0, le=1_000_000, description="Room for pre-deployed function images (MB)"
    )
    standbys: int = Field(
        ge=0, le=64, description="Warm standbys kept ready (idle processes, one namespace each)"
    )


class DescriptorIn(Strict):
    name: str = Field(pattern=NAME)
    function: str = Field(
        pattern=r"^[a-z0-9_]{1,64}$|^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$",
        max_length=200,
        description="A built-in function name, or package.module:Class",
    )
    cpu: float = Field(gt=0, le=64)
    memory_mb: int = Field(gt=0, le=1 << 20)
    stateful: bool = False
    delay_bound_ms: float | None = Field(default=None, gt=0)
    description: str = Field(default="", max_length=2000)
    config: dict[str, Any] = Field(default_factory=dict)


class AgentRegister(Strict):
    endpoint: str = Field(min_length=3, max_length=128, description="host:port for migrations")
    datapath_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")


class PortReport(Strict):
    name: str = Field(max_length=32)
    ofport: int = Field(ge=-1, le=INT32_MAX)
    peer: str | None = Field(
        default=None, max_length=96, description="host:NAME, node:NAME, ...; none: a free port"
    )


class InstanceReport(Strict):
    id: str = Field(max_length=32)
    status: Literal["starting", "running", "standby", "stopping", "failed"]
    role: Literal["active", "standby"] = "active"
    pid: DbInt | None = None
    detail: str = Field(default="", max_length=4000)
    stats: dict[str, Any] | None = Field(default=None, description="The function's own figures")
    from_standby: bool | None = Field(
        default=None, description="It took a warm standby instead of a cold start"
    )


class MigrationReport(Strict):
    id: DbInt
    instance: str
    status: Literal["preparing", "done", "failed", "frozen", "released", "refused"] = Field(
        description="From the target: preparing, done, failed; from the source: frozen, "
        "released, refused (agent/migration.py)"
    )
    downtime_ms: float | None = None
    state_bytes: DbInt | None = None
    reason: str = Field(default="", max_length=4000)


class AgentReport(Strict):
    resources: dict[str, Any] = Field(default_factory=dict)
    datapath_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    ports: list[PortReport] | None = None
    instances: list[InstanceReport] | None = Field(
        default=None, description="Every instance the agent runs; omitted = not reported"
    )
    migrations: list[MigrationReport] = Field(default_factory=list)
