"""`netfate bench NAME [--json] [ARGS...]`: run a benchmark from bench/;
`netfate bench list`: the platform's and the services' benchmarks (what `make bench` runs).

Each bench/NAME.py has `run(argv: list[str]) -> dict`, measures the project and a
baseline in the same run, and returns figures (ratios included). This command
finds it in the source tree (an editable install, as `make` sets up), runs it and
prints the JSON, or a readable summary without --json.

Benchmarks are measurement tools, not part of the installed package: they live in
bench/, next to the test rigs some of them borrow (tests/). A service names its
own in its contract (``Service.benches``); the other files are the platform's.
`netfate bench list` (what `make bench` runs) gives the platform's, then each
registered service's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from netfate.contract import Service

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def available() -> list[str]:
    if not BENCH_DIR.is_dir():
        return []
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))


def load(name: str) -> Any:
    path = BENCH_DIR / f"{name}.py"
    if not path.is_file():
        known = ", ".join(available()) or f"none (no {BENCH_DIR})"
        raise typer.BadParameter(f"no benchmark {name!r}; available: {known}")
    spec = importlib.util.spec_from_file_location(f"netfate_bench_{name}", path)
    if spec is None or spec.loader is None:
        raise typer.BadParameter(f"cannot load {path}")
    _load_common()
    mod = importlib.util.module_from_spec(spec)
    # Registered before it runs, as a normal import would: dataclasses and pickling
    # look their module up in sys.modules.
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _load_common() -> None:
    """bench/_common.py as the module `_common` (what `import _common` finds when a
    bench runs as a script), loaded by path: putting bench/ on sys.path instead would
    let bench/usbip.py hide the PyPI `usbip` package from everything imported later."""
    if "_common" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location("_common", BENCH_DIR / "_common.py")
    if spec is None or spec.loader is None:
        return
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_common"] = mod
    spec.loader.exec_module(mod)


def listed(services: Sequence[Service]) -> list[tuple[str, str]]:
    """(bench, owner): the platform's, then each service's, as `make bench` runs them."""
    theirs = [(name, svc.name) for svc in services for name in svc.benches]
    claimed = {name for name, _ in theirs}
    return [(name, "platform") for name in available() if name not in claimed] + theirs


def command(services: Sequence[Service]) -> Callable[..., None]:
    """The `netfate bench` command, knowing these services' benchmarks."""
    owners = listed(services)

    def bench(
        name: Annotated[str, typer.Argument(help="Benchmark name (file in bench/), or list")],
        as_json: Annotated[
            bool, typer.Option("--json", help="Print only the JSON figures")
        ] = False,
        args: Annotated[
            list[str] | None, typer.Argument(help="Options passed to the benchmark")
        ] = None,
    ) -> None:
        """Run a benchmark; it measures a baseline in the same run and reports ratios."""
        if name == "list":  # one name a line (what `make bench` runs), or JSON with owners
            if as_json:
                print(json.dumps([{"bench": b, "owner": o} for b, o in owners], indent=2))
            else:
                typer.echo("\n".join(b for b, _ in owners))
            return
        mod = load(name)
        result = mod.run(list(args or []))
        if as_json:
            print(json.dumps(result, indent=2, sort_keys=True))
            return
        _summary(result)

    return bench


def _summary(result: dict[str, Any], indent: str = "") -> None:
    for k, v in result.items():
        if isinstance(v, dict):
            typer.echo(f"{indent}{k}:")
            _summary(v, indent + "  ")
        else:
            typer.echo(f"{indent}{k}: {v}")
