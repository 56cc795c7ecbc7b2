"""The streaming functions' configuration schemas (vnf/streaming/schemas.py; issue 12,
section 4): every configuration the service builds passes them where the agent checks
(with its --image-dir), and the API refuses (422, naming the field) what is out of
range, oversized, unknown, or a path written as root outside the image directory:
the storage's volume (/etc, a ``..`` escape, a symlink escape) and an edge's work
directory. The secrets in them are write-only and read back hidden.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.agent.instances import vet
from netfate.model.secrets import HIDDEN, is_secret_key
from netfate.orchestrator.app import Settings, create_app
from netfate.services.streaming import SERVICE as STREAMING
from netfate.services.streaming import recordings
from netfate.vnf import registry
from netfate.vnf.streaming import schemas
from streaming_configs import (
    ACQ,
    CONTENT,
    EDGE,
    FLOW,
    RELAY,
    ROUTE,
    SECRET,
    STORAGE,
    documented,
    storage,
)
from waiting import until

V1 = "/api/v1/streaming"
FUNCTIONS = (ACQ, RELAY, EDGE, STORAGE)
# The provider at pe1, viewers at pe4 and pe5 (no neighbours: each gets its streamer),
# their paths part at c2 (a core with compute: a LAN): a forwarder there.
TOPO: dict[str, Any] = {
    "name": "schemas",
    "nodes": {
        **{f"pe{i}": {"kind": "pe", "lan": f"10.{60 + i}.0.0/24", "cpu": 2} for i in (1, 4, 5)},
        "c1": {"kind": "core", "cpu": 2},
        "c2": {"kind": "core", "cpu": 2, "lan": "10.70.0.0/24"},
        "c3": {"kind": "core"},
    },
    "hosts": {"cam": {"node": "pe1", "ip": "10.61.0.10"}},
    "links": [
        {"a": "pe1", "b": "c1"}, {"a": "c1", "b": "c2"},
        {"a": "pe4", "b": "c2"}, {"a": "c2", "b": "c3"}, {"a": "pe5", "b": "c3"},
    ],
}  # fmt: skip


@pytest.fixture
def images(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    (d / "etc").symlink_to("/etc")  # a directory symlink out
    (tmp_path / "outside").mkdir()
    (d / "elsewhere").symlink_to(tmp_path / "outside")
    return d


@pytest.fixture
def api(tmp_path: Path, images: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv(recordings.VOLUME_ENV, str(images / "streaming"))
    settings = Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600,
                        image_dir=images)  # fmt: skip
    with authn.client(create_app(settings, services=[STREAMING])) as c:
        r = c.put("/api/v1/topology", json=TOPO)
        assert r.status_code == 200, r.text
        for n in TOPO["nodes"]:
            r = c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:{n}"})
            assert r.status_code == 200, r.text
        yield c


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def desired(c: TestClient) -> list[dict[str, Any]]:
    """Every instance spec the agents are told to run (configs unredacted: theirs)."""
    out: list[dict[str, Any]] = []
    for n in TOPO["nodes"]:
        out += ok(c.get(f"/api/v1/agents/{n}/desired"))["instances"]
    return out


def test_every_config_the_service_builds_passes_the_agents_check(
    api: TestClient, images: Path
) -> None:
    ok(api.post(f"{V1}/providers", json={"name": "uni", "title": "U", "pe": "pe1",
                                         "source": "10.61.0.10"}), 201)  # fmt: skip
    body = {"provider": "uni", "title": "Lecture", "start": time.time() + 60, "duration_s": 600}
    eid = ok(api.post(f"{V1}/events", json=body), 201)["id"]
    ok(api.post(f"{V1}/recordings", json={"user": "alice@example.org", "event": eid}), 201)
    cid = ok(api.post(f"{V1}/events/{eid}/start"))["content"]["id"]
    for client, pe in (("alice", "pe4"), ("bob", "pe5")):
        ok(api.post(f"{V1}/contents/{cid}/viewers", json={"user": client, "pe": pe}))

    def all_four() -> bool:
        return {s["function"] for s in desired(api)} >= set(FUNCTIONS)

    assert until(all_four), [(s["name"], s["function"]) for s in desired(api)]
    for spec in desired(api):
        vet(spec, images)  # the agent's own check, with its --image-dir
    (sto,) = [s for s in desired(api) if s["function"] == STORAGE]
    assert sto["config"]["volume"] == str(images / "streaming")
    # Another node's directory refuses the same volume.
    with pytest.raises(ValidationError, match="below"):
        vet(sto, images / "other")


def test_the_service_volume_defaults_below_the_default_image_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(recordings.VOLUME_ENV, raising=False)
    assert registry.below(recordings.volume(), registry.DEFAULT_IMAGE_DIR)


def create(c: TestClient, descriptor: str, config: dict[str, Any]) -> Any:
    return c.post("/api/v1/instances", json={"descriptor": descriptor, "node": "pe1",
                                             "config": config})  # fmt: skip


def outside(images: Path) -> list[str]:
    return [
        "/etc",
        "/",
        f"{images}/../outside",  # `..` out
        f"{images}/streaming/../../outside",
        f"{images}/etc",  # a symlink to /etc
        f"{images}/etc/cron.d",  # through it
        f"{images}/elsewhere/rec",  # a symlink to a directory beside the images
        f"{images}",  # the directory itself
        "streaming",  # relative: wherever the function runs
    ]


def test_a_volume_outside_the_image_directory_is_refused_naming_it(
    api: TestClient, images: Path
) -> None:
    for volume in outside(images):
        r = create(api, "streaming-storage", storage(volume))
        assert r.status_code == 422, (volume, r.text)
        assert [e["loc"] for e in r.json()["errors"]] == [["body", "config", "volume"]], volume
        with pytest.raises(ValidationError) as e:
            vet({"function": STORAGE, "config": storage(volume)}, images)
        assert [err["loc"] for err in e.value.errors()] == [("volume",)], volume
    assert api.get("/api/v1/instances").json() == []
    r = create(api, "streaming-storage", storage(f"{images}/streaming"))
    assert r.status_code == 201, r.text


def test_a_reconfigured_volume_outside_is_refused_and_changes_nothing(
    api: TestClient, images: Path
) -> None:
    iid = ok(create(api, "streaming-storage", storage(f"{images}/streaming")), 201)["id"]
    before = ok(api.get("/api/v1/agents/pe1/desired"))
    for volume in ("/etc", f"{images}/etc", f"{images}/../outside"):
        r = api.patch(f"/api/v1/instances/{iid}", json={"config": storage(volume)})
        assert r.status_code == 422, r.text
    assert ok(api.get("/api/v1/agents/pe1/desired")) == before


def test_an_edge_work_directory_outside_is_refused(api: TestClient, images: Path) -> None:
    edge = {"contents": [{"id": "X", "port": 7000}]}
    for work in outside(images):
        r = create(api, "streaming-edge", {**edge, "work_dir": work})
        assert [e["loc"] for e in r.json()["errors"]] == [["body", "config", "work_dir"]], work
    ok(create(api, "streaming-edge", {**edge, "work_dir": f"{images}/edge"}), 201)
    ok(create(api, "streaming-edge", edge), 201)  # its own temporary directory


def valid(images: Path) -> dict[str, list[dict[str, Any]]]:
    """The configurations each function's docstring shows, and small ones."""
    doc = documented(images)
    return {
        ACQ: [doc[ACQ], {"flows": [{"id": "f2", "protocol": "rtmp", "port": 1935,
                                    "event": None}]}, {}],
        RELAY: [doc[RELAY], {"routes": [ROUTE], "rtcp": False}],
        EDGE: [doc[EDGE], {"contents": [], "join": {"secret": None}, "work_dir": None}],
        STORAGE: [doc[STORAGE], {"volume": f"{images}/a/b/c"}],
    }  # fmt: skip


def test_the_documented_configs_pass(images: Path) -> None:
    for fn, configs in valid(images).items():
        for cfg in configs:
            assert registry.check_config(fn, cfg, images) == cfg


def _with(cfg: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``cfg`` with the value at ``path`` replaced."""
    out = copy.deepcopy(cfg)
    at: Any = out
    for k in path[:-1]:
        at = at[k]
    at[path[-1]] = value
    return out


BAD: list[tuple[str, int, tuple[str | int, ...], Any]] = [
    (ACQ, 0, ("flows", 0, "protocol"), "webrtc"),
    (ACQ, 0, ("flows", 0, "port"), 70000),
    (ACQ, 0, ("flows", 0, "passphrase"), "short"),
    (ACQ, 0, ("flows", 0, "passphrase"), "p" * 80),
    (ACQ, 0, ("flows", 0, "latency_ms"), 10),
    (ACQ, 0, ("flows", 0, "id"), "../x"),
    (ACQ, 0, ("flows", 0, "sources"), ["10.1.0.7"] * 65),
    (ACQ, 0, ("flows", 0, "next_hops", 0, "host"), "example.org"),
    (ACQ, 0, ("flows", 0, "armed_until"), float("inf")),
    (ACQ, 0, ("flows", 0, "state"), "paused"),
    (ACQ, 0, ("flows",), [FLOW] * 33),
    (ACQ, 0, ("bind",), "0.0.0.0.0"),
    (ACQ, 0, ("refusal_quiet_s",), -1),
    (ACQ, 0, ("source_timeout",), "10"),  # strict: a string is not a number
    (ACQ, 0, ("junk",), 1),
    (RELAY, 0, ("routes", 0, "port"), 65535),  # RTCP would be 65536
    (RELAY, 0, ("routes",), [ROUTE] * 65),
    (RELAY, 0, ("rtcp",), "yes"),
    (EDGE, 0, ("contents", 0, "renditions", 0, "height"), 4320),
    (EDGE, 0, ("contents", 0, "renditions", 0, "video_kbps"), 10),
    (EDGE, 0, ("contents", 0, "renditions"), [CONTENT["renditions"][0]] * 5),  # type: ignore[index]
    (EDGE, 0, ("contents", 0, "viewers", 0, "port"), 0),
    (EDGE, 0, ("hls", "format"), "dash"),
    (EDGE, 0, ("hls", "list_size"), 100),
    (EDGE, 0, ("join", "secret"), "short"),
    (EDGE, 0, ("join", "max_viewers"), 10**6),
    (EDGE, 0, ("contents",), [CONTENT] * 17),
    (STORAGE, 0, ("quota", "users"), {"../x": 5}),
    (STORAGE, 0, ("quota", "users"), {f"u{i}": 1 for i in range(1025)}),
    (STORAGE, 0, ("quota", "default_bytes"), -1),
    (STORAGE, 0, ("recordings", 0, "state"), "paused"),
    (STORAGE, 0, ("recordings",), [{"id": "r", "user": "u", "content": "X"}] * 257),
    (STORAGE, 0, ("segment_s",), 0.1),
    (STORAGE, 0, ("secret",), "s" * 300),
    (STORAGE, 0, ("volume",), "/" + "v" * 2000),
]


@pytest.mark.parametrize(("fn", "i", "path", "value"), BAD)
def test_a_value_out_of_range_is_refused_naming_its_field(
    images: Path, fn: str, i: int, path: tuple[str | int, ...], value: Any
) -> None:
    cfg = _with(valid(images)[fn][i], path, value)
    with pytest.raises(ValidationError) as e:
        registry.check_config(fn, cfg, images)
    # Every error is at that field (or below it: a list's entries, a dict's keys).
    assert {tuple(err["loc"][: len(path)]) for err in e.value.errors()} == {path}


@pytest.mark.parametrize(
    ("fn", "cfg", "message"),
    [
        (ACQ, {"flows": [{**FLOW, "protocol": "rtp"}]}, "only SRT flows"),
        (ACQ, {"flows": [{**FLOW, "passphrase": None, "stream_secret": "k" * 9}]}, "RTMP"),
        (ACQ, {"flows": [FLOW, FLOW]}, "appears twice"),
        (ACQ, {"ports": {"first": 5000, "last": 6000}}, "must hold"),
        (ACQ, {"flows": [FLOW], "ports": {"first": 6000, "last": 6010}}, "outside the block"),
        (ACQ, {"flows": [{**FLOW, "armed_until": 1767000000}]}, "not after"),
        (RELAY, {"routes": [ROUTE, {**ROUTE, "id": "Y", "port": 6001}]}, "appears twice"),
        (EDGE, {"contents": [{**CONTENT, "viewers": [{"host": "10.0.0.1", "port": 5004,
                                                       "rendition": "high"}]}]}, "no rendition"),
        (EDGE, {"contents": [CONTENT], "http_port": 7001}, "a content's port"),
        (EDGE, {"hls": {"format": "ts", "low_latency": True}}, "needs format fmp4"),
        (STORAGE, {"contents": [{"id": "X", "port": 8081}]}, "a content's port"),
    ],
)  # fmt: skip
def test_what_ties_fields_together_is_checked_as_the_function_does(
    images: Path, fn: str, cfg: dict[str, Any], message: str
) -> None:
    if fn == STORAGE:
        cfg = {"volume": f"{images}/rec", **cfg}
    with pytest.raises(ValidationError, match=message):
        registry.check_config(fn, cfg, images)


def test_the_api_refuses_a_bad_config_of_each_function(api: TestClient) -> None:
    for desc, cfg, field in (
        ("streaming-acquirer", {"flows": [{**FLOW, "port": 0}]}, ["flows", 0, "port"]),
        ("streaming-forwarder", {"routes": [], "bind": "nowhere"}, ["bind"]),
        ("streaming-edge", {"hls": {"segment_s": 60}}, ["hls", "segment_s"]),
        ("streaming-storage", {"volume": "/etc", "junk": 1}, None),
    ):
        r = create(api, desc, cfg)
        assert r.status_code == 422, r.text
        locs = [e["loc"] for e in r.json()["errors"]]
        if field is not None:
            assert locs == [["body", "config", *field]], locs
        else:
            assert sorted(locs) == [["body", "config", "junk"], ["body", "config", "volume"]]
    assert api.get("/api/v1/instances").json() == []


def _props(js: Any, found: dict[str, bool]) -> None:
    """Every property name in a JSON Schema -> whether it is marked write-only."""
    if isinstance(js, dict):
        for name, sub in (js.get("properties") or {}).items():
            found[name] = found.get(name, False) or bool(sub.get("writeOnly"))
        for v in js.values():
            _props(v, found)
    elif isinstance(js, list):
        for v in js:
            _props(v, found)


def test_secrets_are_write_only_and_read_hidden(api: TestClient, images: Path) -> None:
    found: dict[str, bool] = {}
    for model in (schemas.AcquirerConfig, schemas.RelayConfig, schemas.EdgeConfig,
                  schemas.StorageConfig):  # fmt: skip
        _props(model.model_json_schema(), found)
    marked = {k for k, w in found.items() if w}
    # origin_secret: a streamer's grant to read the storage.
    assert marked == {"passphrase", "stream_secret", "secret", "origin_secret"}
    # Marked exactly where the API hides a value: the key is a secret key.
    assert {k for k in found if is_secret_key(k)} == marked
    doc = api.get("/api/v1/openapi.json").json()
    assert doc["x-function-configs"][STORAGE] == {
        "$ref": "#/components/schemas/FnConfig.StorageConfig"
    }
    assert doc["components"]["schemas"]["FnConfig.EdgeJoin"]["properties"]["secret"]["writeOnly"]
    # Read back: the passphrase and the key are hidden, the rest is as written.
    acq = ok(create(api, "streaming-acquirer", {"flows": [FLOW]}), 201)
    assert acq["config"]["flows"][0]["passphrase"] == HIDDEN
    key = "an-rtmp-stream-key"
    rtmp = {"id": "f2", "protocol": "rtmp", "port": 1935, "stream_secret": key}
    acq2 = ok(create(api, "streaming-acquirer", {"flows": [rtmp]}), 201)
    assert acq2["config"]["flows"][0]["stream_secret"] == HIDDEN
    (spec,) = [s for s in desired(api) if s["id"] == acq2["id"]]
    assert spec["config"]["flows"][0]["stream_secret"] == key  # the agent gets it
    sto = ok(create(api, "streaming-storage", storage(f"{images}/rec", secret=SECRET)), 201)
    got = ok(api.get(f"/api/v1/instances/{sto['id']}"))["config"]
    assert got["secret"] == HIDDEN and got["volume"] == f"{images}/rec"
    (spec,) = [s for s in desired(api) if s["id"] == sto["id"]]
    assert spec["config"]["secret"] == SECRET  # the agent gets it
