"""What every step of a testbed run shares: its names, its progress reports, its
errors, and how Ctrl-C or SIGTERM interrupts it (the builder and the control
plane, control.py, both use them; neither imports the other for them).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

from netfate.model.topology import HostSpec, NodeSpec

Progress = Callable[[str], None]

# With sdn=True the run's controller listens on this port inside the switch namespace,
# which belongs to the run alone, so the port is always free there.
SDN_PORT = 6653


class TestbedError(Exception):
    __test__ = False  # not a pytest test class, despite the name


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM arrived while building; the build is rolled back."""


# Signals received during a build. The handler only records them; the build checks
# at every step (check_interrupted). Raising from the handler itself could land inside
# pyroute2's internal event loop, which swallows the exception and then waits forever
# for a reply.
_signalled: list[int] = []


def check_interrupted() -> None:
    """Raise Interrupted if Ctrl-C or SIGTERM arrived since the build began."""
    if _signalled:
        raise Interrupted(f"signal {_signalled[0]}")


@dataclass(frozen=True)
class Names:
    """Every name a run uses, derived from its prefix (all within IFNAMSIZ)."""

    prefix: str

    @property
    def sw(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def door(self) -> str:
        """The front door's namespace (behind the first node, testbed/builder.py)."""
        return f"{self.prefix}-door"

    def ns(self, node_or_host: str) -> str:
        return f"{self.prefix}-{node_or_host}"

    def bridge(self, node: NodeSpec) -> str:
        return f"{self.prefix}b{node.index}"

    def node_port(self, node: NodeSpec) -> str:
        return f"{self.prefix}n{node.index}"

    def host_port(self, host: HostSpec) -> str:
        return f"{self.prefix}h{host.index}"

    def link_port(self, index: int, side: str) -> str:
        return f"{self.prefix}l{index}{side}"

    def emu_port(self, index: int, side: str) -> str:
        return f"{self.prefix}l{index}{'x' if side == 'a' else 'y'}"

    @staticmethod
    def node_mac(node: NodeSpec) -> str:
        i = node.index + 1
        return f"02:6e:01:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def quiet(_: str) -> None:
    pass


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While building, Ctrl-C and SIGTERM interrupt the build at its next step, so
    it rolls back (see check_interrupted)."""
    if not _main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        _signalled.append(signum)

    _signalled.clear()
    old_term = signal.signal(signal.SIGTERM, handler)
    old_int = signal.signal(signal.SIGINT, handler)
    try:
        yield
        check_interrupted()  # a signal during the last step
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        _signalled.clear()


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """A second Ctrl-C must not cut a rollback or teardown short."""
    if not _main_thread():
        yield
        return
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
