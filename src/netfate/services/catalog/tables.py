"""The catalog's tables (on the shared `netfate.store.Base`; its Alembic branch is
migrations/ in this folder, revisions 0015_catalog, 0016_catalog_whereis).

    catalog_chains         one row per published version of a chain (its descriptor)
    catalog_blocks         the templates a version is decomposed into: one per block
    catalog_talks          ... and one per relationship between two blocks
    catalog_subscriptions  a user's subscription to one version; nothing runs for a
                           chain until one exists
    catalog_instances      the platform instance that runs each block of a subscription
    catalog_decisions      every placement decision of a subscription, with its why
    catalog_sites          the abstract name of each node providers see (never the node)
    catalog_positions      where each user was seen (history, bounded per user: the
                           where-is service, whereabouts.py)
    catalog_settings       the operator's choices (the placement objective)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from netfate.store.base import Base


class CatalogChainRow(Base):
    __tablename__ = "catalog_chains"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_catalog_chain_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(48), index=True)
    version: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(64), index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    user_mbps: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    availability: Mapped[float | None] = mapped_column(Float, nullable=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The descriptor as checked, defaults filled in."""
    source: Mapped[str] = mapped_column(Text)
    """The YAML as published."""
    published_at: Mapped[float] = mapped_column(Float)


class CatalogBlockRow(Base):
    __tablename__ = "catalog_blocks"
    chain: Mapped[int] = mapped_column(
        ForeignKey("catalog_chains.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    """Chain order; 0 is the entry block."""
    name: Mapped[str] = mapped_column(String(32))
    function: Mapped[str] = mapped_column(String(64))
    """A descriptor (descriptors.name) the platform runs."""
    cpu: Mapped[float] = mapped_column(Float)
    memory_mb: Mapped[float] = mapped_column(Float)
    storage_mb: Mapped[float] = mapped_column(Float, default=0.0)


class CatalogTalkRow(Base):
    __tablename__ = "catalog_talks"
    chain: Mapped[int] = mapped_column(
        ForeignKey("catalog_chains.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    a: Mapped[str] = mapped_column(String(32))
    b: Mapped[str] = mapped_column(String(32))
    mbps: Mapped[float] = mapped_column(Float, default=0.0)


class CatalogSubscriptionRow(Base):
    """`state`: see states.py. `at`: the node the placement was computed for (where
    the user was then); the conduit re-places when the user is seen elsewhere."""

    __tablename__ = "catalog_subscriptions"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    chain: Mapped[int] = mapped_column(ForeignKey("catalog_chains.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[str] = mapped_column(String(64))
    devices: Mapped[list[str]] = mapped_column(JSON, default=list)
    """MAC addresses of the user's devices: a sighting of one places the user."""
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    why: Mapped[str] = mapped_column(Text, default="")
    """The last decision's reason."""
    detail: Mapped[str] = mapped_column(Text, default="")
    """What the conduit is waiting for, or ''."""


class CatalogInstanceRow(Base):
    __tablename__ = "catalog_instances"
    subscription: Mapped[str] = mapped_column(
        ForeignKey("catalog_subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    block: Mapped[str] = mapped_column(String(32), primary_key=True)
    instance: Mapped[str] = mapped_column(String(32), index=True)
    """instances.id (the platform's row; it outlives this one while it stops)."""
    node: Mapped[str] = mapped_column(String(64))
    """Where the conduit placed it (the instance's own node once a move is done)."""


class CatalogDecisionRow(Base):
    __tablename__ = "catalog_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription: Mapped[str] = mapped_column(String(16), index=True)
    at: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(16))
    """placed, kept, moved, stayed, upgraded, recreated, refused, ended."""
    objective: Mapped[str] = mapped_column(String(16))
    nodes: Mapped[dict[str, str]] = mapped_column(JSON)
    """Block -> node."""
    rtt_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    why: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The engine's decision in full (binding constraint, runner-up) or refusals."""


class CatalogSiteRow(Base):
    __tablename__ = "catalog_sites"
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(16), unique=True)
    """An opaque name, made at random the first time a block is placed on the node."""
    tier: Mapped[str] = mapped_column(String(16))
    """premises, edge or regional (from the node's kind)."""


class CatalogPositionRow(Base):
    __tablename__ = "catalog_positions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    node: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    seen_at: Mapped[float] = mapped_column(Float)
    """When the source saw the user there."""
    recorded_at: Mapped[float] = mapped_column(Float)
    why: Mapped[str] = mapped_column(Text, default="")
    """Which source won and why the others lost (whereis.locate; revision 0016)."""


class CatalogSettingRow(Base):
    __tablename__ = "catalog_settings"
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
