"""bench/migration_channel.py: the pure part only (an agent's command line switched
between the two channels, its other options kept). No timed assertions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    key = f"netfate_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


mc = _load("migration_channel")

TESTBED = [
    "/usr/bin/python3", "-m", "netfate", "agent", "--node", "cpe1", "--netns", "nf1-cpe1",
    "--migration-netns", "nf1-cpe1", "--listen", "10.255.0.1:0", "--prefix", "nf1",
]  # fmt: skip


def test_loopback_drops_the_namespace_and_listens_on_root_loopback() -> None:
    argv = mc.channel_argv(TESTBED, "loopback", "nf1-cpe1", "10.255.0.1")
    assert "--migration-netns" not in argv
    assert argv[-2:] == ["--listen", "127.0.0.1:0"]
    assert argv.count("--listen") == 1
    # The node's own namespace (--netns) and every other option are kept.
    assert argv[:8] == TESTBED[:8] and argv[argv.index("--prefix") + 1] == "nf1"


def test_links_restores_the_testbeds_channel() -> None:
    back = mc.channel_argv(
        mc.channel_argv(TESTBED, "loopback", "nf1-cpe1", "10.255.0.1"),
        "links",
        "nf1-cpe1",
        "10.255.0.1",
    )
    assert sorted(back) == sorted(TESTBED)
    assert back[-4:] == ["--migration-netns", "nf1-cpe1", "--listen", "10.255.0.1:0"]
