"""The NFVI database of the NetFATE paper, plus RADIUS clients and accounting.

Table I  (users):             firewall_users       which functions a user requires, the
                                                   access CPE, the last packet time
Table II (network functions): firewall_functions   active, on which node, how many users
Table III (forwarding rules): firewall_forwarding  user MAC, local IP, MAC of the VNF

(Alembic branch `firewall`, migrations/ in this folder; until revision
0008_firewall_names the tables were called netfate_*.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from netfate.store.base import Base


class FirewallUserRow(Base):
    """Table I. `status`: offline | online (logged in at `access_node`)."""

    __tablename__ = "firewall_users"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    functions: Mapped[list[str]] = mapped_column(JSON, default=list)
    host: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(17), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="offline")
    access_node: Mapped[str | None] = mapped_column(String(64), nullable=True)
    logged_in_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_packet_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    session_timeout: Mapped[int] = mapped_column(Integer, default=3600)
    idle_timeout: Mapped[int] = mapped_column(Integer, default=60)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rules_version: Mapped[int] = mapped_column(Integer, default=1)
    counters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class FirewallFunctionRow(Base):
    """Table II: one row per network function (a user's personal firewall, a portal)."""

    __tablename__ = "firewall_functions"
    name: Mapped[str] = mapped_column(String(96), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    instance: Mapped[str | None] = mapped_column(String(32), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    node: Mapped[str | None] = mapped_column(String(64), nullable=True)
    users: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)
    detail: Mapped[str] = mapped_column(Text, default="")


class FirewallForwardingRow(Base):
    """Table III: how a user's traffic reaches their function."""

    __tablename__ = "firewall_forwarding"
    user: Mapped[str] = mapped_column(String(64), primary_key=True)
    mac: Mapped[str | None] = mapped_column(String(17), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    function_mac: Mapped[str | None] = mapped_column(String(17), nullable=True)
    instance: Mapped[str | None] = mapped_column(String(32), nullable=True)
    node: Mapped[str | None] = mapped_column(String(64), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    steering: Mapped[str] = mapped_column(Text, default="")


class FirewallRadiusClientRow(Base):
    """A NAS allowed to talk to the embedded RADIUS server (by source address)."""

    __tablename__ = "firewall_radius_clients"
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(64), default="")


class FirewallSettingRow(Base):
    """Service settings (steer_to, accounting_server, ...), one JSON value per key."""

    __tablename__ = "firewall_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class FirewallRadiusListenerRow(Base):
    """Where the embedded RADIUS server listens (optionally inside a namespace)."""

    __tablename__ = "firewall_radius_listeners"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(64))
    port: Mapped[int] = mapped_column(Integer)
    netns: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The address:port network functions are told to send accounting to (the
    # listener as seen from the emulated network), or None.
    advertise: Mapped[str | None] = mapped_column(String(80), nullable=True)


class FirewallAccountingRow(Base):
    __tablename__ = "firewall_accounting"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    session_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    nas: Mapped[str] = mapped_column(String(128))
    input_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    output_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    session_time: Mapped[int] = mapped_column(Integer, default=0)


class FirewallNasSessionRow(Base):
    """A session a NAS (a captive portal) reported by accounting and has not stopped:
    what an RFC 5176 Disconnect-Request needs to end it (radius.py). In the database,
    not only in memory, so that a release right after an orchestrator restart still
    ends the sessions the NASes reported before it.

    `current`: the user's newest session (their latest Start), whose Stop releases
    them; `disconnected_at`: our Disconnect-Request for it went out, so its Stop
    releases nothing and a later release does not name it again."""

    __tablename__ = "firewall_nas_sessions"
    # RFC 2865/2866 attributes are up to 253 octets: the session id is kept whole, as
    # the Disconnect-Request must name it exactly.
    nas: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(253), primary_key=True)
    user: Mapped[str] = mapped_column(String(253), index=True)
    nas_identifier: Mapped[str | None] = mapped_column(String(253), nullable=True)
    nas_port: Mapped[int] = mapped_column(Integer)
    """The UDP port its accounting came from (the NAS's address is `nas`)."""
    listener_address: Mapped[str] = mapped_column(String(64))
    listener_port: Mapped[int] = mapped_column(Integer)
    listener_netns: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The listener the accounting came in on: the Disconnect-Request leaves from it."""
    framed_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started: Mapped[float] = mapped_column(Float)
    seen: Mapped[float] = mapped_column(Float, index=True)
    current: Mapped[bool] = mapped_column(Boolean, default=False)
    disconnected_at: Mapped[float | None] = mapped_column(Float, nullable=True)
