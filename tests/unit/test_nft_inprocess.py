"""host/nft.apply here (no namespace named): one libnftables call in this process,
no `nft` spawned; its refusal is an NftError with the library's message. In another
namespace, `nft -j -f -` as before."""

from __future__ import annotations

import json
from typing import Any

import pytest

from netfate.host import nft


class FakeLib:
    """libnftables as ctypes shows it: a context, flags, one buffer run."""

    def __init__(self, rc: int = 0, error: bytes = b"") -> None:
        self.rc, self.error = rc, error
        self.runs: list[bytes] = []
        self.flags = 0
        self.freed = 0

    def nft_ctx_new(self, flags: int) -> int:
        return 1

    def nft_ctx_output_set_flags(self, ctx: int, flags: int) -> None:
        self.flags = flags

    def nft_ctx_buffer_output(self, ctx: int) -> int:
        return 0

    def nft_ctx_buffer_error(self, ctx: int) -> int:
        return 0

    def nft_run_cmd_from_buffer(self, ctx: int, buf: bytes) -> int:
        self.runs.append(buf)
        return self.rc

    def nft_ctx_get_error_buffer(self, ctx: int) -> bytes:
        return self.error

    def nft_ctx_free(self, ctx: int) -> None:
        self.freed += 1


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    class Done:
        returncode, stderr = 0, ""

    def run_in(ns: str | None, argv: list[str], **k: Any) -> Done:
        calls.append([str(ns), *argv])
        return Done()

    monkeypatch.setattr(nft.netns, "run_in", run_in)
    return calls


def test_a_document_here_is_one_library_call_and_no_process(
    monkeypatch: pytest.MonkeyPatch, spawned: list[list[str]]
) -> None:
    lib = FakeLib()
    monkeypatch.setattr(nft, "_lib", lib)
    doc = nft.document(nft.fresh_table("inet", "t"))
    nft.apply(doc)
    assert [json.loads(b) for b in lib.runs] == [doc]
    assert lib.flags == nft.NFT_CTX_OUTPUT_JSON and lib.freed == 1
    assert spawned == []


def test_a_refused_document_raises_the_librarys_message(
    monkeypatch: pytest.MonkeyPatch, spawned: list[list[str]]
) -> None:
    lib = FakeLib(rc=1, error=b"Error: No such file or directory\n")
    monkeypatch.setattr(nft, "_lib", lib)
    with pytest.raises(nft.NftError, match="No such file or directory"):
        nft.apply(nft.document(nft.remove_table("inet", "t")))
    assert lib.freed == 1 and spawned == []


def test_another_namespace_or_no_library_runs_nft(
    monkeypatch: pytest.MonkeyPatch, spawned: list[list[str]]
) -> None:
    lib = FakeLib()
    monkeypatch.setattr(nft, "_lib", lib)
    nft.apply(nft.document([]), "nft-x-ns")
    monkeypatch.setattr(nft, "_lib", False)  # not installed here
    nft.apply(nft.document([]))
    assert [c[:4] for c in spawned] == [
        ["nft-x-ns", "nft", "-j", "-f"],
        ["None", "nft", "-j", "-f"],
    ]
    assert lib.runs == []
