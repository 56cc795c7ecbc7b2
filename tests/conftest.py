"""Test tiers (DESIGN.md, convention 9), read from the folder a test sits in:
tests/TIER/ for the platform's tests, tests/services/NAME/TIER/ for a service's.

- unit:    needs nothing (tests/unit, tests/services/NAME/unit; and fuzz alike).
- netns:   needs root and network namespaces (tests/netns, tests/services/NAME/netns).
- testbed: needs root, namespaces and Open vSwitch (tests/testbed, .../NAME/testbed).

A tier that cannot run is a failure, not a skip, when NETFATE_ALL_TIERS=1 (set by
`make test` and CI): a suite that silently skips its network tests proves nothing.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The shared fixtures (tests/shared_fixtures.py), for tests in any folder.
pytest_plugins = ["shared_fixtures"]

ALL_TIERS = os.environ.get("NETFATE_ALL_TIERS") == "1"


def _tier_of(path: Path) -> str:
    parts = path.parts
    for tier in ("netns", "testbed", "fuzz"):
        if tier in parts:
            return tier
    return "unit"


def _missing_for(tier: str) -> str | None:
    if tier in ("netns", "testbed") and os.geteuid() != 0:
        return f"the {tier} tier needs root"
    if tier in ("netns", "testbed") and shutil.which("ip") is None:
        return f"the {tier} tier needs iproute2"
    if tier == "testbed":
        for tool in ("ovs-vswitchd", "ovsdb-server", "ovs-vsctl"):
            if shutil.which(tool) is None:
                return f"the testbed tier needs Open vSwitch ({tool} not found)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = _tier_of(Path(str(item.fspath)))
        if tier in ("netns", "testbed"):
            item.add_marker(getattr(pytest.mark, tier))
        reason = _missing_for(tier)
        if reason is not None and not ALL_TIERS:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    reason = _missing_for(_tier_of(Path(str(item.fspath))))
    if reason is not None and ALL_TIERS:
        pytest.fail(f"NETFATE_ALL_TIERS=1 but {reason}", pytrace=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (tests/browser.py: Debian's, this machine's flags), one per
    test module that asks for it."""
    from browser import chromium  # on use: most tests need no browser

    with chromium() as b:
        yield b


@pytest.fixture
def run_prefix() -> str:
    """A short unique prefix for everything a test creates (names fit IFNAMSIZ)."""
    return "nft" + secrets.token_hex(2)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "state"
    d.mkdir()
    yield d


def _skip_reason(rep: pytest.CollectReport | pytest.TestReport) -> str:
    return rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In a full-tier run (CI), a skipped test is a failure: a missing package or
    tool must be installed by `make`, not quietly passed over. This covers skips in
    the test, in its fixtures and `skipif` marks (evaluated at set-up)."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if ALL_TIERS and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"skipped in a full-tier run (NETFATE_ALL_TIERS=1): {_skip_reason(rep)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """The same for a whole module skipped while it is collected (a module-level
    `pytest.skip(..., allow_module_level=True)` or `importorskip`): its tests never
    become items, so the hook above never sees them. Here they are a collection error."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if ALL_TIERS and rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = (
            f"{collector.nodeid} skipped at collection in a full-tier run "
            f"(NETFATE_ALL_TIERS=1): {_skip_reason(rep)}"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Last line of defence: whatever mechanism skipped something, a full-tier run
    that counted a skip fails."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if ALL_TIERS and skipped and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
