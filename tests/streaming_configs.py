"""The streaming functions' configurations as their docstrings show them (the
acquirer, relay, edge streamer and storage), with the paths they write as root below
a given image directory: what the schema tests and fuzzers start from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import strategies as st

ACQ = "netfate.vnf.streaming.acquirer:Acquirer"
RELAY = "netfate.vnf.streaming.relay:Relay"
EDGE = "netfate.vnf.streaming.edge:EdgeStreamer"
STORAGE = "netfate.vnf.streaming.storage:Storage"
HOP = {"host": "10.0.9.2", "port": 6000}
FLOW = {"id": "f1", "protocol": "srt", "port": 5000, "event": "ev1", "state": "started",
        "next_hops": [HOP], "sources": ["10.1.0.7"], "armed_from": 1767000000,
        "armed_until": 1767007200, "passphrase": "a passphrase", "latency_ms": 120}  # fmt: skip
ROUTE = {"id": "X", "port": 6000, "next_hops": [{"host": "10.0.1.5", "port": 7000}]}
CONTENT = {"id": "X", "port": 7000, "sources": ["10.0.9.1"], "hls": True,
           "renditions": [{"name": "low", "height": 240, "video_kbps": 400, "audio_kbps": 64}],
           "viewers": [{"host": "10.0.3.7", "port": 5004, "rendition": "low"}]}  # fmt: skip
SECRET = "sixteen or more characters"


def storage(volume: str, **more: Any) -> dict[str, Any]:
    return {"volume": volume, "contents": [{"id": "X", "port": 7100}],
            "recordings": [{"id": "r1", "user": "alice", "content": "X"}], **more}  # fmt: skip


def documented(images: Path) -> dict[str, dict[str, Any]]:
    """Each function's fullest configuration (every key it reads given)."""
    return {
        ACQ: {"ports": {"first": 5000, "last": 5031}, "flows": [FLOW], "bind": "0.0.0.0",
              "source_timeout": 10, "refusal_quiet_s": 10},
        RELAY: {"routes": [{**ROUTE, "sources": ["10.0.0.2"]}], "bind": "::", "rtcp": True,
                "source_timeout": 10},
        EDGE: {"contents": [CONTENT], "http_port": 8080, "bind": "0.0.0.0",
               "hls": {"segment_s": 1.0, "list_size": 6, "format": "fmp4",
                       "low_latency": True, "part_s": 0.2},
               "join": {"secret": SECRET, "lease_s": 300, "max_viewers": 200,
                        "per_address": 8},
               "work_dir": f"{images}/edge", "source_timeout": 10},
        STORAGE: storage(f"{images}/rec", http_port=8081, bind="0.0.0.0", segment_s=2,
                         quota={"default_bytes": 1000000000, "users": {"alice": 500000000}},
                         secret=SECRET, source_timeout=10),
    }  # fmt: skip


def json_values(*more: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Any JSON value, its objects keyed mostly as the functions' configurations are
    (and by ``more``'s values among the leaves)."""
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(2**40), 2**40)
        | st.floats(allow_nan=True)
        | st.text(max_size=20)
        | st.sampled_from(["10.0.0.1", "fd00::1", "rtp", "srt", "started"])
    )
    for m in more:
        leaves |= m
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(["id", "port", "host", "flows", "routes", "contents", "next_hops",
                             "protocol", "event", "state", "volume", "recordings", "quota",
                             "users", "renditions", "viewers", "height", "video_kbps", "hls",
                             "join", "secret", "ports", "first", "last", "sources", "x"]),
            inner, max_size=6),
        max_leaves=20,
    )  # fmt: skip
