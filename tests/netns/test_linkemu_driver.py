"""The userspace link emulator really delays and drops frames between namespaces."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.host import links, netns


@pytest.fixture
def emulated_pairs(run_prefix: str, tmp_path: Path) -> Iterator[dict[str, object]]:
    """h1 <-> [emu: link 1, 20 ms] <-> h2 and h3 <-> [emu: link 2, 100% loss] <-> h4."""
    names = [f"{run_prefix}-{n}" for n in ("emu", "h1", "h2", "h3", "h4")]
    emu, h1, h2, h3, h4 = names
    proc: subprocess.Popen[bytes] | None = None
    try:
        for n in names:
            netns.ensure(n)
        for i, (left, right, net) in enumerate(((h1, h2, "10.91.1"), (h3, h4, "10.91.2")), 1):
            links.veth_pair("eth0", left, f"{run_prefix}{i}x", emu)
            links.veth_pair("eth0", right, f"{run_prefix}{i}y", emu)
            for host, addr in ((left, f"{net}.1/24"), (right, f"{net}.2/24")):
                links.add_address(host, "eth0", addr)
                links.tx_offload_off(host, "eth0")
                links.set_up(host, "eth0")
            links.set_up(emu, f"{run_prefix}{i}x")
            links.set_up(emu, f"{run_prefix}{i}y")
        config = {
            "seed": 7,
            "ready_file": str(tmp_path / "ready"),
            "stats_file": str(tmp_path / "stats.json"),
            "links": [
                {"id": 1, "a": f"{run_prefix}1x", "b": f"{run_prefix}1y", "delay_us": 20000},
                {
                    "id": 2,
                    "a": f"{run_prefix}2x",
                    "b": f"{run_prefix}2y",
                    "delay_us": 0,
                    "loss": 1.0,
                },
            ],
        }
        cfg = tmp_path / "linkemu.json"
        cfg.write_text(json.dumps(config))
        proc = netns.popen_in(
            emu, [sys.executable, "-m", "netfate.testbed.linkemu_driver", str(cfg)]
        )
        deadline = time.monotonic() + 30
        while not (tmp_path / "ready").exists():
            assert proc.poll() is None, "driver exited before it was ready"
            assert time.monotonic() < deadline, "driver not ready after 30 s"
            time.sleep(0.05)
        yield {"h1": h1, "h3": h3, "proc": proc, "stats": tmp_path / "stats.json"}
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        for n in names:
            netns.remove(n)


def test_delay_is_applied_each_way(emulated_pairs: dict[str, object]) -> None:
    h1 = str(emulated_pairs["h1"])
    r = netns.run_in(h1, ["ping", "-c", "5", "-i", "0.2", "-W", "3", "10.91.1.2"], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)", r.stdout)
    assert m is not None, r.stdout
    assert float(m.group(1)) >= 40.0  # 20 ms one way, both directions


def test_loss_drops_frames_and_stats_are_written(emulated_pairs: dict[str, object]) -> None:
    h3 = str(emulated_pairs["h3"])
    r = netns.run_in(h3, ["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.91.2.2"], check=False)
    assert r.returncode != 0
    assert "100% packet loss" in r.stdout
    h1 = str(emulated_pairs["h1"])
    assert (
        netns.run_in(h1, ["ping", "-c", "1", "-W", "3", "10.91.1.2"], check=False).returncode == 0
    )
    proc = emulated_pairs["proc"]
    assert isinstance(proc, subprocess.Popen)
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    stats = json.loads(Path(str(emulated_pairs["stats"])).read_text())
    assert stats["2"]["a->b"]["lost"] >= 1
    assert stats["2"]["a->b"]["delivered"] == 0
    assert stats["1"]["a->b"]["delivered"] >= 1
    assert stats["lateness"]["frames"] >= stats["1"]["a->b"]["delivered"]
