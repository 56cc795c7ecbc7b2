"""Tests mirror the layout (README, "Tests"; docs/ARCHITECTURE.md).

A service's tests sit under its name, tests/services/NAME/TIER/: a test module
anywhere else that imports the service (``netfate.services.NAME``) or one of its
functions (the ``netfate.vnf`` packages its descriptors name) is in the wrong
place, and tests/services/ holds only registered services' folders, each only
tier folders. The platform's tests (tests/TIER/) import no service, but for the
few listed in CROSSING, which test the platform across services.

A module of one service's function that another service's functions import
(vnf/portal/http.py, the streaming functions' HTTP server too) is shared, not
that service's own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from netfate.services import registered

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
SERVICES_DIR = TESTS / "services"
TIERS = {"unit", "fuzz", "netns", "testbed"}

# Platform tests that import a service on purpose (path below tests/: why).
CROSSING: dict[str, str] = {
    "unit/test_api_errors.py": "every registered service's routes; the firewall's "
    "RADIUS listener moved off 1812",
    "unit/test_api_limits.py": "the app's bounds with every service loaded; the firewall's "
    "RADIUS listener moved off 1812, its sign-in counter",
    "unit/test_identity.py": "earlier accounts' PBKDF2 hashes (the firewall's format) "
    "upgraded to argon2id at sign-in",
    "unit/test_signin.py": "the pages behind the web's sign-in: the sharing owners' page, "
    "the firewall page and its data routes with the web session",
    "fuzz/test_radius_atheris.py": "the RADIUS wire format's harness; its target 6 drives "
    "the firewall's embedded server core",
    "fuzz/test_ipv4_fuzz.py": "the IPv4 and overlay parsers; the Virtual Presence's "
    "translator on the same parsed packets",
}


def imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports (inside functions too); for ``from M import x``
    both M and M.x, since x may be a module."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def is_module(name: str) -> bool:
    p = SRC.joinpath(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def vnf_owners() -> dict[str, str]:
    """``netfate.vnf.PKG`` -> the service whose descriptors name a function in it."""
    out = {}
    for service in registered():
        for d in service.descriptors:
            pkg = ".".join(str(d["function"]).split(":")[0].split(".")[:3])
            out[pkg] = service.name
    return out


def owner_of(module: str, vnf: dict[str, str]) -> str | None:
    parts = module.split(".")
    if parts[:2] == ["netfate", "services"] and len(parts) > 2:
        return parts[2]
    return vnf.get(".".join(parts[:3])) if parts[:2] == ["netfate", "vnf"] else None


def shared_vnf_modules(vnf: dict[str, str]) -> set[str]:
    """Modules of one service's functions imported by another service's functions."""
    shared = set()
    for pkg, service in vnf.items():
        for f in SRC.joinpath(*pkg.split(".")).rglob("*.py"):
            for m in imports(f):
                other = owner_of(m, vnf)
                if other is not None and other != service and is_module(m):
                    shared.add(m)
    return shared


def services_imported(path: Path, vnf: dict[str, str], shared: set[str]) -> set[str]:
    out = set()
    for m in imports(path):
        owner = owner_of(m, vnf)
        if owner is None or not is_module(m):
            continue
        if any(m == s or m.startswith(s + ".") for s in shared):
            continue
        out.add(owner)
    return out


def home_of(path: Path) -> str | None:
    """The service a test file sits under, or None for the platform's tests."""
    rel = path.relative_to(TESTS).parts
    return rel[1] if rel[0] == "services" and len(rel) > 2 else None


def misplaced(root: Path) -> list[str]:
    vnf = vnf_owners()
    shared = shared_vnf_modules(vnf)
    out = []
    # pytest's two default patterns for a test module
    for path in sorted({*root.rglob("test_*.py"), *root.rglob("*_test.py")}):
        rel = path.relative_to(TESTS).as_posix()
        home = home_of(path)
        strangers = services_imported(path, vnf, shared) - {home}
        if strangers and rel not in CROSSING:
            out.append(f"{rel} imports {', '.join(sorted(strangers))}")
    return out


def stray_folders(root: Path) -> list[str]:
    names = {s.name for s in registered()}
    out = []
    for d in sorted(p for p in root.iterdir() if p.name != "__pycache__"):
        if not d.is_dir() or d.name not in names:
            out.append(f"services/{d.name}: not a registered service ({sorted(names)})")
            continue
        for t in sorted(p for p in d.iterdir() if p.name != "__pycache__"):
            if not t.is_dir() or t.name not in TIERS:
                out.append(f"services/{d.name}/{t.name}: not a tier folder ({sorted(TIERS)})")
    return out


def test_each_service_test_sits_under_its_service() -> None:
    offenders = misplaced(TESTS)
    assert not offenders, "move these under tests/services/NAME/TIER/:\n" + "\n".join(offenders)


def test_tests_services_holds_only_registered_services_and_tiers() -> None:
    strays = stray_folders(SERVICES_DIR)
    assert not strays, "\n".join(strays)


def test_crossing_list_is_current() -> None:
    """Each listed platform test still exists and still imports a service (else it
    would pass the check above without the list, which would then only hide)."""
    vnf = vnf_owners()
    shared = shared_vnf_modules(vnf)
    stale = [
        rel
        for rel in CROSSING
        if not (TESTS / rel).is_file() or not services_imported(TESTS / rel, vnf, shared)
    ]
    assert not stale, f"remove from CROSSING: {stale}"


def test_the_check_sees_a_test_in_the_wrong_place(tmp_path: Path) -> None:
    """What the checks read: a service's module, its functions' package (imported
    inside a function too, or by name), a shared function module and a wire format
    (neither a service's); a folder not a service's, a folder not a tier."""
    vnf = vnf_owners()
    shared = shared_vnf_modules(vnf)
    assert "netfate.vnf.portal.http" in shared
    cases = {
        "from netfate.services.sharing import workflow\n": {"sharing"},
        "def f():\n    import netfate.vnf.usbip_host.tls\n": {"usbip"},
        "from netfate.vnf import portal\n": {"firewall"},
        "from netfate.vnf.portal.http import Request\n": set(),
        "from netfate.proto import radius\n": set(),
    }
    for i, (text, expected) in enumerate(cases.items()):
        (tmp_path / f"test_{i}.py").write_text(text)
        assert services_imported(tmp_path / f"test_{i}.py", vnf, shared) == expected, text
    svc = tmp_path / "services"
    (svc / "nosuch" / "unit").mkdir(parents=True)
    (svc / "firewall" / "misc").mkdir(parents=True)
    (svc / "firewall" / "unit").mkdir(parents=True)
    assert stray_folders(svc) == [
        "services/firewall/misc: not a tier folder (['fuzz', 'netns', 'testbed', 'unit'])",
        f"services/nosuch: not a registered service ({sorted(s.name for s in registered())})",
    ]
