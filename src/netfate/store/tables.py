"""The orchestrator's tables. Times are float UNIX seconds (sub-ms precision, same on
SQLite and PostgreSQL). Services add their own tables on the same `Base`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from netfate.store.base import Base

NAME_LEN = 254
"""An account's name: a person's email fits."""


class TopologyRow(Base):
    __tablename__ = "topology"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    loaded_at: Mapped[float] = mapped_column(Float)


class NodeRow(Base):
    __tablename__ = "nodes"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    cpu: Mapped[float] = mapped_column(Float, default=2.0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=1024)
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    datapath_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    registered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    resources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Bumped on every change of what this node should run; agents long-poll on it.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # on | draining | off (model/lifecycle.py NodePower; nfv/power.py): the operator's
    # or the consolidation's switch, apart from `status` (whether its agent reports).
    power: Mapped[str] = mapped_column(String(16), default="on", server_default="on")
    power_why: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    # The operator's pre-deploy budget ({"storage_mb", "standbys"}; engine/predeploy.py).
    predeploy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # CPU and memory reserved here by live instances and by open migrations to here,
    # kept by store/usage.py in the transaction that changes them, so placement reads
    # 1,000 nodes' room without summing 10,000 instances (coordinator.used_capacity
    # recomputes them; coordinator.violations says when the two differ).
    used_cpu: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    used_memory_mb: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LanRow(Base):
    __tablename__ = "lans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(ForeignKey("nodes.name", ondelete="CASCADE"))
    subnet: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64))


class LinkRow(Base):
    __tablename__ = "links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    a: Mapped[str] = mapped_column(ForeignKey("nodes.name", ondelete="CASCADE"))
    b: Mapped[str] = mapped_column(ForeignKey("nodes.name", ondelete="CASCADE"))
    rate_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delay_s: Mapped[float] = mapped_column(Float, default=0.0)
    loss: Mapped[float] = mapped_column(Float, default=0.0)


class HostRow(Base):
    __tablename__ = "hosts"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    node: Mapped[str] = mapped_column(ForeignKey("nodes.name", ondelete="CASCADE"))
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(17), nullable=True)
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True)


class PortRow(Base):
    """A port of a node's bridge, as its agent last reported it."""

    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("node", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(ForeignKey("nodes.name", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    ofport: Mapped[int] = mapped_column(Integer)
    peer_kind: Mapped[str] = mapped_column(String(16))
    peer_name: Mapped[str] = mapped_column(String(64))


class DescriptorRow(Base):
    """A VNF descriptor: what to run and what it needs."""

    __tablename__ = "descriptors"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    function: Mapped[str] = mapped_column(String(200))
    cpu: Mapped[float] = mapped_column(Float, default=0.1)
    memory_mb: Mapped[int] = mapped_column(Integer, default=64)
    stateful: Mapped[bool] = mapped_column(default=False)
    delay_bound_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    """The account that published it (None: the platform's, seeded by a service)."""


# An address is held from creation until the instance is gone (a stopping or failed
# instance may still come back), and the database refuses a second holder.
HOLDS_ADDRESS = text("state <> 'gone'")
# A migration reserves room at its target until it ends.
OPEN_MIGRATION = text("phase IN ('pending', 'preparing', 'aborting')")


class InstanceRow(Base):
    __tablename__ = "instances"
    __table_args__ = (
        Index("ix_instances_node_state", "node", "state"),
        Index("ix_instances_lan", "lan"),
        Index(
            "uq_instances_lan_ip",
            "lan",
            "ip",
            unique=True,
            sqlite_where=HOLDS_ADDRESS,
            postgresql_where=HOLDS_ADDRESS,
        ),
        Index("ix_instances_owner", "owner"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    descriptor: Mapped[str] = mapped_column(ForeignKey("descriptors.name"))
    # active_history: the old value is loaded before a change (store/usage.py's deltas).
    node: Mapped[str] = mapped_column(ForeignKey("nodes.name"), active_history=True)
    state: Mapped[str] = mapped_column(String(16), active_history=True)
    serves: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The LAN the address was taken from and its gateway: allocation looks at one
    # LAN's instances only, and an agent's desired state needs no LAN scan.
    lan: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gateway: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac: Mapped[str] = mapped_column(String(17))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cpu: Mapped[float] = mapped_column(Float, active_history=True)
    memory_mb: Mapped[int] = mapped_column(Integer, active_history=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """What the function last said of itself (its `status` op), via its agent."""
    owner: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    """The account on whose request it was created (None: the platform's own, made by
    a service's loop); a provider sees and acts on its own instances only."""


class TransitionRow(Base):
    __tablename__ = "transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    previous: Mapped[str | None] = mapped_column(String(16), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    node: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")


class MigrationRow(Base):
    __tablename__ = "migrations"
    __table_args__ = (
        # At most one open migration per instance.
        Index(
            "uq_migrations_open",
            "instance",
            unique=True,
            sqlite_where=OPEN_MIGRATION,
            postgresql_where=OPEN_MIGRATION,
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64), active_history=True)
    phase: Mapped[str] = mapped_column(String(16), active_history=True)
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    downtime_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    state_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The agents' shared secret for this migration (agent/migration_auth.py): in the
    two agents' desired state only, never in a read of the API or an event."""


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True, index=True)
    """The account whose request caused it (None: the platform itself: a loop, a timer)."""
    readers: Mapped[list[EventReaderRow]] = relationship(cascade="all, delete-orphan", lazy="raise")


class EventReaderRow(Base):
    """Who, besides operators, may read an event: the owner of what it is about (an
    instance's provider, the user whose session or share it is), and its actor."""

    __tablename__ = "event_readers"
    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    reader: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True, index=True)


class AccountRow(Base):
    """A principal (DESIGN.md, convention 12): operator, provider, user, an agent (one
    per node) or the SDN controller. Agents and controllers have no password: they
    hold tokens the operator issued."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    """argon2id (PHC string); an earlier PBKDF2 hash is upgraded at its next sign-in."""
    node: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """An agent's node: the only node its token may act for."""
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class TokenRow(Base):
    """A credential: an API token or a web session. Only its SHA-256 is stored (the
    token is 256 random bits: a fast hash is enough, and a lookup is one index read)."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    """api (an Authorization: Bearer token) or session (the web's cookie)."""
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
