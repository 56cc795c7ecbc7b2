"""`netfate testbed ...`: bring an emulated edge network up, inspect it, take it down."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from netfate.host import netns, proc
from netfate.host.ovs import OvsError, Vsctl
from netfate.model.topology import Topology, TopologyError, generate_tree
from netfate.testbed.builder import Interrupted, Testbed, TestbedError
from netfate.testbed.cleanup import clean as clean_run
from netfate.testbed.cleanup import stale_runs
from netfate.testbed.state import RunState, StateError, list_runs

app = typer.Typer(
    name="testbed",
    help="Emulated edge network on this machine: namespaces, veth links, OVS bridges, "
    "orchestrator and agents (like Mininet or Containerlab).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

EMULATOR_TEXT = {
    "none": "none needed (no link has delay or loss)",
    "netem": "tc netem (kernel)",
    "userspace": "userspace link emulator (this kernel has no netem)",
}


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _resolve_prefix(prefix: str | None) -> str:
    if prefix:
        return prefix
    runs = list_runs()
    if not runs:
        raise _fail("no testbed run found (nothing under the run directory)")
    if len(runs) > 1:
        raise _fail(f"several runs exist ({', '.join(runs)}): choose one with --prefix")
    return runs[0]


def _require_root() -> None:
    if os.geteuid() != 0:
        raise _fail("the testbed needs root (network namespaces, Open vSwitch)")


@app.command()
def up(
    file: Annotated[Path, typer.Argument(help="Topology file (YAML or JSON)")],
    prefix: Annotated[
        str | None, typer.Option(help="Run prefix for every name (default nf + 4 hex)")
    ] = None,
    controller: Annotated[
        str | None,
        typer.Option(
            help="OpenFlow controller target, e.g. tcp:127.0.0.1:6653, as seen from the "
            "switch namespace; bridges then use fail-mode=secure and OpenFlow13"
        ),
    ] = None,
    no_control: Annotated[
        bool, typer.Option("--no-control", help="Network only: no orchestrator, no agents")
    ] = False,
    sdn: Annotated[
        bool,
        typer.Option(
            "--sdn",
            help="Run netfate's own OpenFlow controller: bridges in secure mode, fabric "
            "intents for the routed network (netfate flow ... adds more)",
        ),
    ] = False,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="With --sdn: OpenFlow over TLS, switches and controller authenticated "
            "both ways by certificates from the run's own CA (plain-TCP switches refused)",
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="Orchestrator API port (default: a free one)")] = 0,
    no_prometheus: Annotated[
        bool,
        typer.Option(
            "--no-prometheus",
            help="Run no Prometheus (the placement engine then uses the agents' last samples)",
        ),
    ] = False,
    tso: Annotated[
        bool,
        typer.Option(
            "--tso",
            help="Open vSwitch with userspace TSO, offloads on in the namespaces: several "
            "times the TCP throughput of the switch path (~1 Gbit/s without); TCP through "
            "a function whose port MTU exceeds its onward path's (sharing) then stalls",
        ),
    ] = False,
    agents_per_process: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Nodes whose agents share one process (`netfate agents`); default: one "
            "per process up to 30 nodes, 50 beyond",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Build the network described in FILE, then start the orchestrator and agents."""
    _require_root()
    try:
        topo = Topology.load(file)
    except TopologyError as e:
        raise _fail(f"{file}: {e}", 2) from None
    t0 = time.monotonic()
    with console.status(f"bringing up {topo.name}") as status:

        def progress(step: str) -> None:
            status.update(f"[bold]{topo.name}[/bold]: {step}  ({time.monotonic() - t0:.1f}s)")

        try:
            tb = Testbed.up(
                file,
                prefix=prefix,
                controller=controller,
                agents_per_process=agents_per_process,
                sdn=sdn,
                secure=secure,
                control=not no_control,
                api_port=port,
                prometheus=not no_prometheus,
                tso=tso,
                progress=progress,
            )
        except (KeyboardInterrupt, Interrupted):
            console.print("[yellow]interrupted: everything created so far was removed[/yellow]")
            raise typer.Exit(130) from None
        except (TestbedError, TopologyError, OvsError, OSError) as e:
            console.print("everything created so far was removed")
            raise _fail(str(e)) from None
    elapsed = time.monotonic() - t0
    st = tb.state
    summary: dict[str, Any] = {
        "prefix": st.prefix,
        "topology": topo.name,
        "nodes": len(topo.nodes),
        "hosts": len(topo.hosts),
        "links": len(topo.links),
        "namespaces": len(st.namespaces),
        "emulator": st.emulator,
        "controller": st.controller,
        "openflow_tls": st.secure,
        "userspace_tso": st.tso,
        "api": st.api_url,
        "dashboard": f"{st.api_url}/" if st.api_url else None,
        "door": st.door_url,
        "prometheus": st.prometheus_url,
        "operator": {"credentials": str(st.secrets / "operator.json")} if st.api_url else None,
        "seconds": round(elapsed, 2),
        "timings": st.timings,
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(
        f"[green]up[/green] {topo.name} as [bold]{st.prefix}[/bold] in {elapsed:.1f}s: "
        f"{len(topo.nodes)} nodes, {len(topo.hosts)} hosts, {len(topo.links)} links"
    )
    out.print(f"delay/loss emulation: {EMULATOR_TEXT.get(st.emulator, st.emulator)}")
    mode = f"secure, controller {st.controller}" if st.controller else "standalone (NORMAL)"
    if st.secure:
        mode += " (OpenFlow over TLS, certificates of the run's CA both ways)"
    out.print(
        f"bridges: {mode}"
        + (", RSTP (the topology has loops)" if st.rstp else "")
        + (", userspace TSO" if st.tso else ", no TSO (tx checksum offload off)")
    )
    if st.api_url:
        out.print(f"dashboard: [link={st.api_url}/]{st.api_url}/[/link]")
        if (op := tb.operator()) is not None:
            out.print(f"operator: {op[0]}, password {op[1]} (also in {st.secrets}/, mode "
                      "0600; `netfate` commands on this machine use its token)")  # fmt: skip
    if st.door_url:
        out.print(f"front door (users' pages, from inside the network): {st.door_url}/")
    if st.prometheus_url:
        out.print(f"Prometheus: {st.prometheus_url} (scraping {len(st.metrics)} targets)")
    out.print(f"try: netfate testbed exec {next(iter(topo.hosts), 'sw')} -- ip addr")


def _status_of(prefix: str) -> dict[str, Any]:
    st = RunState.load(prefix)
    procs = []
    for r in st.process_refs():
        procs.append({"role": r.role, "pid": r.pid, "alive": proc.alive(r)})
    existing = set(netns.list_with_prefix(prefix + "-"))
    bridges: int | None = None
    if st.ovs_db and any(p["role"] == "ovs-vswitchd" and p["alive"] for p in procs):
        try:
            bridges = len(Vsctl(st.ovs_db, timeout=5).list_bridges())
        except OvsError:
            bridges = None
    linkemu: dict[str, Any] | None = None
    stats_file = st.dir / "linkemu.json"
    if stats_file.exists():
        try:
            linkemu = json.loads(stats_file.read_text())
        except ValueError:
            linkemu = None
    phase = st.phase
    if phase in ("building", "stopping", "failed"):
        owner = proc.ProcRef.from_dict(st.owner) if st.owner else None
        if owner is None or not proc.alive(owner):
            phase += ", stale: run `netfate testbed clean --prefix " + prefix + "`"
    return {
        "prefix": prefix,
        "phase": phase,
        "rstp": st.rstp,
        "topology": st.topology_name,
        "topology_file": st.topology_file,
        "namespaces": {"recorded": len(st.namespaces), "present": len(existing)},
        "nodes": sorted(st.nodes),
        "hosts": sorted(st.hosts),
        "bridges": bridges,
        "emulator": st.emulator,
        "netem_available": st.netem_available,
        "controller": st.controller,
        "openflow_tls": st.secure,
        "api": st.api_url,
        "door": st.door_url,
        "prometheus": st.prometheus_url,
        "processes": procs,
        "linkemu": linkemu,
        "timings": st.timings,
    }


@app.command()
def status(
    prefix: Annotated[str | None, typer.Option(help="Run prefix (default: every run)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show what runs: namespaces, OVS, processes, delay emulator, API."""
    prefixes = [prefix] if prefix else list_runs()
    try:
        docs = [_status_of(p) for p in prefixes]
    except StateError as e:
        raise _fail(str(e)) from None
    if as_json:
        out.print_json(json.dumps(docs))
        return
    if not docs:
        out.print("no testbed runs")
        return
    for d in docs:
        ns = d["namespaces"]
        out.print(
            f"[bold]{d['prefix']}[/bold] {d['topology']} ({d['phase']}): "
            f"{len(d['nodes'])} nodes, {len(d['hosts'])} hosts, "
            f"namespaces {ns['present']}/{ns['recorded']}, bridges {d['bridges']}"
        )
        out.print(f"  delay/loss emulation: {EMULATOR_TEXT.get(d['emulator'], d['emulator'])}")
        if d["linkemu"]:
            late = d["linkemu"].get("lateness") or {}
            per_link = [v for key, v in d["linkemu"].items() if key.isdigit()]
            dirs = [v[k] for v in per_link for k in ("a->b", "b->a")]
            delivered = sum(x["delivered"] for x in dirs)
            lost = sum(x["lost"] for x in dirs)
            out.print(
                f"  emulated links: {len(per_link)}, frames delivered {delivered}, lost {lost}, "
                f"p99 lateness <= {late.get('p99_us_at_most')} us"
            )
        if d["api"]:
            out.print(f"  api: {d['api']}  dashboard: {d['api']}/")
        if d.get("door"):
            out.print(f"  front door (inside the network): {d['door']}/")
        if d["controller"]:
            tls = ", OpenFlow over TLS" if d["openflow_tls"] else ""
            out.print(f"  controller: {d['controller']} (fail-mode secure{tls})")
        table = Table("role", "pid", "alive", box=None, padding=(0, 2))
        for p in d["processes"]:
            table.add_row(p["role"], str(p["pid"]), "yes" if p["alive"] else "[red]no[/red]")
        out.print(table)


@app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Host or node name (or sw)")],
    prefix: Annotated[str | None, typer.Option(help="Run prefix")] = None,
) -> None:
    """Run a command in a host's or node's namespace: exec laptop1 -- ping 192.168.2.2"""
    _require_root()
    argv = [a for a in ctx.args if a != "--"] if ctx.args[:1] == ["--"] else list(ctx.args)
    if not argv:
        argv = [os.environ.get("SHELL", "/bin/sh")]
    try:
        st = RunState.load(_resolve_prefix(prefix))
        ns = st.namespace_of(name)
    except StateError as e:
        raise _fail(str(e)) from None
    if not netns.exists(ns):
        raise _fail(f"namespace {ns} does not exist (run down or crashed?)")
    if shutil.which(argv[0]) is None and "/" not in argv[0]:
        raise _fail(f"command not found: {argv[0]}", 127)
    sys.stdout.flush()
    # Replace this process: the command gets the terminal, signals and exit status.
    os.execvp("ip", ["ip", "netns", "exec", ns, *argv])


@app.command()
def down(
    prefix: Annotated[str | None, typer.Option(help="Run prefix")] = None,
) -> None:
    """Stop every process of the run and remove its namespaces, links and bridges."""
    _require_root()
    p = _resolve_prefix(prefix)
    try:
        st = RunState.load(p)
    except StateError as e:
        raise _fail(str(e)) from None
    from netfate.testbed.cleanup import teardown

    with console.status(f"taking down {p}") as s:
        problems = teardown(st, progress=lambda step: s.update(f"{p}: {step}"))
    if problems:
        for problem in problems:
            console.print(f"[red]problem:[/red] {problem}")
        raise typer.Exit(1)
    out.print(f"[green]down[/green] {p}: nothing left")


@app.command()
def clean(
    prefix: Annotated[
        str | None, typer.Option(help="Clean this run, journal or not, whatever its phase")
    ] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Also take down runs that are still up")
    ] = False,
) -> None:
    """Remove what crashed runs left (all stale runs, or the run --prefix names)."""
    _require_root()
    if prefix:
        targets = [prefix]
    elif all_runs:
        targets = list_runs()
    else:
        targets = stale_runs()
    live = [r for r in list_runs() if r not in targets]
    failed = False
    for p in targets:

        def report(step: str, p: str = p) -> None:
            console.print(f"{p}: {step}")

        try:
            problems = clean_run(p, progress=report)
        except StateError as e:
            raise _fail(str(e)) from None
        for problem in problems:
            failed = True
            console.print(f"[red]problem:[/red] {p}: {problem}")
        if not problems:
            out.print(f"cleaned {p}")
    if not targets:
        out.print("nothing to clean")
    if live:
        out.print(f"left running: {', '.join(live)} (use --prefix or --all)")
    if failed:
        raise typer.Exit(1)


@app.command()
def check(file: Annotated[Path, typer.Argument(help="Topology file")]) -> None:
    """Validate a topology file without building anything."""
    try:
        topo = Topology.load(file)
    except TopologyError as e:
        raise _fail(f"{file}: {e}", 2) from None
    impaired = sum(1 for lk in topo.links if lk.impaired)
    out.print(
        f"{file}: ok, {topo.name}: {len(topo.nodes)} nodes, {len(topo.hosts)} hosts, "
        f"{len(topo.links)} links ({impaired} with delay or loss)"
        + (", has loops (RSTP)" if topo.has_cycles() else "")
    )


@app.command()
def generate(
    nodes: Annotated[int, typer.Argument(help="Number of nodes")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here")] = None,
    cpes_per_pe: Annotated[int, typer.Option(help="CPEs per PE")] = 9,
    hosts_per_cpe: Annotated[int, typer.Option(help="Hosts per CPE")] = 1,
    rate: Annotated[str | None, typer.Option(help="Access link rate (none: unshaped)")] = "100Mbit",
    delay: Annotated[str | None, typer.Option(help="Access link delay")] = None,
) -> None:
    """Write a deterministic N-node topology: a tree of PEs with CPEs and their hosts."""
    try:
        topo = generate_tree(
            nodes,
            cpes_per_pe=cpes_per_pe,
            hosts_per_cpe=hosts_per_cpe,
            access_rate=None if rate in (None, "none") else rate,
            access_delay=delay,
        )
    except TopologyError as e:
        raise _fail(str(e), 2) from None
    text = f"# generated: netfate testbed generate {nodes}\n" + topo.to_yaml()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        out.print(f"wrote {output}: {len(topo.nodes)} nodes, {len(topo.hosts)} hosts")
