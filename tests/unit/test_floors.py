"""Imports run downhill (DESIGN.md, convention 13; docs/ARCHITECTURE.md, "Floors").

Every import in src/netfate, at the top of a module or inside a function, is
read with ast and checked against the floors: a module imports only from its
own floor or below. A service imports no other service, and nothing below the
top floor imports one (the core reads services through their contracts, which
the top floor hands it). No two modules import each other, directly or around a
circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "netfate"

# (floor, module prefix); the longest matching prefix decides. Keep in step with
# the table in docs/ARCHITECTURE.md.
FLOORS: list[tuple[int, str]] = [
    (0, "netfate"),  # the package itself (its __init__ is empty)
    (0, "netfate.proto"),
    (0, "netfate.model"),
    (0, "netfate.clihelp"),
    (1, "netfate.host"),
    (1, "netfate.faults"),
    (1, "netfate.metrics"),
    (2, "netfate.vnf"),
    (2, "netfate.store"),
    (2, "netfate.testbed"),
    (2, "netfate.web"),
    (3, "netfate.agent"),
    (3, "netfate.apiclient"),
    (3, "netfate.frontdoor"),
    (3, "netfate.demo"),
    (4, "netfate.contract"),
    (4, "netfate.orchestrator"),
    (5, "netfate.services."),  # each service (a folder below netfate.services)
    (6, "netfate.services"),  # the registry itself: wiring
    (6, "netfate.cli"),
    (6, "netfate.__main__"),
    (6, "netfate.demo.cli"),
    (6, "netfate.experiment"),
    (6, "netfate.benchcli"),
]
NAMES = {0: "ground", 1: "host", 2: "functions, store, testbed, web", 3: "agent, clients",
         4: "core", 5: "services", 6: "wiring"}  # fmt: skip


def floor_of(module: str) -> int:
    if module == "netfate":
        return 0
    best = (-1, -1)
    for floor, prefix in FLOORS:
        if prefix == "netfate":
            continue  # the package itself only, not a default for what is not listed
        if prefix.endswith("."):
            hit = module.startswith(prefix)
        else:
            hit = module == prefix or module.startswith(prefix + ".")
        if hit and len(prefix) > best[1]:
            best = (floor, len(prefix))
    if best[0] < 0:
        raise AssertionError(f"{module} is on no floor: add it to FLOORS and ARCHITECTURE.md")
    return best[0]


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = p.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = modules()


def imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module imported) for every netfate import, however deep in the file."""
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "netfate":
                    yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "netfate":
                continue
            # `from package import module` imports that module
            names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            yield from ((node.lineno, n) for n in (names or [target]))


def service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "services" else None


EDGES = [(m, line, t) for m, p in MODULES.items() for line, t in imports(m, p)]


def test_the_floors_table_is_known_to_the_architecture_page() -> None:
    page = (SRC.parent / "docs" / "ARCHITECTURE.md").read_text()
    for _floor, prefix in FLOORS:
        if prefix != "netfate":
            assert f"`{prefix.rstrip('.')}" in page, prefix


def test_every_module_has_a_floor() -> None:
    assert len(MODULES) > 150
    for m in MODULES:
        floor_of(m)


def test_every_import_runs_downhill() -> None:
    up = [
        f"{MODULES[m].relative_to(SRC)}:{line}: {m} ({NAMES[floor_of(m)]}) imports {t} "
        f"({NAMES[floor_of(t)]})"
        for m, line, t in EDGES
        if floor_of(t) > floor_of(m)
    ]
    assert not up, "imports that run up:\n" + "\n".join(up)


def test_no_service_imports_another_and_the_core_imports_none() -> None:
    bad = []
    for m, line, t in EDGES:
        target = service_of(t)
        if target is None and t != "netfate.services":
            continue
        mine = service_of(m)
        if floor_of(m) < 5 or (mine is not None and mine != target):
            bad.append(f"{MODULES[m].relative_to(SRC)}:{line}: {m} imports {t}")
    assert not bad, "\n".join(bad)


def test_no_circles() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, _line, t in EDGES:
        if t in graph and t != m:
            graph[m].add(t)
    # Tarjan's strongly connected components: any of more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, f"modules that import each other: {circles}"


@pytest.mark.parametrize(
    ("module", "floor"),
    [("netfate.proto.arp", 0), ("netfate.services.firewall.api", 5), ("netfate.services", 6),
     ("netfate.demo.platform", 3), ("netfate.demo.cli", 6), ("netfate.orchestrator.app", 4)],
)  # fmt: skip
def test_floor_of(module: str, floor: int) -> None:
    assert floor_of(module) == floor
