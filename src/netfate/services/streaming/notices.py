"""What the acquirer tells the back-end (the paper: "recognizing the media streams;
notifying the Back-end about the upcoming transmissions"), through the platform's
function events (``Service.on_instance_event``, netfate/orchestrator/nfv/fnevents.py).

Each acquirer flow is a live content (its id is the content's). The content keeps
``stream``::

    state        waiting (nothing yet), streaming, stopped
    starts       how many times the provider's stream (re)started: a provider that
                 reconnects continues the same event and content
    source, transport, since     of the latest start
    recognised   {container, streams: [{kind, codec, ...}], complete, bitrate_bps, at}
    bitrate_bps  the programme-clock bitrate measured
    stopped      {reason, at} of the latest stop
    refused      the latest refusals on the content's port, and on ports no flow owns
                 from the provider's source address ({reason, detail, source, at})
    seq          {instance: the last event handled}: an event delivered twice is
                 handled once

Nothing here changes the tree: a notice is what the provider's page and the
operator see (``GET /contents``, ``GET /events``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .tables import ContentRow, ProviderRow

REFUSALS_KEPT = 8


def on_instance_event(session: Session, inst: Any, event: dict[str, Any]) -> set[str]:
    """A streaming function's event: the acquirer's stream notices go to the content;
    a refusal on a port no flow owns goes to the live contents of the provider it
    came from (a provider known by its ``source`` address at that acquirer's PE)."""
    flow = event.get("flow")
    if isinstance(flow, str):
        c = session.get(ContentRow, flow)
        if c is not None:
            _apply(c, inst, event)
    elif event.get("kind") == "StreamRefused" and isinstance(event.get("source"), str):
        live = select(ContentRow).where(ContentRow.state == "live", ContentRow.pe == inst.node)
        for c in session.scalars(live):
            p = session.get(ProviderRow, c.provider)
            if p is not None and p.source == event["source"]:
                _apply(c, inst, event)
    return set()


def _apply(c: ContentRow, inst: Any, event: dict[str, Any]) -> None:
    st: dict[str, Any] = dict(c.stream or {"state": "waiting", "starts": 0})
    seen = dict(st.get("seq") or {})
    seq = event.get("seq")
    if isinstance(seq, int):
        if seq <= int(seen.get(inst.id, 0)):
            return
        seen[inst.id] = seq
    st["seq"] = seen
    kind, at = event.get("kind"), event.get("at")
    if kind == "StreamStarted":
        st.update(
            state="streaming",
            starts=int(st.get("starts", 0)) + 1,
            source=event.get("source"),
            transport=event.get("transport"),
            since=at,
        )
    elif kind == "StreamRecognised":
        st["recognised"] = {
            k: event.get(k) for k in ("container", "streams", "complete", "bitrate_bps", "at")
        }
    elif kind == "StreamMeasured":
        st["bitrate_bps"] = event.get("bitrate_bps")
    elif kind == "StreamStopped":
        st.update(state="stopped", stopped={"reason": event.get("reason"), "at": at})
    elif kind == "StreamRefused":
        keep = {k: event.get(k) for k in ("reason", "detail", "source", "at")}
        st["refused"] = [*(st.get("refused") or []), keep][-REFUSALS_KEPT:]
    else:
        return
    c.stream = st  # a new object: the JSON column sees the change
