"""bench/streaming.py: the viewers' addresses of the capacity part (pure)."""

from __future__ import annotations

from collections import Counter

import pytest

from netfate.benchcli import load
from netfate.vnf.portal.http import MAX_PER_CLIENT

bs = load("streaming")


def test_hls_clients_never_exceed_the_servers_cap_per_address() -> None:
    for n in (1, 16, 17, 25, 100, 150):
        srcs = bs.hls_sources("10.79.0", n)
        per = Counter(srcs)
        assert len(srcs) == n and max(per.values()) <= MAX_PER_CLIENT
        assert len(per) == -(-n // MAX_PER_CLIENT)  # as few addresses as that takes
    assert set(bs.hls_sources("10.79.0", 100)) == {f"10.79.0.{40 + i}" for i in range(7)}


def test_addresses_for_the_largest_steps() -> None:
    assert bs.addresses_needed(150, 100) == 7  # HLS: 100 / 16
    assert bs.addresses_needed(300, 16) == 5  # RTP: 300 / 64
    assert bs.addresses_needed(1, 1) == 1
    with pytest.raises(SystemExit):
        bs.view_addr("10.79.0", bs.VIEW_LAST - bs.VIEW_FIRST + 1)
