"""The USB/IP service's table (on the shared `netfate.store.Base`; its Alembic
branch is migrations/ in this folder, revision 0009_usbip_tunnels)."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from netfate.store.base import Base


class UsbipTunnelRow(Base):
    """A USB/IP tunnel asked for: `a` may reach the HRH function `b` on TCP `port`
    and nothing else. The service's loop keeps the SDN intent `usbip-NAME` equal
    to it, and closes it when an instance it names is gone."""

    __tablename__ = "usbip_tunnels"
    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    a: Mapped[str] = mapped_column(String(128))
    """The importing side: `instance:ID` or `subnet:CIDR@NODE`."""
    b: Mapped[str] = mapped_column(String(128))
    """The HRH function: `instance:ID` or `subnet:ADDRESS/32@NODE`."""
    port: Mapped[int] = mapped_column(Integer, default=3240)
    created_at: Mapped[float] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text, default="")
    """Why the tunnel is not open yet (its intent refused: a port not known yet), or ''."""
