"""Coverage-guided fuzzing of dnsmasq's lease-file reader (netfate.proto.dnsmasq) with atheris
(libFuzzer), bounded: the invariants of test_whereis_fuzz.check on any bytes.

Run as a script it is an ordinary atheris harness (``python
tests/services/catalog/fuzz/test_whereis_atheris.py -runs=1000000``); the pytest
test runs it in a subprocess for a fixed number of inputs, because
``atheris.Fuzz()`` ends its process.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _harness() -> None:
    import atheris

    with atheris.instrument_imports():
        # Only the reader of untrusted bytes: instrumenting the catalog package's
        # imports (whereis's) took minutes and fuzzes nothing more.
        from netfate.proto import dnsmasq  # noqa: F401  (instrumented first)
    from test_whereis_fuzz import check

    def one_input(data: bytes) -> None:
        check(data.decode("utf-8", "replace"))

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def test_atheris_harness_runs_clean(tmp_path: Path) -> None:
    # Imported here: run as a script, this file has its own folder, not tests/, on its path.
    from atheris_run import run_harness

    run_harness(__file__, tmp_path, runs=30000, max_len=4096)


if __name__ == "__main__":
    _harness()
