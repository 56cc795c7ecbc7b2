"""Tables of the sharing service (on the shared `netfate.store.Base`; migration 0004_sharing)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from netfate.store.base import Base


class PersonalNetworkRow(Base):
    """A Personal Network: its owner's account name is its id (seed section II names
    PNs by their owner's email; an email is one account name among others). The
    column keeps its first name, `email` (migration 0020_pnuser)."""

    __tablename__ = "sharing_pns"
    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    node: Mapped[str] = mapped_column(String(64))
    """The edge node (CPE) whose LAN is the PN's home LAN."""
    subnet: Mapped[str] = mapped_column(String(64))
    vhg_instance: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    gateway: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """The vHG's settings its owner chose (services/sharing/gateway.py; migration
    0019_gateway): DHCP pool and lease time, forwards, allow rules. None: defaults."""
    members: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    """The topology hosts of its LAN that its owner chose to join it (by name;
    migration 0020_pnuser). None: every host of the LAN, as before the choice."""


class DeviceRow(Base):
    """A device of a PN that the topology does not know: declared (virtual) or reported."""

    __tablename__ = "sharing_devices"
    __table_args__ = (UniqueConstraint("pn", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pn: Mapped[str] = mapped_column(ForeignKey("sharing_pns.email", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(17), nullable=True)
    kind: Mapped[str] = mapped_column(String(32), default="device")
    source: Mapped[str] = mapped_column(String(16))
    """declared (a virtual device the owner added), lease or neighbour (vHG report)."""
    seen_at: Mapped[float] = mapped_column(Float)


class ShareRow(Base):
    __tablename__ = "sharing_shares"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(ForeignKey("sharing_pns.email", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(ForeignKey("sharing_pns.email", ondelete="CASCADE"))
    device: Mapped[str] = mapped_column(String(64))
    device_ip: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    att: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    vp2_instance: Mapped[str | None] = mapped_column(String(32), nullable=True)
    vp1_instance: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tunnel_intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """Per-share options: http_ports (the device's HTTP ports, proxied by the ALG)."""
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    accepted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    active_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class ShareHistoryRow(Base):
    __tablename__ = "sharing_share_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share: Mapped[int] = mapped_column(
        ForeignKey("sharing_shares.id", ondelete="CASCADE"), index=True
    )
    previous: Mapped[str | None] = mapped_column(String(16), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(254), default="")
    reason: Mapped[str] = mapped_column(Text, default="")


class InvitationRow(Base):
    """A code a PN's owner gives someone so that they can share a device with that PN
    without knowing its id (migration 0004b_sharing_invitations). Used once."""

    __tablename__ = "sharing_invitations"
    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    pn: Mapped[str] = mapped_column(ForeignKey("sharing_pns.email", ondelete="CASCADE"), index=True)
    """The PN a share made with this code goes to (the recipient)."""
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    share: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The share the code was used for."""
