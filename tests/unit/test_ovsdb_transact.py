"""Vsctl.set_peer on a unix socket: one OVSDB transaction from the agent's own
process (RFC 7047), not an ovs-vsctl spawned on a warm standby's take."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from netfate.host.ovs import OvsError, Vsctl


class FakeOvsdb:
    """Answers each `transact` with `count` rows mutated; an echo comes first."""

    def __init__(self, path: Path, count: int) -> None:
        self.count = count
        self.requests: list[dict[str, Any]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                req = json.loads(conn.recv(65536))
                self.requests.append(req)
                echo = {"method": "echo", "params": [], "id": "echo"}
                answer = {"id": req["id"], "error": None, "result": [{"count": self.count}]}
                # Both in one write: the client must read past the server's own request.
                conn.sendall((json.dumps(echo) + json.dumps(answer)).encode())


@pytest.fixture
def no_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("ovs-vsctl spawned")

    monkeypatch.setattr(subprocess, "run", refuse)


def test_set_peer_is_one_transaction_and_spawns_nothing(tmp_path: Path, no_spawn: None) -> None:
    db = FakeOvsdb(tmp_path / "db.sock", count=1)
    Vsctl(f"unix:{tmp_path / 'db.sock'}").set_peer("nftv0123", "instance:i-00000001")
    (req,) = db.requests
    assert req["method"] == "transact" and req["params"][0] == "Open_vSwitch"
    (op,) = req["params"][1:]
    assert op["table"] == "Interface" and op["where"] == [["name", "==", "nftv0123"]]
    # The old label out, then the new one in (an insert keeps an existing key).
    assert op["mutations"] == [
        ["external_ids", "delete", ["set", ["netfate-peer"]]],
        ["external_ids", "insert", ["map", [["netfate-peer", "instance:i-00000001"]]]],
    ]


def test_set_peer_on_a_port_that_is_not_there_fails(tmp_path: Path, no_spawn: None) -> None:
    FakeOvsdb(tmp_path / "db.sock", count=0)
    with pytest.raises(OvsError, match="no interface"):
        Vsctl(f"unix:{tmp_path / 'db.sock'}").set_peer("nftv0123", "instance:i-00000001")


def test_set_peer_refuses_a_bad_label_before_any_request(tmp_path: Path, no_spawn: None) -> None:
    db = FakeOvsdb(tmp_path / "db.sock", count=1)
    with pytest.raises(ValueError):
        Vsctl(f"unix:{tmp_path / 'db.sock'}").set_peer("nftv0123", 'evil:x"]')
    assert db.requests == []
