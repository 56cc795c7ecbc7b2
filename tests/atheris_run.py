"""Run an atheris (libFuzzer) harness file for a bounded number of inputs.

``atheris.Fuzz()`` ends its process, so a pytest test runs the harness file as a
script in a subprocess and checks that libFuzzer finished every run without an
uncaught exception (it would exit non-zero and leave a crash-* artifact).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run_harness(harness: str, tmp_path: Path, runs: int, max_len: int) -> None:
    pytest.importorskip("atheris", reason="atheris (libFuzzer for CPython) not installed")
    proc = subprocess.run(
        [
            sys.executable,
            harness,
            f"-runs={runs}",
            f"-max_len={max_len}",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # The harness's own invariant checks raise too, and count as crashes.
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not list(tmp_path.glob("crash-*"))
    assert f"Done {runs} runs" in proc.stderr
