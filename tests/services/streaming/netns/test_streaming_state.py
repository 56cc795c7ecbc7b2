"""Reconfiguration in place and state carried by export/import, in namespaces.

- A forwarder whose next hops change while a stream passes drops no datagram
  for the hops it keeps (every sequence number arrives at the kept viewer).
- export -> import moves what each function holds: an edge streamer's joined
  viewers (a standby copy forwards nothing until activated, then serves them),
  an acquirer's recognition (the copy does not announce the same stream again)
  and its event numbering, a forwarder's counters, the storage's recordings.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from netfate.host import netns
from netfate.proto.rtp import PT_MP2T, RtpPacket
from streaming_rig import HOSTS, Lan, source_args
from waiting import until

H = HOSTS
NULL_TS = (b"\x47\x1f\xff\x10" + b"\xff" * 184) * 7


def rtp(seq: int, ssrc: int = 0xC0FFEE) -> bytes:
    return RtpPacket(payload_type=PT_MP2T, sequence=seq & 0xFFFF, timestamp=seq * 900,
                     ssrc=ssrc, payload=NULL_TS).build()  # fmt: skip


class Sender(threading.Thread):
    """Numbered RTP/MPEG-TS datagrams from a namespace, `rate` per second."""

    def __init__(self, lan: Lan, host: str, dst: str, port: int, count: int, rate: int) -> None:
        super().__init__(daemon=True)
        self.sock = netns.socket_in(lan.ns(host), socket.AF_INET, socket.SOCK_DGRAM)
        self.dst, self.count, self.rate = (dst, port), count, rate

    def run(self) -> None:
        start = time.monotonic()
        with self.sock:
            for i in range(self.count):
                self.sock.sendto(rtp(i), self.dst)
                ahead = start + (i + 1) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)


class Receiver(threading.Thread):
    """Sequence numbers arriving on a port in a namespace, until `idle` s of silence."""

    def __init__(self, lan: Lan, host: str, port: int, idle: float = 3.0) -> None:
        super().__init__(daemon=True)
        self.sock = netns.socket_in(lan.ns(host), socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((H[host], port))
        self.sock.settimeout(idle)
        self.seqs: list[int] = []
        self.start()

    def run(self) -> None:
        with self.sock:
            while True:
                try:
                    data = self.sock.recv(2048)
                except TimeoutError:
                    return
                self.seqs.append(data[2] << 8 | data[3])


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    n = Lan(tmp_path_factory.mktemp("state"))
    try:
        n.build()
        yield n
    finally:
        n.close()


def route(*hosts: str, port: int = 9100) -> dict[str, Any]:
    return {"routes": [{"id": "X", "port": 6100,
                        "next_hops": [{"host": H[h], "port": port} for h in hosts]}]}  # fmt: skip


def test_a_forwarder_reconfigured_in_place_drops_nothing_for_kept_hops(lan: Lan) -> None:
    lan.start("relay", "fwd", "relay", route("v1"))
    kept, other = Receiver(lan, "v1", 9100), Receiver(lan, "v2", 9100)
    count = 4000
    sender = Sender(lan, "prov", H["fwd"], 6100, count, rate=1000)
    sender.start()
    # Twenty changes while 4 s of stream pass: v2 comes and goes, the order changes,
    # and v1 stays throughout.
    plans = [("v1", "v2"), ("v2", "v1"), ("v1",), ("v1", "v2"), ("v1",)] * 4
    for hosts in plans:
        time.sleep(0.15)
        assert lan.call("relay", {"op": "configure", "config": route(*hosts)})["applied"]
    sender.join()
    kept.join()
    other.join()
    assert len(kept.seqs) == count and sorted(kept.seqs) == list(range(count)), (
        f"{count - len(set(kept.seqs))} missing at the kept hop"
    )
    assert 0 < len(other.seqs) < count  # the hop that came and went got part of it
    st = lan.stats("relay")["routes"]["X"]
    assert st["hops"] == [{"hop": f"{H['v1']}:9100", "sent": count, "failed": 0}]
    assert st["counters"]["forwarded"] == count - 1  # the first one was held, then sent
    lan.stop("relay")


def test_edge_streamer_state_moves_joined_viewers(lan: Lan) -> None:
    config = {"contents": [{"id": "X", "port": 7000, "hls": False}], "http_port": 8080}
    lan.start("edgeA", "edge1", "edge", config)
    status, sdp = lan.http("v1", f"http://{H['edge1']}:8080/rtp/X/source/join?port=9200", "POST")
    assert status == 200 and "m=video 9200" in sdp
    lan.start("edgeB", "spare", "edge", config, standby=True)
    state = lan.call("edgeA", {"op": "export"})["state"]
    assert state["joined"]["X"]["source"][0]["port"] == 9200
    lan.call("edgeB", {"op": "import", "state": state})
    viewers = lan.stats("edgeB")["contents"]["X"]["feeds"]["source"]["viewers"]
    assert viewers[0]["viewer"] == f"{H['v1']}:9200" and viewers[0]["via"] == "join"
    assert 0 < viewers[0]["lease_left_s"] <= 300

    # Standby: what reaches it is dropped and counted, nothing is sent to the viewer.
    rx = Receiver(lan, "v1", 9200, idle=2.0)
    Sender(lan, "prov", H["spare"], 7000, 200, rate=500).run()
    rx.join()
    assert rx.seqs == [] and lan.stats("edgeB")["inactive_dropped"] == 200
    lan.call("edgeB", {"op": "activate"})
    rx = Receiver(lan, "v1", 9200, idle=2.0)
    Sender(lan, "prov", H["spare"], 7000, 200, rate=500).run()
    rx.join()
    assert len(rx.seqs) == 200, len(rx.seqs)
    lan.stop("edgeA")
    lan.stop("edgeB")


def test_acquirer_state_carries_recognition_and_event_numbering(lan: Lan) -> None:
    def config() -> dict[str, Any]:
        hop = {"host": H["v2"], "port": 9300}
        return {"flows": [{"id": "main", "event": "ev1", "state": "started", "protocol": "rtp",
                           "port": 5000, "next_hops": [hop]}]}  # fmt: skip

    lan.start("acqA", "acq", "acquirer", config())
    lan.popen("src-a", "prov", [*source_args(30), "-f", "rtp_mpegts", f"rtp://{H['acq']}:5000"])
    lan.wait_event("acqA", "StreamRecognised", flow="main")
    lan.stop("src-a")
    lan.start("acqB", "spare", "acquirer", config(), standby=True)
    state = lan.call("acqA", {"op": "export"})["state"]
    lan.call("acqB", {"op": "import", "state": state})
    lan.call("acqB", {"op": "activate"})
    st = lan.stats("acqB")
    last = state["outbox"]["last_seq"]
    assert st["events"]["last_seq"] == last
    assert st["flows"]["main"]["recognised"]["streams"][0]["codec"] == "h264"
    # The same stream at the new place: started again, but not announced again.
    lan.popen("src-b", "prov", [*source_args(30), "-f", "rtp_mpegts", f"rtp://{H['spare']}:5000"])
    started = lan.wait_event("acqB", "StreamStarted", after=last, flow="main")
    assert started["seq"] == last + 1
    # Its first bitrate is measured a second after the programme was recognised here.
    lan.wait_event("acqB", "StreamMeasured", after=last, flow="main")
    recognised = lan.events("acqB", "StreamRecognised")
    assert [e["seq"] for e in recognised] == [e["seq"] for e in state["outbox"]["items"]
                                              if e["kind"] == "StreamRecognised"]  # fmt: skip
    lan.stop("src-b")
    lan.stop("acqA")
    lan.stop("acqB")


def test_relay_state_carries_its_counters(lan: Lan) -> None:
    lan.start("relayA", "fwd", "relay", route("v1"))
    Sender(lan, "prov", H["fwd"], 6100, 300, rate=1000).run()
    assert until(lambda: lan.stats("relayA")["routes"]["X"]["counters"]["datagrams"] == 300)
    lan.start("relayB", "spare", "relay", route("v1"), standby=True)
    lan.call("relayB", {"op": "import", "state": lan.call("relayA", {"op": "freeze"})["state"]})
    lan.call("relayB", {"op": "activate"})
    Sender(lan, "prov", H["spare"], 6100, 100, rate=1000).run()
    assert until(lambda: lan.stats("relayB")["routes"]["X"]["counters"]["datagrams"] == 400)
    lan.stop("relayA")
    lan.stop("relayB")


def test_storage_state_and_volume_move_recordings(lan: Lan) -> None:
    volume = lan.tmp / "volume"

    def config(state: str) -> dict[str, Any]:
        return {"volume": str(volume), "contents": [{"id": "X", "port": 7100}],
                "recordings": [{"id": "r9", "user": "carol", "content": "X", "state": state}],
                "segment_s": 1, "http_port": 8081}  # fmt: skip

    lan.start("stoA", "sto", "storage", config("recording"))
    lan.popen("src-s", "prov", [*source_args(30), "-f", "rtp_mpegts", f"rtp://{H['sto']}:7100"])
    lan.wait_event("stoA", "RecordingStarted", recording="r9")
    assert until(lambda: lan.stats("stoA")["recordings"]["r9"]["duration_s"] >= 3, 30)
    lan.start("stoB", "spare", "storage", config("recording"), standby=True)
    state = lan.call("stoA", {"op": "freeze"})["state"]
    lan.call("stoB", {"op": "import", "state": state})
    lan.call("stoB", {"op": "activate"})
    lan.stop("src-s")
    last = state["outbox"]["last_seq"]
    # The recording goes on at the new place, as a second run.
    lan.popen("src-s2", "prov", [*source_args(30), "-f", "rtp_mpegts",
                                 f"rtp://{H['spare']}:7100"])  # fmt: skip
    resumed = lan.wait_event("stoB", "RecordingStarted", timeout=30, after=last, recording="r9")
    assert resumed["resumed"]
    assert until(lambda: lan.stats("stoB")["recordings"]["r9"]["runs"] == 2)
    assert until(lambda: lan.stats("stoB")["recordings"]["r9"]["duration_s"] >= 5, 30)
    assert lan.call("stoB", {"op": "configure", "config": config("stopped")})["applied"]
    lan.wait_event("stoB", "RecordingStopped", recording="r9")
    lan.stop("src-s2")
    status, playlist = lan.http("v1", f"http://{H['spare']}:8081/vod/r9/index.m3u8")
    assert status == 200 and playlist.count("#EXT-X-DISCONTINUITY") == 1
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and "#EXT-X-ENDLIST" in playlist
    got = lan.probe("v1", f"http://{H['spare']}:8081/vod/r9/index.m3u8", seconds=6)
    assert got["frames"] >= 100, got
    lan.stop("stoA")
    lan.stop("stoB")
