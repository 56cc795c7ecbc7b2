"""`netfate demo streaming --check` (services/streaming/topologies/streaming.yaml)
exits 0: a provider's ffmpeg source reaches a viewer through the acquirer and the
edge streamer the service placed, by the paper's rule (services/streaming/demo.py).
"""

from __future__ import annotations

import subprocess
import sys

from netfate.host import netns


def test_demo_streaming_check_exits_zero() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "netfate", "demo", "streaming", "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "demo check passed" in out
    assert "acquirer at pe1 10.81.0." in out
    assert "alice at pe2: case 4" in out and "bob at pe3: case 3" in out
    assert "alice's ffprobe decodes" in out
    assert "the branch was pruned" in out and "the acquirer is gone" in out
    prefix = out.split("as run ", 1)[1].split()[0]
    assert netns.list_with_prefix(prefix + "-") == []
