"""The functions the streaming service runs (netfate.vnf.streaming) and what the
tree reserves for them: the same CPU figures, so the tree's accounting matches
what the platform reserves for each instance."""

from __future__ import annotations

from typing import Any

from .tree import Limits

ACQUIRER, FORWARDER, STREAMER = "streaming-acquirer", "streaming-forwarder", "streaming-edge"
STORAGE = "streaming-storage"
ACQUIRER_CPU, FORWARDER_CPU, STREAMER_CPU, STORAGE_CPU = 0.1, 0.1, 0.3, 0.2

LIMITS = Limits(
    streamer_cpu=STREAMER_CPU,
    content_cpu=0.0,  # the platform reserves per instance; a content adds no reservation
    acquirer_cpu=ACQUIRER_CPU,
    forwarder_cpu=FORWARDER_CPU,
    streamer_bandwidth_bps=40e6,
    streamer_contents=4,
    grace_s=10.0,
)

INGEST_PORTS = (5000, 5127)
"""The acquirer's block: a content's ingest port (RTP, RTCP on the next) is in it."""
TREE_PORTS = (6000, 6127)
"""Where contents arrive at forwarders and edge streamers."""
HTTP_PORT = 8080
"""The edge streamer's HTTP (RTP joins, SDP, HLS)."""
STORAGE_HTTP_PORT = 8081
"""The storage function's HTTP (HLS VoD of the recordings)."""

DESCRIPTORS: tuple[dict[str, Any], ...] = (
    {
        "name": ACQUIRER,
        "function": "netfate.vnf.streaming.acquirer:Acquirer",
        "cpu": ACQUIRER_CPU,
        "memory_mb": 64,
        "stateful": False,
        "description": "Root of a delivery tree at the provider's access PE: takes a "
        "provider's RTP/MPEG-TS (SRT, RTMP) on its assigned port, refuses what is not "
        "armed, recognises the stream and sends it to its next hops.",
    },
    {
        "name": FORWARDER,
        "function": "netfate.vnf.streaming.relay:Relay",
        "cpu": FORWARDER_CPU,
        "memory_mb": 64,
        "stateful": False,
        "description": "A branch point of a delivery tree: one copy of each content per next hop.",
    },
    {
        "name": STREAMER,
        "function": "netfate.vnf.streaming.edge:EdgeStreamer",
        "cpu": STREAMER_CPU,
        "memory_mb": 128,
        "stateful": False,
        "description": "Edge streamer on viewers' access PEs: RTP (an SDP per stream) and "
        "HLS / LL-HLS, optional lower renditions.",
    },
    {
        "name": STORAGE,
        "function": "netfate.vnf.streaming.storage:Storage",
        "cpu": STORAGE_CPU,
        "memory_mb": 128,
        "stateful": False,
        "description": "The storage subsystem at a provider's PE: records the contents users "
        "asked to record on the service's volume (per-user quota) and serves them as "
        "seekable HLS VoD.",
    },
)
