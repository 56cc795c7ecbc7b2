"""Open vSwitch: a private daemon pair per run, and ovs-vsctl as argument lists.

Each run gets its own ovsdb-server + ovs-vswitchd with their own run/db/log
directory (never the system's), userspace datapath (`datapath_type=netdev`,
no kernel module needed). vswitchd runs inside a namespace so its fixed-name
`ovs-netdev` tap and the bridges' internal ports stay out of the root
namespace.

Every port gets `external_ids:netfate-peer=<kind>:<name>` (docs/CONTRACTS.md)
and the QoS type `linux-noop`: without it OVS replaces any qdisc on the
port with its default, undoing the testbed's and the agent's tc shaping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netfate.host import proc as _proc
from netfate.host.netns import CommandError, popen_in

__all__ = [
    "PEER_KINDS",
    "OvsDaemon",
    "OvsError",
    "PortInfo",
    "Vsctl",
    "VsctlBatch",
    "format_dpid",
]

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
PEER_KINDS = ("host", "node", "local", "instance")
FAIL_MODES = ("standalone", "secure")
_PEER_RE = re.compile(r"^(host|node|local|instance):[A-Za-z0-9_.:@-]{1,128}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9_./-]+$")
_TARGET_RE = re.compile(r"^(tcp|ssl|unix|ptcp|pssl|punix):[A-Za-z0-9_.:/\[\]-]+$")


class OvsError(RuntimeError):
    pass


def format_dpid(datapath_id: int | str) -> str:
    """16 hex digits, as OVS wants in other_config:datapath-id."""
    value = int(datapath_id, 16) if isinstance(datapath_id, str) else datapath_id
    if not 0 < value < 1 << 64:
        raise ValueError(f"datapath id out of range: {datapath_id!r}")
    return f"{value:016x}"


def _check(value: str, regex: re.Pattern[str], what: str) -> str:
    if not regex.match(value):
        raise ValueError(f"invalid {what} {value!r}")
    return value


@dataclass(frozen=True)
class PortInfo:
    name: str
    ofport: int | None
    """OpenFlow port number; None until vswitchd has attached the port (or if it failed)."""
    peer: str | None
    """external_ids:netfate-peer, e.g. `host:laptop1`."""


# --------------------------------------------------------------------- daemons


class OvsDaemon:
    """ovsdb-server + ovs-vswitchd of one run, everything under `rundir`."""

    def __init__(self, rundir: Path, netns: str | None = None, *, tso: bool = False) -> None:
        self.rundir = Path(rundir)
        self.netns = netns
        self.tso = tso
        """Userspace TSO: written to the database before vswitchd starts (it reads it once)."""
        self.dbfile = self.rundir / "conf.db"
        self.sock = self.rundir / "db.sock"
        self.procs: dict[str, _proc.ProcRef] = {}

    @property
    def db(self) -> str:
        """The OVSDB remote for ovs-vsctl and agents: `unix:<rundir>/db.sock`."""
        return f"unix:{self.sock}"

    def env(self) -> dict[str, str]:
        """Environment that points OVS tools at this run's directories only."""
        env = dict(os.environ)
        for var in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR", "OVS_PKGDATADIR"):
            env.pop(var, None)
        d = str(self.rundir)
        env.update(OVS_RUNDIR=d, OVS_DBDIR=d, OVS_LOGDIR=d, OVS_SYSCONFDIR=d)
        return env

    def _pidfile(self, daemon: str) -> Path:
        return self.rundir / f"{daemon}.pid"

    def _start_one(self, daemon: str, argv: list[str], timeout: float) -> None:
        log = self.rundir / f"{daemon}.log"
        full = [
            daemon,
            *argv,
            f"--pidfile={self._pidfile(daemon)}",
            "--detach",
            "--no-chdir",
            f"--log-file={log}",
            "-vconsole:off",
            "-vsyslog:off",
            "-vfile:info",
        ]
        # --detach: the command returns once the daemon is ready to serve.
        p = popen_in(
            self.netns,
            full,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            p.kill()
            p.communicate()
            raise OvsError(f"{daemon} did not start within {timeout}s") from e
        if p.returncode != 0:
            raise OvsError(f"{daemon} failed to start: {(err or out).strip()} (log: {log})")
        pid = int(self._pidfile(daemon).read_text().strip())
        self.procs[daemon] = _proc.ref(pid, role=daemon)

    def start(self, timeout: float = 20.0) -> None:
        for tool in ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"):
            if shutil.which(tool) is None:
                raise OvsError(f"{tool} not found: install Open vSwitch (openvswitch-switch)")
        self.rundir.mkdir(parents=True, exist_ok=True)
        if not self.dbfile.exists():
            subprocess.run(
                ["ovsdb-tool", "create", str(self.dbfile), str(SCHEMA)],
                check=True,
                capture_output=True,
                env=self.env(),
            )
        self._start_one(
            "ovsdb-server",
            [
                str(self.dbfile),
                f"--remote=punix:{self.sock}",
                "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                f"--unixctl={self.rundir / 'ovsdb-server.ctl'}",
            ],
            timeout,
        )
        tso = "true" if self.tso else "false"
        Vsctl(self.db).run(
            [["init"], ["set", "Open_vSwitch", ".", f"other_config:userspace-tso-enable={tso}"]],
            wait=False,
        )
        self._start_vswitchd(timeout)

    def _start_vswitchd(self, timeout: float) -> None:
        self._start_one(
            "ovs-vswitchd",
            [self.db, f"--unixctl={self.rundir / 'ovs-vswitchd.ctl'}"],
            timeout,
        )

    def restart_vswitchd(self, timeout: float = 20.0) -> None:
        """Stop and start ovs-vswitchd alone (a switch restart): the database keeps
        the bridges and their controller; the flow tables come back empty."""
        p = self.procs.pop("ovs-vswitchd", None)
        if p is not None:
            _proc.terminate(p, timeout=5.0)
        self._start_vswitchd(timeout)

    def pids(self) -> dict[str, _proc.ProcRef]:
        return dict(self.procs)

    def alive(self) -> dict[str, bool]:
        return {name: _proc.alive(p) for name, p in self.procs.items()}

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both daemons: vswitchd by SIGTERM, ovsdb-server through its control socket.

        `ovs-appctl exit` on a vswitchd with 100 bridges took over 5 s here
        (SIGKILL too); SIGTERM, which vswitchd handles, took 40 ms.
        """
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            p = self.procs.get(daemon)
            if p is None or not _proc.alive(p):
                continue
            ctl = self.rundir / f"{daemon}.ctl"
            if daemon == "ovsdb-server" and ctl.exists():
                subprocess.run(
                    ["ovs-appctl", "-t", str(ctl), "--timeout=5", "exit"],
                    capture_output=True,
                    env=self.env(),
                    check=False,
                )
                deadline = time.monotonic() + timeout
                while _proc.alive(p) and time.monotonic() < deadline:
                    time.sleep(0.02)
            _proc.terminate(p, timeout=timeout)
        self.procs.clear()


# --------------------------------------------------------------------- vsctl


class VsctlBatch:
    """Commands collected for one ovs-vsctl transaction (`Vsctl.batch()`)."""

    def __init__(self, vsctl: Vsctl) -> None:
        self._vsctl = vsctl
        self.commands: list[list[str]] = []
        self._noop_qos = False

    def __len__(self) -> int:
        return len(self.commands)

    def add(self, *command: str) -> VsctlBatch:
        self.commands.append(list(command))
        return self

    def add_bridge(
        self,
        name: str,
        *,
        datapath_id: int | str,
        node: str,
        fail_mode: str = "standalone",
        controller: str | None = None,
        protocols: str = "OpenFlow13",
        rstp: bool = False,
    ) -> VsctlBatch:
        _check(name, _NAME_RE, "bridge name")
        if fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be one of {FAIL_MODES} (got {fail_mode!r})")
        self.add("--may-exist", "add-br", name)
        self.add(
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
            f"other_config:datapath-id={format_dpid(datapath_id)}",
            f"external_ids:netfate-node={node}",
            f"fail_mode={fail_mode}",
            f"protocols={protocols}",
            f"rstp_enable={'true' if rstp else 'false'}",
        )
        self._controller(name, controller)
        return self

    def _controller(self, bridge: str, target: str | None) -> None:
        if target is None:
            self.add("del-controller", bridge)
        else:
            self.add("set-controller", bridge, _check(target, _TARGET_RE, "controller target"))

    def set_ssl(self, key: Path, cert: Path, ca: Path) -> VsctlBatch:
        """The switch's own TLS key and certificate, and the CA its peers' certificates
        must come from: used by every `ssl:` controller target of this vswitchd."""
        for p in (key, cert, ca):
            _check(str(p), _PATH_RE, "absolute path of a TLS file")
        return self.add("set-ssl", str(key), str(cert), str(ca))

    def set_controller(self, bridge: str, target: str | None, fail_mode: str) -> VsctlBatch:
        if fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be one of {FAIL_MODES} (got {fail_mode!r})")
        self._controller(_check(bridge, _NAME_RE, "bridge name"), target)
        self.add("set", "bridge", bridge, f"fail_mode={fail_mode}")
        return self

    def del_bridge(self, name: str) -> VsctlBatch:
        return self.add("--if-exists", "del-br", _check(name, _NAME_RE, "bridge name"))

    def add_port(
        self, bridge: str, port: str, *, peer: str, ofport: int | None = None
    ) -> VsctlBatch:
        _check(bridge, _NAME_RE, "bridge name")
        _check(port, _NAME_RE, "port name")
        _check(peer, _PEER_RE, "peer (kind:name with kind host, node, local or instance)")
        if not self._noop_qos:
            # One QoS row shared by every port of the transaction.
            self.add("--id=@nfnoop", "create", "qos", "type=linux-noop")
            self._noop_qos = True
        self.add("--may-exist", "add-port", bridge, port)
        iface = ["set", "interface", port, f"external_ids:netfate-peer={peer}"]
        if ofport is not None:
            if not 1 <= ofport < 0xFF00:
                raise ValueError(f"ofport out of range: {ofport}")
            iface.append(f"ofport_request={ofport}")
        self.add(*iface)
        self.add("set", "port", port, f"external_ids:netfate-peer={peer}", "qos=@nfnoop")
        return self

    def del_port(self, port: str, bridge: str | None = None) -> VsctlBatch:
        _check(port, _NAME_RE, "port name")
        if bridge is None:
            return self.add("--if-exists", "del-port", port)
        return self.add("--if-exists", "del-port", _check(bridge, _NAME_RE, "bridge name"), port)

    def commit(self, wait: bool = True) -> str:
        """Run all commands as one transaction (all or nothing). Empty batch: no call."""
        if not self.commands:
            return ""
        out = self._vsctl.run(self.commands, wait=wait, write=True)
        self.commands = []
        self._noop_qos = False
        return out


def ovsdb_transact(sock_path: str, ops: list[dict[str, Any]], timeout: float) -> list[Any]:
    """One `transact` of `ops` on the Open_vSwitch database at unix socket
    `sock_path`; the operations' results. OvsError when the server refuses it (the
    transaction, or one of its operations: then none is applied), OSError when no
    server answers."""
    req = {"method": "transact", "params": ["Open_vSwitch", *ops], "id": 1}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(json.dumps(req).encode())
        buf, decoder = "", json.JSONDecoder()
        msg: dict[str, Any] = {}
        while msg.get("id") != 1:  # a request of the server's own (echo) is skipped
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("ovsdb-server closed the connection")
            buf += chunk.decode()
            while buf.strip():
                try:
                    msg, end = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    break  # not whole yet
                buf = buf.lstrip()[end:]
                if msg.get("id") == 1:
                    break
    if msg.get("error") is not None:
        raise OvsError(f"ovsdb transact: {msg['error']}")
    results = msg.get("result") or []
    for r in results:
        if isinstance(r, dict) and r.get("error"):
            raise OvsError(f"ovsdb transact: {r['error']}: {r.get('details', '')}")
    return list(results)


class Vsctl:
    """ovs-vsctl against one database; each method is one transaction.

    `wait_for_db`: a change waits (up to `timeout`) for a database that is not
    there, as while ovsdb-server restarts after a crash, instead of failing at once
    (ovs-vsctl --retry). Reads still fail fast: their callers keep what they had."""

    def __init__(self, db: str, timeout: float = 60.0, *, wait_for_db: bool = False) -> None:
        self.db = db
        self.timeout = timeout
        self.wait_for_db = wait_for_db

    def run(
        self,
        commands: Sequence[Sequence[str]],
        *,
        wait: bool = True,
        fmt: str = "",
        write: bool = False,
    ) -> str:
        argv = ["ovs-vsctl", f"--db={self.db}", f"--timeout={int(self.timeout)}"]
        if write and self.wait_for_db:
            argv.append("--retry")
        if not wait:
            # Do not wait for vswitchd to apply the change (or when it is not running).
            argv.append("--no-wait")
        if fmt:
            argv.append(f"--format={fmt}")
        for cmd in commands:
            argv.append("--")
            argv.extend(cmd)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout + 5)
        if proc.returncode != 0:
            raise OvsError(
                str(CommandError(proc.returncode, [*argv[:4], "..."], proc.stdout, proc.stderr))
            )
        return proc.stdout

    def batch(self) -> VsctlBatch:
        return VsctlBatch(self)

    def userspace_tso(self) -> bool:
        """Whether the switch is configured for userspace TSO (then ports keep their
        offloads on; see the module docstring)."""
        out = self.run(
            [["--if-exists", "get", "Open_vSwitch", ".", "other_config:userspace-tso-enable"]],
            wait=False,
        )
        return out.strip().strip('"') == "true"

    # one-transaction conveniences -------------------------------------------

    def add_bridge(
        self,
        name: str,
        *,
        datapath_id: int | str,
        node: str,
        fail_mode: str = "standalone",
        controller: str | None = None,
        protocols: str = "OpenFlow13",
        rstp: bool = False,
    ) -> None:
        self.batch().add_bridge(
            name,
            datapath_id=datapath_id,
            node=node,
            fail_mode=fail_mode,
            controller=controller,
            protocols=protocols,
            rstp=rstp,
        ).commit()

    def del_bridge(self, name: str) -> None:
        self.batch().del_bridge(name).commit()

    def add_port(self, bridge: str, port: str, *, peer: str, ofport: int | None = None) -> None:
        self.batch().add_port(bridge, port, peer=peer, ofport=ofport).commit()

    def del_port(self, port: str, bridge: str | None = None) -> None:
        self.batch().del_port(port, bridge).commit()

    def set_peer(self, port: str, peer: str) -> None:
        """Relabel a port's peer (a warm standby's port taken by an instance): a
        database change only, so no wait for vswitchd. On a unix socket it is one
        OVSDB transaction sent from this process (RFC 7047): an ovs-vsctl costs a
        process spawn, 10-40 ms on a loaded 2-core machine, on a take's path."""
        _check(port, _NAME_RE, "port name")
        _check(peer, _PEER_RE, "peer (kind:name with kind host, node, local or instance)")
        if self.db.startswith("unix:"):
            op = {
                "op": "mutate",
                "table": "Interface",
                "where": [["name", "==", port]],
                # In order: the old label out, the new one in (insert keeps a key).
                "mutations": [
                    ["external_ids", "delete", ["set", ["netfate-peer"]]],
                    ["external_ids", "insert", ["map", [["netfate-peer", peer]]]],
                ],
            }
            try:
                result = ovsdb_transact(self.db.removeprefix("unix:"), [op], self.timeout)
            except OSError:  # no database on that socket now: ovs-vsctl's own handling
                pass
            else:
                if int((result[0] or {}).get("count", 0)) != 1:
                    raise OvsError(f"set_peer: no interface {port!r}")
                return
        self.run([["set", "interface", port, f"external_ids:netfate-peer={peer}"]], wait=False)

    def set_controller(self, bridge: str, target: str | None, fail_mode: str = "secure") -> None:
        self.batch().set_controller(bridge, target, fail_mode).commit()

    def list_bridges(self) -> list[str]:
        return self.run([["list-br"]]).split()

    def bridge_info(self, bridge: str) -> dict[str, Any]:
        """Columns of a bridge: datapath_id, fail_mode, protocols, controller, external_ids."""
        cols = "name,datapath_id,fail_mode,protocols,external_ids,other_config,rstp_enable"
        rows = _parse_table(self.run([[f"--columns={cols}", "list", "bridge", bridge]], fmt="json"))
        if not rows:
            raise OvsError(f"no bridge {bridge!r}")
        info = rows[0]
        info["controller"] = self.run([["get-controller", bridge]]).split()
        return info

    def list_ports(self, bridge: str) -> list[PortInfo]:
        rows = self._port_rows(_check(bridge, _NAME_RE, "bridge name"))
        out = []
        for row in rows:
            ofport = row.get("ofport")
            peer = row.get("external_ids", {}).get("netfate-peer")
            out.append(
                PortInfo(
                    name=str(row["name"]),
                    ofport=ofport if isinstance(ofport, int) and ofport > 0 else None,
                    peer=str(peer) if peer is not None else None,
                )
            )
        return sorted(out, key=lambda p: p.name)

    def _port_rows(self, bridge: str, tries: int = 3) -> list[dict[str, Any]]:
        """Two reads, two transactions: a port removed in between ("no row") means
        reading its names again (a few times at most)."""
        for attempt in range(1, tries + 1):
            names = self.run([["list-ports", bridge]]).split()
            if not names:
                return []
            try:
                cmd = ["--columns=name,ofport,external_ids", "list", "interface", *names]
                return _parse_table(self.run([cmd], fmt="json"))
            except OvsError as e:
                if "no row" not in str(e) or attempt == tries:
                    raise
        return []  # tries < 1

    def wait_ofports(self, ports: Iterable[str], timeout: float = 30.0) -> dict[str, int]:
        """Wait until vswitchd has given each port an OpenFlow number."""
        wanted = list(ports)
        deadline = time.monotonic() + timeout
        while True:
            rows = _parse_table(
                self.run([["--columns=name,ofport", "list", "interface", *wanted]], fmt="json")
            )
            got: dict[str, int] = {}
            for r in rows:
                ofport = r.get("ofport")
                if isinstance(ofport, int) and ofport > 0:
                    got[str(r["name"])] = ofport
            if all(p in got for p in wanted):
                return {p: got[p] for p in wanted}
            if time.monotonic() > deadline:
                missing = [p for p in wanted if p not in got]
                raise OvsError(f"ports without ofport after {timeout}s: {', '.join(missing[:10])}")
            time.sleep(0.05)


# OVSDB JSON output of `ovs-vsctl --format=json list TABLE`:
#   {"headings": ["name", "ofport", ...], "data": [[<cell>, ...], ...]}
# A cell is an atom (string, integer, ...), ["uuid", "..."], ["set", [atoms]]
# (an empty set for an unset optional column) or ["map", [[key, value], ...]].
def _cell(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        tag, body = value
        if tag == "map":
            return {str(k): _cell(v) for k, v in body}
        if tag == "set":
            items = [_cell(v) for v in body]
            return items[0] if len(items) == 1 else (items or None)
        if tag == "uuid":
            return str(body)
    return value


def _parse_table(text: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(text)
        headings = [str(h) for h in doc["headings"]]
        return [{h: _cell(c) for h, c in zip(headings, row, strict=True)} for row in doc["data"]]
    except (ValueError, KeyError, TypeError) as e:
        raise OvsError(f"unexpected ovs-vsctl output: {text[:200]!r}") from e
