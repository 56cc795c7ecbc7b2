"""`netfate demo [SCENARIO] [--check]`: wiring, on the top floor.

The platform's scenarios (platform, sdn) and the demos of the services the
`netfate` command hands in (their contracts' ``demos``, aliases included).
"""

# No `from __future__ import annotations`: typer reads the command's annotations,
# and the demo's help text is a local of command() (the services' demos).

import importlib
import signal
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from netfate.contract import Service

PLATFORM = {"platform": "netfate.demo.platform", "sdn": "netfate.demo.sdn"}


@dataclass(frozen=True)
class Scenarios:
    modules: dict[str, str]
    """Name -> module with TOPOLOGY, check(tb, say) and show(tb, say)."""
    aliases: dict[str, str]
    """Earlier name -> name."""

    @classmethod
    def of(cls, services: Sequence[Service]) -> "Scenarios":
        modules, aliases = dict(PLATFORM), dict[str, str]()
        for svc in services:
            for d in svc.demos:
                modules[d.name] = d.module
                aliases |= {a: d.name for a in d.aliases}
        return cls(modules, aliases)

    def module(self, name: str) -> ModuleType:
        name = self.aliases.get(name, name)
        if name not in self.modules:
            known = ", ".join(self.modules)
            raise typer.BadParameter(f"unknown scenario {name!r}; known: {known}")
        return importlib.import_module(self.modules[name])


def command(services: Sequence[Service]) -> Callable[..., None]:
    """The `netfate demo` command for these services' demos."""
    known = Scenarios.of(services)
    listed = ", ".join(known.modules) + ", or all (with --check)"
    listed += "".join(f"; {a} = {n}" for a, n in known.aliases.items())

    def demo(
        scenario: Annotated[str, typer.Argument(help=f"Which demo: {listed}")] = "platform",
        check: Annotated[
            bool, typer.Option("--check", help="Run headless, verify every step, exit 0 or 1")
        ] = False,
        port: Annotated[int, typer.Option(help="Dashboard/API port (0: any free port)")] = 8080,
    ) -> None:
        """Bring up the demo edge network with orchestrator and agents; Ctrl-C ends it."""
        # `netfate demo --check` verifies the platform and then its SDN controller;
        # `netfate demo all --check` every scenario in turn (what CI runs).
        if scenario == "all":
            if not check:
                raise typer.BadParameter("`all` runs the scenarios one after another: add --check")
            names = list(known.modules)
        elif check and scenario == "platform":
            names = ["platform", "sdn"]
        else:
            names = [known.aliases.get(scenario, scenario)]
        code = 0
        for name in names:
            code = _run(name, known.module(name), check, port)
            if code:
                break
        sys.exit(code)

    return demo


def _run(scenario: str, mod: ModuleType, check: bool, port: int) -> int:
    from netfate.demo.platform import DemoFailed
    from netfate.testbed.builder import Testbed
    from netfate.testbed.state import new_prefix

    topo = Path(mod.TOPOLOGY)
    if not topo.is_file():
        raise typer.BadParameter(f"topology {topo} not found (run from a source checkout)")

    def say(msg: str) -> None:
        typer.echo(f"[{time.strftime('%H:%M:%S')}] {msg}")

    # Ctrl-C and SIGTERM both end the demo through the teardown. SIGINT is set
    # explicitly: a process started in the background of a script inherits it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    prefix = new_prefix()
    sdn = bool(getattr(mod, "SDN", False))
    say(
        f"[{scenario}] bringing up {topo.name} as run {prefix}"
        f"{' with the SDN controller' if sdn else ''} ..."
    )
    t0 = time.monotonic()
    try:
        tb = Testbed.up(
            topo,
            prefix=prefix,
            sdn=sdn,
            api_port=0 if check else port,
            progress=lambda s: say(f"  {s}"),
        )
    except KeyboardInterrupt:
        say("interrupted; everything built so far was removed")
        return 130
    except Exception as e:
        say(f"FAILED to bring up the testbed: {e}")
        return 1
    say(
        f"up in {time.monotonic() - t0:.1f} s (prefix {tb.prefix}, delay emulation: "
        f"{tb.emulator}); dashboard {tb.api_url}/"
    )
    if (op := tb.operator()) is not None:
        say(f"operator: {op[0]}, password {op[1]}")
    if tb.door_url:
        say(f"users' pages, from a host of the network: {tb.door_url}/ (the front door)")
    code = 0
    try:
        if check:
            mod.check(tb, lambda m: say(f"ok  {m}"))
            say(f"[{scenario}] demo check passed")
        else:
            mod.show(tb, say)
            if tb.api_url:
                threading.Thread(
                    target=webbrowser.open, args=(tb.api_url + "/",), daemon=True
                ).start()
            say("running; Ctrl-C to stop and remove everything")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        say("stopping")
        code = 130 if check else 0  # an interrupted check did not pass
    except DemoFailed as e:
        say(f"FAILED: {e}")
        code = 1
    except Exception as e:  # any other error is a failed check too, with its reason
        say(f"FAILED: {type(e).__name__}: {e}")
        code = 1
    finally:
        problems = tb.down(progress=lambda s: say(f"  {s}"))
        if problems:
            say("teardown left problems: " + "; ".join(problems))
            code = code or 1
        else:
            say("everything removed")
    return code
