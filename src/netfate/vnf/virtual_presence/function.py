"""The Virtual Presence as a netfate function (a process in its instance's namespace).

Config: a `KernelConfig` as a dict (see kernel.py); the orchestrator's sharing
workflow fills it. On start the function waits for the agent to wire eth0
(the agent starts the interpreter before it builds the interfaces), then
installs the fast path. `import` with {"att": ...} replaces the ATT (PN2
devices that came or left); so does a new configuration that differs from the
running one in its ATT only (`configure`: the agent applies it in place, no
restart). Stats are the nft counters, the ALG's counters and, in VP1, the ports
its proxy serves (`ports`: configured, learned from the device, proxied).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from netfate.host import links
from netfate.vnf.runtime import Context, Function

from . import kernel
from .alg import DiscoveryAlg
from .att import ATT
from .events import PortsLearned
from .icmp import IcmpErrorTap
from .translator import Role, Translator

log = logging.getLogger("netfate.vnf.vp")
WIRING_TIMEOUT_S = 30.0
ANNOUNCE_AGAIN_S = 1.5
IFF_UP = 0x1


def _has_address(ifname: str, address: str) -> bool:
    """The agent has wired `ifname`: it has `address` and is up (routes over it can
    be added only then)."""
    try:
        with links.rtnl(None) as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if not idx:
                return False
            if not int(ipr.link("get", index=idx[0])[0]["flags"]) & IFF_UP:
                return False
            for msg in ipr.get_addr(index=idx[0], family=2):
                if msg.get_attr("IFA_ADDRESS") == address:
                    return True
    except OSError:
        return False
    return False


class VirtualPresence(Function):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = kernel.KernelConfig.from_dict(ctx.config)
        self.installed_at: float | None = None
        self.alg: DiscoveryAlg | None = None
        self.icmp: IcmpErrorTap | None = None
        self._again: asyncio.Task[None] | None = None
        self._learned: list[int] = []
        self._restore: asyncio.Task[None] | None = None
        """Ports VP1's ALG had learned before a restart (import_state)."""

    async def start(self) -> None:
        deadline = time.monotonic() + WIRING_TIMEOUT_S
        while not await asyncio.to_thread(
            _has_address, self.cfg.underlay_dev, self.cfg.local_underlay
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.cfg.vi} never got {self.cfg.local_underlay}")
            await asyncio.sleep(0.01)
        await asyncio.to_thread(kernel.install, None, self.cfg)
        if self.cfg.proxy:
            self.alg = DiscoveryAlg(
                Translator(Role.IMPORTER, self.cfg.att),
                self.cfg,
                self._learned,
                on_learned=self._tell_learned,
            )
            await self.alg.start()
        if self.cfg.role is Role.EXPORTER and self.cfg.icmp_tap:
            self.icmp = IcmpErrorTap(
                Translator(Role.EXPORTER, self.cfg.att), self.cfg.vi, self.cfg.ei, self.cfg.mark
            )
            self.icmp.start()
        self.installed_at = time.time()
        self._again = asyncio.create_task(self._announce_again())

    def _tell_learned(self) -> None:
        """The owners' pages show the ports VP1 proxies: tell the sharing service."""
        if self.alg is not None:
            self.emit(PortsLearned(sorted(self.alg.learned), self.alg.proxied, time.time()))

    async def _announce_again(self) -> None:
        """Once more after the hosts' ARP lock time (1 s): a host that updated its
        entry for an alias just before ignores a new MAC for it until then."""
        await asyncio.sleep(ANNOUNCE_AGAIN_S)
        await asyncio.to_thread(kernel.announce_aliases, None, self.cfg)

    async def stop(self) -> None:
        if self._again is not None:
            self._again.cancel()
        if self.alg is not None:
            await self.alg.stop()
        if self.icmp is not None:
            await asyncio.to_thread(self.icmp.stop)
        # The namespace goes with the instance; removing first keeps a restart clean.
        await asyncio.to_thread(kernel.remove, None, self.cfg)

    def export_state(self) -> dict[str, Any]:
        # Not the ATT: it is configuration, and the agent's restart with a new
        # configuration (export, stop, start, import) must not bring the old one
        # back. The ports VP1 learned are the device's: a restart keeps them.
        if self.alg is not None and self.alg.learned:
            return {"learned_ports": sorted(self.alg.learned)}
        return {}

    def import_state(self, state: dict[str, Any]) -> None:
        learned = [int(p) for p in state.get("learned_ports", []) if 0 < int(p) < 65536]
        if learned:
            if self.alg is not None:
                self._restore = asyncio.get_running_loop().create_task(self.alg.open_ports(learned))
            else:
                self._learned = learned
        if "att" not in state:
            return
        att = ATT.from_dict(state["att"])
        old = self.cfg
        new = kernel.KernelConfig.from_dict({**old.to_dict(), "att": att.to_dict()})
        gone = set(old.aliases) - set(new.aliases)

        def apply() -> None:
            if gone:
                with links.rtnl(None) as ipr:
                    idx = links.link_index(ipr, None, old.vi)
                    for a in gone:
                        ipr.addr("del", index=idx, address=str(a), prefixlen=old.vi_prefixlen)
            if self.installed_at is not None:
                kernel.install(None, new, self.alg.proxied if self.alg is not None else ())

        # pyroute2 cannot start in the control server's (running) event loop thread.
        with ThreadPoolExecutor(max_workers=1) as ex:
            ex.submit(apply).result()
        self.cfg = new
        # The Python paths translate with the ATT too (VP1's ALG, VP2's ICMP tap).
        if self.alg is not None:
            self.alg.update(att)
        if self.icmp is not None:
            self.icmp.tr.update(att)

    def configure(self, config: dict[str, Any]) -> bool:
        """A new ATT is applied in place (aliases added or removed, rules replaced);
        any other change needs a new process."""
        if {**config, "att": None} != {**self.ctx.config, "att": None}:
            return False
        try:
            att = ATT.from_dict(config["att"])
        except (KeyError, TypeError, ValueError):
            return False
        if (att.pn1, att.pn2, att.shared_device, att.import_alias) != (
            self.cfg.att.pn1, self.cfg.att.pn2, self.cfg.att.shared_device,
            self.cfg.att.import_alias,
        ):  # fmt: skip
            return False  # another share's ATT, not a change of PN2's devices
        self.import_state({"att": att.to_dict()})
        return True

    def stats(self) -> dict[str, Any]:
        return {
            "role": self.cfg.role.value,
            "share": self.cfg.share,
            "aliases": [str(a) for a in self.cfg.aliases],
            "counters": kernel.counters(None, self.cfg),
            "installed_at": self.installed_at,
            "alg": self.alg.stats() if self.alg is not None else None,
            # VP1: the TCP ports the ALG proxies: `configured` (the share's http_ports),
            # `learned` (the device announced them), `proxied` (listening now).
            "ports": self.alg.ports() if self.alg is not None else None,
            "icmp_errors": dict(self.icmp.counters) if self.icmp is not None else None,
        }
