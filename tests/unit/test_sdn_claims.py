"""A datapath id belongs to the first live session that claims it (sdn/process.py)."""

from __future__ import annotations

import threading

from netfate.orchestrator.sdn.process import DatapathClaims


def test_first_claim_wins_until_released() -> None:
    claims = DatapathClaims()
    real, impostor = object(), object()
    assert claims.claim(1, real)
    assert claims.claim(1, real)  # the same session announcing it again
    assert not claims.claim(1, impostor)
    assert claims.holder(1) is real
    claims.release(impostor)  # holds nothing: frees nothing
    assert claims.holder(1) is real
    claims.release(real)
    assert claims.holder(1) is None
    assert claims.claim(1, impostor)


def test_one_session_holds_one_id() -> None:
    claims = DatapathClaims()
    s = object()
    assert claims.claim(1, s)
    assert not claims.claim(2, s)
    assert claims.holder(2) is None


def test_concurrent_claims_have_one_winner() -> None:
    claims = DatapathClaims()
    sessions = [object() for _ in range(16)]
    won: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(len(sessions))

    def claim(s: object) -> None:
        start.wait()
        if claims.claim(7, s):
            with lock:
                won.append(s)

    threads = [threading.Thread(target=claim, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and claims.holder(7) is won[0]
