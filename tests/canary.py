"""A function module that must never be imported: importing it leaves a mark.

``canary(tmp_path)`` writes a module named ``nfcanary_<hex>`` into ``tmp_path``
whose import creates ``tmp_path/imported`` (from any process: the agent's zygote,
``python -m netfate.vnf``) and which defines ``Canary``, a valid netfate Function,
so that nothing but the function registry stands between its name and its import.
Put ``tmp_path`` on the path (``sys.path``, ``PYTHONPATH``) to make it importable.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

SOURCE = """
import pathlib
pathlib.Path({mark!r}).write_text("imported")
from netfate.vnf.runtime import Function


class Canary(Function):
    pass
"""


@dataclass(frozen=True)
class Canary:
    module: str
    mark: Path

    @property
    def ref(self) -> str:
        return f"{self.module}:Canary"

    def imported(self) -> bool:
        return self.mark.exists()


def canary(directory: Path) -> Canary:
    module = f"nfcanary_{secrets.token_hex(4)}"
    mark = directory / "imported"
    (directory / f"{module}.py").write_text(SOURCE.format(mark=str(mark)))
    return Canary(module, mark)
