"""The streaming service's tables (on the shared `netfate.store.Base`; its Alembic
branch is migrations/ in this folder, revision 0014_streaming).

The front-end's (seed section 3.1): content providers, their scheduled events,
the live contents (an event once started: its acquirer port and tree port), each
user's recordings (the paper's Table of Recordings) and reservations. The
back-end's: the delivery tree (tree.py's state, one row) and the platform
instances the reconcile loop keeps for it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from netfate.store.base import Base


class ProviderRow(Base):
    """A content provider: a university, a sports club, a municipality."""

    __tablename__ = "streaming_providers"
    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    title: Mapped[str] = mapped_column(String(128))
    pe: Mapped[str] = mapped_column(String(64))
    """The provider's access PE: its acquirer runs there."""
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The address its streams come from (the acquirer refuses others), or any."""
    created_at: Mapped[float] = mapped_column(Float)


class EventRow(Base):
    """A scheduled event: scheduled -> started -> ended, or scheduled -> cancelled."""

    __tablename__ = "streaming_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(
        ForeignKey("streaming_providers.name", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    start: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    bitrate_kbps: Mapped[int] = mapped_column(Integer)
    """What the provider expects to send: the tree reserves it on every branch."""
    protocol: Mapped[str] = mapped_column(String(8), default="rtp-udp")
    """How the provider sends: rtp-udp (the paper's), srt or rtmp (its start may
    choose another)."""
    state: Mapped[str] = mapped_column(String(16), default="scheduled")
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ContentRow(Base):
    """A live content: an event started (``live``), or pre-started for its reservations
    (``planned``, planning.py). Its id names it in the tree and the functions."""

    __tablename__ = "streaming_contents"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event: Mapped[int] = mapped_column(
        ForeignKey("streaming_events.id", ondelete="CASCADE"), unique=True
    )
    provider: Mapped[str] = mapped_column(String(48))
    pe: Mapped[str] = mapped_column(String(64))
    ingest_port: Mapped[int] = mapped_column(Integer)
    """The acquirer's port for this flow (RTP, RTCP on the next; SRT; RTMP)."""
    protocol: Mapped[str] = mapped_column(String(8), default="rtp-udp")
    """The flow's ingest protocol: rtp-udp, srt or rtmp."""
    ingest_secret: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """SRT: the flow's passphrase; RTMP: its stream key. Shown to its provider only
    (``GET /events/{eid}/ingest``), given to the acquirer write-only."""
    tree_port: Mapped[int] = mapped_column(Integer)
    """The port the content arrives on at forwarders and edge streamers."""
    bitrate_bps: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="live")
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    stream: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """What the acquirer said of the provider's stream (notices.py): its state, starts,
    source, recognition (container, codecs), measured bitrate, last refusals."""


class RecordingRow(Base):
    """A user's recording of an event (the paper's Table of Recordings)."""

    __tablename__ = "streaming_recordings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(254), index=True)
    event: Mapped[int] = mapped_column(ForeignKey("streaming_events.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="requested")
    """requested, then stopped (the storage function is not driven yet)."""
    created_at: Mapped[float] = mapped_column(Float)
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ReservationRow(Base):
    """A user's intent to watch a future event: the Calendar's reminders, and the
    back-end's planning (planning.py) when it says the user's access PE."""

    __tablename__ = "streaming_reservations"
    __table_args__ = (UniqueConstraint("user", "event"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(254), index=True)
    event: Mapped[int] = mapped_column(ForeignKey("streaming_events.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)
    pe: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The user's access PE, where a branch is pre-started (None: nothing is)."""


class TreeRow(Base):
    """The delivery tree (tree.Tree.dump), one row: read, changed and written under
    its row lock."""

    __tablename__ = "streaming_tree"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    criterion: Mapped[str] = mapped_column(String(16), default="consolidation")
    grace_s: Mapped[float] = mapped_column(Float, default=10.0)
    updated_at: Mapped[float] = mapped_column(Float)
    portals: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """Where the viewers' captive portals are kept (portals.py): ``{"all": bool,
    "pes": [...]}`` as the operator last put it; None until then (the environment's
    NETFATE_STREAMING_PORTALS is the default)."""


class FunctionRow(Base):
    """A platform instance the tree needs: ``acquirer:NODE``, ``forwarder:NODE`` or
    ``streamer:ID``."""

    __tablename__ = "streaming_functions"
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    instance: Mapped[str] = mapped_column(String(32))
    node: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text, default="")
