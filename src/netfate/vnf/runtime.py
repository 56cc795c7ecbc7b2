"""The process an instance is: one function, one control socket.

The agent launches `python -m netfate.vnf FUNCTION --instance ID --control PATH
--config-file PATH [--standby]` (or `--config JSON` for a configuration without
secrets) inside the instance's namespace and then speaks to it
over the control socket, a UNIX stream socket in the agent's state directory
(files do not belong to network namespaces, so the agent reaches it from anywhere).

Control protocol: one JSON object per line each way.

    {"op": "status"}               -> {"ok": true, "active": bool, "stats": {...}}
                                      (stats["events"]: what the function emitted)
    {"op": "export"}               -> {"ok": true, "state": {...}}          (keeps serving)
    {"op": "freeze"}               -> {"ok": true, "state": {...}, "frozen_at": t}
    {"op": "import", "state": {}}  -> {"ok": true}
    {"op": "activate"}             -> {"ok": true, "active_at": t}
    {"op": "configure", "config": {}} -> {"ok": true, "applied": bool}   (False: the
                                      function cannot change it while running; the
                                      agent then restarts it, carrying its state)
    {"op": "stop"}                 -> {"ok": true}, then the process exits
    {"op": "stop", "hand_over": true}  the same, after fn.hand_over(state) when the
                                      last op but status was an export: the agent
                                      restarts the instance and imports that state
    {"op": "NAME.…", ...}          -> fn.control(req): a function's own ops (e.g. a VO
                                      host's "vo.push"), None when it has no such op
    anything else                  -> {"ok": false, "error": "..."}

`freeze` stops serving and returns the final state in one step, so that the
downtime of a migration is one round trip plus the target's `import`+`activate`.

`--pool` starts a warm standby instead (agent/standbys.py): the function imported,
no configuration, waiting for one `take` that makes it an instance (`wait_taken`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfate.vnf import registry
from netfate.vnf.outbox import Outbox

# Built-in functions by name; a descriptor may also name a shipped "package.module:Class".
FUNCTIONS = registry.BUILTIN

MAX_CONTROL_LINE = 64 << 20  # state blobs can be large (conntrack tables)


@dataclass
class Context:
    instance: str
    config: dict[str, Any] = field(default_factory=dict)
    standby: bool = False


class Function:
    """Base class of a network function. Subclasses serve traffic while `active`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.active = not ctx.standby
        self.outbox = Outbox()
        """What ``emit`` recorded: ``status`` shows it, the orchestrator reads it."""

    def emit(self, event: Any) -> None:
        """Tell the orchestrator something happened (``event``: a past-tense dataclass).
        The service owning this function's descriptor gets it (netfate.vnf.outbox)."""
        self.outbox.emit(event)

    async def start(self) -> None:
        """Open sockets, load rules. Called once; must not block."""

    async def stop(self) -> None:
        """Release what start() took."""

    def export_state(self) -> dict[str, Any]:
        return {}

    def import_state(self, state: dict[str, Any]) -> None:
        """Replace the current state with `state` (from export_state of a peer)."""

    def freeze(self) -> None:
        self.active = False

    def hand_over(self, state: dict[str, Any]) -> None:
        """Called before stop() when this process stops right after exporting `state`
        (the agent restarts the instance with a new configuration and imports it into
        the new process): what `state` holds lives on there; stop() must not end it."""

    def activate(self) -> None:
        self.active = True

    def stats(self) -> dict[str, Any]:
        return {}

    def configure(self, config: dict[str, Any]) -> bool:
        """Apply a new configuration while running; False if this function cannot."""
        return False

    async def control(self, req: dict[str, Any]) -> dict[str, Any] | None:
        """An op the runtime does not know: the function's own answer, or None (then
        the op is unknown). Bad arguments raise ValueError, TypeError or KeyError."""
        return None


def load_function(name: str) -> type[Function]:
    """The function class ``name`` stands for; a name the registry does not hold is
    refused before anything is imported for it."""
    try:
        target = registry.resolve(name)
    except registry.UnknownFunction as e:
        raise SystemExit(f"{e}; built-in: {', '.join(sorted(FUNCTIONS))}") from None
    module, _, cls = target.partition(":")
    obj = getattr(importlib.import_module(module), cls)
    if not (isinstance(obj, type) and issubclass(obj, Function)):
        raise SystemExit(f"{target} is not a netfate Function")
    return obj


class Runtime:
    def __init__(self, fn: Function, control: str) -> None:
        self.fn = fn
        self.control = control
        self.done = asyncio.Event()
        self.clients: set[asyncio.Task[None]] = set()
        # The state of an export that no op but status has followed yet: a stop that
        # says so hands it on (the agent's restart: export, stop, start, import).
        self.exported: dict[str, Any] | None = None

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        fn = self.fn
        if op == "status":
            stats = fn.stats()
            if fn.outbox.last_seq:
                stats.setdefault("events", fn.outbox.snapshot())
            return {"ok": True, "active": fn.active, "stats": stats, "pid": os.getpid()}
        exported, self.exported = self.exported, None
        if op == "export":
            self.exported = fn.export_state()
            return {"ok": True, "state": self.exported}
        if op == "freeze":
            fn.freeze()
            return {"ok": True, "state": fn.export_state(), "frozen_at": time.time()}
        if op == "import":
            state = req.get("state")
            if not isinstance(state, dict):
                return {"ok": False, "error": "import needs an object 'state'"}
            fn.import_state(state)
            return {"ok": True}
        if op == "configure":
            config = req.get("config")
            if not isinstance(config, dict):
                return {"ok": False, "error": "configure needs an object 'config'"}
            applied = fn.configure(config)
            if applied:
                fn.ctx.config = config
            return {"ok": True, "applied": applied}
        if op == "activate":
            fn.activate()
            return {"ok": True, "active_at": time.time()}
        if op == "stop":
            if exported is not None and req.get("hand_over") is True:
                fn.hand_over(exported)
            self.done.set()
            return {"ok": True}
        own = await fn.control(req)
        if own is not None:
            return own
        return {"ok": False, "error": f"unknown op {op!r}"}

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.clients.add(task)
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    resp = (
                        await self.handle(req)
                        if isinstance(req, dict)
                        else {"ok": False, "error": "expected a JSON object"}
                    )
                except (ValueError, TypeError, KeyError) as e:
                    resp = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                writer.write(json.dumps(resp).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down: the reply to "stop" was already written
        finally:
            writer.close()
            if task is not None:
                self.clients.discard(task)

    async def run(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control)
        server = await asyncio.start_unix_server(self.client, self.control, limit=MAX_CONTROL_LINE)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.done.set)
        await self.fn.start()
        # Ready: the agent waits for this file before it calls the instance running.
        with open(self.control + ".ready", "w") as f:
            f.write(str(os.getpid()))
        await self.done.wait()
        server.close()
        for t in list(self.clients):
            t.cancel()
        await asyncio.gather(*self.clients, return_exceptions=True)
        await self.fn.stop()
        for path in (self.control, self.control + ".ready"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


@dataclass(frozen=True)
class Take:
    """What a warm standby is taken for (the `take` op): its instance from now on."""

    instance: str
    control: str
    config: dict[str, Any]
    standby: bool = False
    """A migration target's copy: it serves only once activated."""


async def wait_taken(control: str) -> Take:
    """A warm standby (`--pool`): the function is imported and the process sits in its
    namespace, idle, holding no configuration. It answers `status` and `stop`, and
    one `take`:

        {"op": "take", "instance": ID, "control": PATH, "config_file": PATH,
         "standby": bool}
                                       -> {"ok": true}, then it becomes that instance

    after which it serves PATH as any instance's control socket (and writes its
    `.ready`, which is what the agent waits for). A `stop` ends it: SystemExit(0)."""
    taken: asyncio.Future[Take | None] = asyncio.get_running_loop().create_future()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            req = json.loads(line) if line else {}
            op = req.get("op") if isinstance(req, dict) else None
            resp: dict[str, Any]
            if op == "status":
                resp = {"ok": True, "active": False, "standby": True, "pid": os.getpid()}
            elif op == "stop":
                resp = {"ok": True}
                if not taken.done():
                    taken.set_result(None)
            elif op == "take" and not taken.done():
                config = read_config(str(req["config_file"]), None)
                t = Take(str(req["instance"]), str(req["control"]), config,
                         req.get("standby") is True)  # fmt: skip
                _set_name(t.instance)  # before the answer: the agent checks it at once
                taken.set_result(t)
                resp = {"ok": True}
            else:
                resp = {"ok": False, "error": f"a warm standby does not take {op!r}"}
        except (ValueError, TypeError, KeyError, SystemExit) as e:
            resp = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        with contextlib.suppress(ConnectionError):
            writer.write(json.dumps(resp).encode() + b"\n")
            await writer.drain()
        writer.close()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(control)
    server = await asyncio.start_unix_server(client, control)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _end, taken)
    with open(control + ".ready", "w") as f:
        f.write(str(os.getpid()))
    try:
        result = await taken
    finally:
        server.close()
        for path in (control, control + ".ready"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    if result is None:
        raise SystemExit(0)
    return result


def _end(taken: asyncio.Future[Take | None]) -> None:
    if not taken.done():
        taken.set_result(None)


def _set_name(instance: str) -> None:
    """Take the name a forked instance has (zygote.process_name): an agent that
    restarts recognises its process by it in /proc."""
    import ctypes

    from netfate.vnf.names import process_name

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, process_name(instance).encode(), 0, 0, 0)  # PR_SET_NAME


def read_config(path: str | None, text: str | None) -> dict[str, Any]:
    """The configuration from the file at `path` (how the agent hands it: a file only
    its owner reads, since an argument list is readable by every user of the machine
    in /proc/PID/cmdline), else from the JSON `text`."""
    try:
        config = json.loads(Path(path).read_text() if path else (text or "{}"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"cannot read the configuration: {e}") from None
    if not isinstance(config, dict):
        raise SystemExit("the configuration must be a JSON object")
    return config


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m netfate.vnf")
    p.add_argument("function")
    p.add_argument("--instance", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--config", default="{}")
    p.add_argument("--config-file", default=None)  # one with secrets: see read_config
    p.add_argument("--standby", action="store_true")
    p.add_argument("--pool", action="store_true", help="a warm standby: wait for `take`")
    a = p.parse_args(argv)
    cls = load_function(a.function)
    try:
        if a.pool:
            asyncio.run(_pooled(cls, a.control))
            return
        config = read_config(a.config_file, a.config)
        fn = cls(Context(instance=a.instance, config=config, standby=a.standby))
        asyncio.run(Runtime(fn, a.control).run())
    except KeyboardInterrupt:
        sys.exit(0)


async def _pooled(cls: type[Function], control: str) -> None:
    """A warm standby until taken, then the instance it was taken for (one event loop:
    no second interpreter start, no second import)."""
    t = await wait_taken(control)
    ctx = Context(instance=t.instance, config=t.config, standby=t.standby)
    await Runtime(cls(ctx), t.control).run()
