"""The functions this project ships, and the schema of each one's configuration.

A function is named ``package.module:Class`` (or a built-in's short name). Naming
one is enough for ``python -m netfate.vnf`` to import its module, so nothing is
imported by a name from outside this table: the agent checks every instance's
function here before it spawns anything, and the runtime (the zygote too) checks
again before its import. The orchestrator accepts a narrower set, the functions of
its registered services (``netfate.contract.registered_functions``); this table is
the floor below, readable by an agent that knows no service.

Each function's configuration has a schema (a pydantic model) declared next to the
function, named here as ``module:Model`` and imported only when it is checked.
Whoever checks passes the node's image directory in the validation context
(``{"image_dir": PATH}``): what a function opens or replaces as root by a path in
its configuration (a USB/IP storage device's image, an importer's pty link, the
streaming storage's recording volume, an edge streamer's work directory) lies
below it (configs.DevicePath).
"""

from __future__ import annotations

import errno
import importlib
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

BUILTIN: dict[str, str] = {
    "counter": "netfate.vnf.counter:Counter",
    "forwarder": "netfate.vnf.forwarder:Forwarder",
}
"""Short names of the platform's own functions."""

_HOST = "netfate.vnf.usbip_host.config"
_CLIENT = "netfate.vnf.usbip_client.config"
_STREAMING = "netfate.vnf.streaming.schemas"
_VP = "netfate.vnf.virtual_presence.config"
SCHEMAS: dict[str, str | None] = {
    "netfate.vnf.counter:Counter": "netfate.vnf.configs:CounterConfig",
    "netfate.vnf.forwarder:Forwarder": "netfate.vnf.configs:ForwarderConfig",
    "netfate.vnf.usbip_host.function:UsbipHost": f"{_HOST}:HostConfig",
    "netfate.vnf.usbip_host.tls:TlsUsbipHost": f"{_HOST}:TlsHostConfig",
    "netfate.vnf.usbip_client.function:SerialImporter": f"{_CLIENT}:ImporterConfig",
    "netfate.vnf.usbip_client.tls:TlsSerialImporter": f"{_CLIENT}:TlsImporterConfig",
    "netfate.vnf.vo.function:VoHost": "netfate.vnf.vo.config:VoHostConfig",
    "netfate.vnf.streaming.acquirer:Acquirer": f"{_STREAMING}:AcquirerConfig",
    "netfate.vnf.streaming.relay:Relay": f"{_STREAMING}:RelayConfig",
    "netfate.vnf.streaming.edge:EdgeStreamer": f"{_STREAMING}:EdgeConfig",
    "netfate.vnf.streaming.storage:Storage": f"{_STREAMING}:StorageConfig",
    "netfate.vnf.firewall:Firewall": "netfate.vnf.firewall.config:FirewallConfig",
    "netfate.vnf.portal:Portal": "netfate.vnf.portal.config:PortalConfig",
    "netfate.vnf.vhg:Vhg": "netfate.vnf.vhg.config:VhgConfig",
    "netfate.vnf.virtual_presence.function:VirtualPresence": f"{_VP}:VirtualPresenceConfig",
}
"""Every function the project ships -> its configuration's schema (None: untyped)."""

ONE_ROUND: frozenset[str] = frozenset({"netfate.vnf.firewall:Firewall"})
"""Functions whose state a migration moves whole at the freeze, with no snapshot
before it (agent/migration_target.py). Their state is small: the firewall's is its
rule set (applied already by the standby's start, from the configuration the move
carries), its user's connections (inserted with ctnetlink, well under a millisecond
for tens of them), counters and neighbours. A snapshot would cost its round trip
and the source's export, on the handover's path, to save that millisecond from the
downtime."""

DEFAULT_IMAGE_DIR = Path("/var/lib/netfate/images")
"""Where storage images live unless the agent or orchestrator is told (--image-dir)."""


class UnknownFunction(ValueError):
    """A function name this table does not hold (nothing was imported for it)."""


def resolve(name: str, allowed: Collection[str] | None = None) -> str:
    """The ``module:Class`` a function name stands for, if it is in ``allowed`` (by
    default every function shipped); else UnknownFunction. Imports nothing."""
    ref = BUILTIN.get(name, name)
    if ref not in (SCHEMAS if allowed is None else allowed):
        raise UnknownFunction(f"unknown function {name[:200]!r}: not a registered function")
    return ref


def schema(name: str) -> type[BaseModel] | None:
    """The configuration schema of a shipped function (imported now), or None."""
    target = SCHEMAS[resolve(name)]
    if target is None:
        return None
    module, _, attr = target.partition(":")
    model: type[BaseModel] = getattr(importlib.import_module(module), attr)
    return model


def check_config(name: str, config: Mapping[str, Any], image_dir: Path) -> dict[str, Any]:
    """``config`` checked against the function's schema (pydantic's ValidationError,
    naming the field, when it fails); returned as given (defaults are the function's
    own to apply, so what is stored is what was asked for)."""
    model = schema(name)
    if model is not None:
        model.model_validate(dict(config), context={"image_dir": image_dir})
    return dict(config)


def below(path: str, directory: Path) -> bool:
    """Whether the absolute ``path`` lies below ``directory`` once symlinks and ``..``
    are resolved (a path that does not exist yet is resolved as far as it exists)."""
    if not os.path.isabs(path) or "\0" in path:
        return False
    # realpath leaves a symlink loop unresolved and lets a later ".." take it away
    # ("loop/../images/x" came out below): the kernel opens no such path (ELOOP), so a
    # path that meets a loop anywhere lies below nothing.
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        try:
            os.stat(os.path.realpath("/".join(parts[:i]) or "/"))
        except OSError as e:
            if e.errno == errno.ELOOP:
                return False
    root = os.path.realpath(directory)
    real = os.path.realpath(path)
    return real != root and os.path.commonpath([root, real]) == root
