"""`netfate bench NAME [--json] [ARGS...]`: run a benchmark from bench/.

Each bench/NAME.py has `run(argv: list[str]) -> dict`, measures the project and a
baseline in the same run, and returns figures (ratios included). This command
finds it in the source tree (an editable install, as `make` sets up), runs it and
prints the JSON, or a readable summary without --json.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

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
    mod = importlib.util.module_from_spec(spec)
    # Registered before it runs, as a normal import would: dataclasses and pickling
    # look their module up in sys.modules.
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def bench(
    name: Annotated[str, typer.Argument(help="Benchmark name (file in bench/)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON figures")] = False,
    args: Annotated[
        list[str] | None, typer.Argument(help="Options passed to the benchmark")
    ] = None,
) -> None:
    """Run a benchmark; it measures a baseline in the same run and reports ratios."""
    mod = load(name)
    result = mod.run(list(args or []))
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    _summary(result)


def _summary(result: dict[str, Any], indent: str = "") -> None:
    for k, v in result.items():
        if isinstance(v, dict):
            typer.echo(f"{indent}{k}:")
            _summary(v, indent + "  ")
        else:
            typer.echo(f"{indent}{k}: {v}")
