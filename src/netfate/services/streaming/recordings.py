"""Recordings made real: the storage function (netfate.vnf.streaming.storage) driven by
the Table of Recordings (``streaming_recordings``).

Where: one storage function, ``storage:NODE``, at the PE of each provider whose events
users record, kept while one of its recordings exists (it serves them as HLS VoD).

Joins only when a recording is requested: while a recording of a live content is
``requested``, the content's acquirer sends it to the storage as one more next hop
(on the PE's own LAN, so no link of the tree carries it); when the last one stops,
the hop goes. A recording asked for before its event starts begins with the stream.

The volume is the service's: a directory on the node (``NETFATE_STREAMING_VOLUME``,
default /var/lib/netfate/images/streaming), outside any instance, so a restarted or
rebuilt storage function scans it and serves what is there. The function writes it
as root, so it must lie below the node's --image-dir (the agent refuses a volume
elsewhere; a testbed run sets it below the run's images). Each user's bytes count
against a quota (``NETFATE_STREAMING_QUOTA_BYTES``, default 1 GiB): reaching it stops
the user's recordings, a new one is refused (the function's ``stop_reason``).

Recording ``r{id}`` of user U lives in VOLUME/U'/r{id}/, where U' is U when it is a
plain name and ``u-`` + a digest of it otherwise (e-mail addresses).

Playback (MyShare): through the edge streamer the tree's rule picks for the user's
PE, never straight from the storage. The recording is a *pulled* content of the
tree (``r{id}``, rooted at the storage's PE: the rule, the bandwidth reserved on the
way, the grace period and the release are the live branches'); the streamer relays
the storage's HLS VoD over HTTP and caches it (netfate.vnf.streaming.vod). Tokens
(the service's key, backend.key): the storage serves ``r{id}`` only with a grant
of scope ``vod:r{id}`` that the streamers relaying it hold; the streamer serves it
only with the user's token, scope ``vod:r{id}:U'``, given in the play answer. A
playback ends when the user stops it or its streamer has served nothing of it for
IDLE_S; its branch goes after the grace period.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.store.tables import InstanceRow
from netfate.vnf.registry import DEFAULT_IMAGE_DIR
from netfate.vnf.streaming import tokens
from netfate.vnf.streaming.config import NAME

from . import backend
from .functions import STORAGE, STORAGE_HTTP_PORT
from .tables import ContentRow, EventRow, FunctionRow, ProviderRow, RecordingRow

VOLUME_ENV = "NETFATE_STREAMING_VOLUME"
DEFAULT_VOLUME = str(DEFAULT_IMAGE_DIR / "streaming")
QUOTA_ENV = "NETFATE_STREAMING_QUOTA_BYTES"
DEFAULT_QUOTA = 1 << 30
MAX_PER_STORAGE = 256
"""Recordings one storage function is told of (its own bound): the newest."""
FIGURES = ("state", "stop_reason", "duration_s", "octets", "segments", "runs", "writing")
"""What MyShare shows of the storage function's figures of a recording."""
KEPT = ("requested", "stopped")
"""States whose files the storage keeps (``deleted`` has them removed)."""
PLAY_TOKEN_S = 6 * 3600
"""How long a user's playback token is good for."""
GRANT_DAYS = 2
"""A streamer's grant at the storage runs to the end of the day after next (a day's
bucket: the streamer's configuration, which holds it, changes once a day at most)."""
IDLE_S = 120.0
"""A playback whose streamer served nothing of it for this long has ended (a player
buffers up to about half a minute ahead, then asks for nothing while it plays)."""


def volume() -> str:
    return os.environ.get(VOLUME_ENV) or DEFAULT_VOLUME


def quota_bytes() -> int:
    raw = os.environ.get(QUOTA_ENV, "")
    return int(raw) if raw.isdigit() else DEFAULT_QUOTA


def volume_user(user: str) -> str:
    """The user's folder name on the volume (the function takes plain names only)."""
    if NAME.fullmatch(user):
        return user
    return "u-" + hashlib.sha256(user.encode()).hexdigest()[:24]


def key(node: str) -> str:
    return f"storage:{node}"


def node_of(session: Session, event: int) -> str | None:
    """Where an event's recordings are made: its provider's PE."""
    e = session.get(EventRow, event)
    p = session.get(ProviderRow, e.provider) if e is not None else None
    return p.pe if p is not None else None


def by_node(session: Session) -> dict[str, list[RecordingRow]]:
    """Each storage node's recordings, newest first, at most MAX_PER_STORAGE; a node
    whose recordings are all deleted keeps its storage until the function no longer
    reports one of them (it has removed their files)."""
    out: dict[str, list[RecordingRow]] = {}
    for r in session.scalars(select(RecordingRow).order_by(RecordingRow.id.desc())):
        node = node_of(session, r.event)
        if node is not None and len(out.setdefault(node, [])) < MAX_PER_STORAGE:
            out[node].append(r)

    def needed(node: str, rows: list[RecordingRow]) -> bool:
        if any(r.state in KEPT for r in rows):
            return True
        inst = instance(session, node)
        held = ((inst.stats or {}).get("recordings") or {}) if inst is not None else {}
        return any(f"r{r.id}" in held for r in rows)

    return {n: rs for n, rs in out.items() if needed(n, rs)}


def recorded(session: Session) -> dict[str, ContentRow]:
    """The live contents someone records now (their acquirer feeds the storage)."""
    out = {}
    for r in session.scalars(select(RecordingRow).where(RecordingRow.state == "requested")):
        c = session.scalars(select(ContentRow).where(ContentRow.event == r.event)).first()
        if c is not None and c.state == "live":
            out[c.id] = c
    return out


def configs(session: Session) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """key -> (descriptor, node, config) of every storage function needed."""
    live = recorded(session)
    nodes = by_node(session)
    secret = backend.key(session) if nodes else None  # made with the first storage
    out: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for node, rows in sorted(nodes.items()):
        contents = sorted(
            {c.id: c.tree_port for c in live.values() if c.pe == node}.items(),
        )
        recs = [
            {
                "id": f"r{r.id}",
                "user": volume_user(r.user),
                "content": f"ev{r.event}",
                "state": {"requested": "recording"}.get(r.state, r.state),
            }
            for r in reversed(rows)
        ]
        cfg = {
            "volume": volume(),
            "secret": secret,
            "http_port": STORAGE_HTTP_PORT,
            "contents": [{"id": cid, "port": port} for cid, port in contents],
            "recordings": recs,
            "quota": {"default_bytes": quota_bytes()},
        }
        out[key(node)] = (STORAGE, node, cfg)
    return out


def instance(session: Session, node: str) -> InstanceRow | None:
    f = session.get(FunctionRow, key(node))
    return session.get(InstanceRow, f.instance) if f is not None else None


def content_id(rid: int) -> str:
    """The recording as a pulled content of the tree (live contents are ``ev{id}``)."""
    return f"r{rid}"


def client_id(rid: int) -> str:
    """Its playback as the tree's viewer: one per recording (its user's)."""
    return f"play-r{rid}"


def rid_of(content: str) -> int | None:
    return int(content[1:]) if content[:1] == "r" and content[1:].isdigit() else None


def user_token(secret: str, r: RecordingRow, now: float) -> str:
    """The user's token of recording ``r`` at the edge streamer."""
    return tokens.issue(secret, f"vod:r{r.id}:{volume_user(r.user)}", int(now) + PLAY_TOKEN_S)


def vod_config(session: Session, contents: tuple[str, ...], now: float) -> dict[str, Any] | None:
    """An edge streamer's ``vod``: the recordings among ``contents`` it relays, each
    with its storage's address and the streamer's grant there (None: none)."""
    secret = backend.secret(session)
    if secret is None:
        return None
    expires = (int(now) // 86400 + GRANT_DAYS) * 86400
    out = []
    for x in contents:
        rid = rid_of(x)
        r = session.get(RecordingRow, rid) if rid is not None else None
        node = node_of(session, r.event) if r is not None else None
        ip = address(instance(session, node)) if node is not None else None
        if r is None or ip is None:
            continue
        out.append(
            {
                "id": x,
                "user": volume_user(r.user),
                "origin": f"http://{ip}:{STORAGE_HTTP_PORT}/vod/{x}/",
                "origin_secret": tokens.issue(secret, f"vod:{x}", expires),
            }
        )
    return {"secret": secret, "recordings": out} if out else None


def address(inst: InstanceRow | None) -> str | None:
    if inst is None or not inst.ip:
        return None
    return str(ipaddress.ip_interface(inst.ip).ip)


def playback(session: Session, r: RecordingRow) -> dict[str, Any]:
    """What MyShare shows of a recording: where it is stored, whether it can be played
    (``play``: the API path that starts a playback through an edge streamer) and the
    storage function's figures (state, duration, bytes; empty until it reports)."""
    node = node_of(session, r.event)
    inst = instance(session, node) if node is not None else None
    stats = (inst.stats or {}) if inst is not None else {}
    figs = (stats.get("recordings") or {}).get(f"r{r.id}") or {}
    user = (stats.get("users") or {}).get(volume_user(r.user)) or {}
    ok = r.state in KEPT and address(inst) is not None
    return {
        "node": node,
        "play": f"/recordings/{r.id}/play" if ok else None,
        "recorded": {k: figs.get(k) for k in FIGURES},
        "quota": {"used": user.get("used"), "bytes": user.get("quota")},
    }
