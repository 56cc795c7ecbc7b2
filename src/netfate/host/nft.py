"""nftables through its JSON interface (`nft -j`), in one place.

A document is `{"nftables": [{"metainfo": ...}, command, ...]}`. `apply` hands it to
`nft -j -f -`, which runs every command of the document as one kernel transaction:
all of it takes effect, or none of it does.
"""

from __future__ import annotations

import ctypes
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
    """Run one document (inside namespace `ns`, or here). Here, it runs in this
    process through libnftables, the library `nft` itself is built on: a function
    that starts (a firewall's rule set, taken from a warm standby) spawns no
    process (measured here: `nft -j -f -` 20-50 ms, of which the spawn alone 8-39 ms;
    in-process 1 ms on a quiet moment, 12-40 ms at load 12, the kernel's
    transaction). Without the library, and in another namespace, `nft -j -f -`."""
    if ns is None and (lib := _libnftables()) is not None:
        _apply_here(lib, json.dumps(doc))
        return
    r = netns.run_in(ns, ["nft", "-j", "-f", "-"], check=False, timeout=timeout,
                     input=json.dumps(doc))  # fmt: skip
    if r.returncode != 0:
        raise NftError(r.stderr.strip() or f"nft exited with {r.returncode}")


NFT_CTX_OUTPUT_JSON = 1 << 4  # nftables/libnftables.h: JSON in (and out)
_lib: Any = None  # the loaded library; False: not on this machine


def preload() -> bool:
    """Load libnftables now (a module a warm standby imports: its take then applies
    its rule set without loading it). False where the library is not installed."""
    return _libnftables() is not None


def _libnftables() -> Any:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libnftables.so.1")
        except OSError:
            _lib = False
            return None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        _lib = lib
    return _lib or None


def _apply_here(lib: Any, text: str) -> None:
    """One document, one kernel transaction, as `nft -j -f -` runs it."""
    ctx = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT
    if not ctx:
        raise NftError("libnftables: no context")
    try:
        lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
        lib.nft_ctx_buffer_output(ctx)  # its output kept, not printed on our stdout
        lib.nft_ctx_buffer_error(ctx)
        if lib.nft_run_cmd_from_buffer(ctx, text.encode()) != 0:
            err = lib.nft_ctx_get_error_buffer(ctx) or b""
            raise NftError(err.decode(errors="replace").strip() or "nft refused the document")
    finally:
        lib.nft_ctx_free(ctx)


def query(command: str, timeout: float = 10.0) -> dict[str, Any]:
    """The JSON answer of one listing command (`list counters table inet T`), in this
    process's namespace: through libnftables where it is installed (no `nft`
    spawned: a firewall's counters are read with each migration's state), else
    `nft -j COMMAND`. NftError if refused."""
    lib = _libnftables()
    if lib is not None:
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise NftError("libnftables: no context")
        try:
            lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            if lib.nft_run_cmd_from_buffer(ctx, command.encode()) != 0:
                err = lib.nft_ctx_get_error_buffer(ctx) or b""
                raise NftError(err.decode(errors="replace").strip() or "nft refused the command")
            out = lib.nft_ctx_get_output_buffer(ctx) or b"{}"
        finally:
            lib.nft_ctx_free(ctx)
        doc: dict[str, Any] = json.loads(out)
        return doc
    r = netns.run_in(None, ["nft", "-j", *command.split()], check=False, timeout=timeout)
    if r.returncode != 0:
        raise NftError(r.stderr.strip() or f"nft exited with {r.returncode}")
    answer: dict[str, Any] = json.loads(r.stdout)
    return answer
