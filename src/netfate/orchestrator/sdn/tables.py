"""The SDN controller's tables, on the shared declarative Base (names prefixed `sdn_`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from netfate.store.base import Base


class SdnIntentRow(Base):
    """An intent as accepted through the API; `spec` is its JSON (intents.py)."""

    __tablename__ = "sdn_intents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, index=True)


class SdnFlowSnapshotRow(Base):
    """The last flow table (with counters) and port statistics the controller read from a node."""

    __tablename__ = "sdn_flow_snapshots"
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    dpid: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Float)
    flows: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    ports: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class SdnHostSightingRow(Base):
    """Where a MAC address was last seen (a HostSeen event); the newest per MAC."""

    __tablename__ = "sdn_host_sightings"
    mac: Mapped[str] = mapped_column(String(17), primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    port: Mapped[str] = mapped_column(String(32))
    ofport: Mapped[int] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[float] = mapped_column(Float)
