"""nftables through its JSON interface (`nft -j`), in one place.

A document is `{"nftables": [{"metainfo": ...}, command, ...]}`. `apply` hands it to
`nft -j -f -`, which runs every command of the document as one kernel transaction:
all of it takes effect, or none of it does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from netfate.host import netns

Command = dict[str, Any]


class NftError(RuntimeError):
    """nft refused a document (the message is its error output); nothing changed."""


def document(commands: Iterable[Command]) -> dict[str, Any]:
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}


def fresh_table(family: str, name: str) -> list[Command]:
    """Commands that leave table `name` present and empty, within the transaction.

    `add` first: it is a no-op when the table exists, and it makes the `delete` valid
    on a first run (a bare `delete` of a missing table would fail the whole batch).
    """
    table = {"family": family, "name": name}
    return [{"add": {"table": table}}, {"delete": {"table": table}}, {"add": {"table": table}}]


def remove_table(family: str, name: str) -> list[Command]:
    """Commands that remove table `name`, and succeed if it is already gone."""
    table = {"family": family, "name": name}
    return [{"add": {"table": table}}, {"delete": {"table": table}}]


def apply(doc: dict[str, Any], ns: str | None = None, timeout: float = 10.0) -> None:
    """Run one document (inside namespace `ns`, or here)."""
    r = netns.run_in(ns, ["nft", "-j", "-f", "-"], check=False, timeout=timeout,
                     input=json.dumps(doc))  # fmt: skip
    if r.returncode != 0:
        raise NftError(r.stderr.strip() or f"nft exited with {r.returncode}")
