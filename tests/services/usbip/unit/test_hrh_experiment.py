"""The HRH experiment's pure parts: topology, statistics, the table (issue 6 item 7)."""

from __future__ import annotations

from netfate.model.topology import Topology
from netfate.services.usbip.experiment import (
    SETTINGS,
    RttStats,
    SettingResult,
    markdown,
    topology_yaml,
)


def test_topology_is_a_star_with_one_shaped_link_per_remote_setting() -> None:
    topo = Topology.from_yaml(topology_yaml(SETTINGS))
    assert topo.nodes["hrh"].kind == "hrh"
    links = {lk.b: lk for lk in topo.links}
    assert set(links) == {"isplan", "isp30", "isp500"}
    assert all(lk.a == "hrh" for lk in topo.links)
    assert links["isplan"].rate_bps == 100_000_000 and links["isplan"].delay_us == 0
    assert links["isp30"].rate_bps == 50_000_000 and links["isp30"].delay_us == 10_000
    assert links["isp500"].delay_us == 20_000 and links["isp500"].loss == 0.001


def test_rtt_statistics() -> None:
    st = RttStats.of([30.0, 10.0, 20.0, 40.0])
    assert (st.min, st.max, st.mean, st.p50) == (10.0, 40.0, 25.0, 30.0)
    assert st.std == 12.91
    assert sum(st.histogram["counts"]) == 4
    assert len(st.histogram["edges_ms"]) == len(st.histogram["counts"]) + 1
    assert st.samples == [30.0, 10.0, 20.0, 40.0]  # in the order measured (Fig. 8)


def test_table_puts_the_papers_figures_next_to_ours() -> None:
    from dataclasses import asdict

    results = [
        SettingResult(
            name=s.name,
            link=s.link_text(),
            bytes=1 << 20,
            write_MBps=1.0,
            read_MBps=2.0,
            verified=True,
            link_payload_MBps=s.payload_MBps(),
            rtt_ms=RttStats.of([1.0, 2.0]),
            paper=asdict(s.paper) if s.paper else None,
        )
        for s in SETTINGS
    ]
    md = markdown(results)
    assert "| local | Local | loopback (no network) | 1.00 (7.34) | 2.00 (17.5) | - | yes |" in md
    assert "1.50 (74.1)" in md  # Madrid-Alcala's mean RTT
    assert "Madrid-Galicia" in md and "0.4" in md
    assert md.count("\n| 500km |") == 2  # one row in each table
