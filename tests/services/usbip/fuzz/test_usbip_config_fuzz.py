"""Fuzz the USB/IP functions' configuration schemas (vnf/usbip_host/config.py,
vnf/usbip_client/config.py) and the image-directory check under them
(netfate.vnf.registry.below).

A configuration of any JSON shape is either taken or refused with pydantic's
ValidationError (what the API answers as 422), never another exception; and a path
is below the image directory exactly when an independent walk of it (each symlink
read, ``..`` applied, as the kernel would) ends below that directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from netfate.vnf import registry

HOST = "netfate.vnf.usbip_host.tls:TlsUsbipHost"
CLIENT = "netfate.vnf.usbip_client.tls:TlsSerialImporter"
TLS = {"ca": "/pki/ca.pem", "cert": "/pki/a.pem", "key": "/pki/a.key"}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    ["host", "port", "devices", "allow", "tls", "server", "busid", "link", "retry_seconds",
     "server_name", "kind", "image", "period", "read_only", "x"]
)  # fmt: skip
device = st.fixed_dictionaries(
    {"kind": st.sampled_from(["serial", "storage", "hid", "iso", "usb"])},
    optional={"busid": json_values, "image": json_values, "period": json_values},
)


@given(
    fn=st.sampled_from([HOST, CLIENT]),
    cfg=st.dictionaries(keys, st.one_of(json_values, st.lists(device, max_size=3)), max_size=6),
    with_tls=st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_a_config_is_taken_or_refused_with_a_validation_error(
    fn: str, cfg: dict[str, Any], with_tls: bool
) -> None:
    if with_tls:
        cfg = {**cfg, "tls": TLS}
    try:
        taken = registry.check_config(fn, cfg, Path("/var/lib/netfate/images"))
    except ValidationError as e:
        assert e.errors(), cfg  # each refusal names what is wrong
        return
    assert taken == cfg  # stored as asked: defaults stay the function's to apply


# ------------------------------------------------------------------ the image directory


def walk(path: str, limit: int = 40) -> str:
    """Where ``path`` leads, resolved one component at a time (the oracle)."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = "/" + "/".join([*done, part])
        if os.path.islink(here):
            limit -= 1
            if limit == 0:
                return here  # a loop: nothing below anything
            target = os.readlink(here)
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                done = []
            continue
        done.append(part)
    return "/" + "/".join(done)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/images holds files, a subdirectory and symlinks in and out; root holds a
    file outside, a symlink into images and a loop."""
    root = tmp_path_factory.mktemp("imgs").resolve()
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    (images / "pen.img").write_bytes(b"")
    (images / "sub" / "deep.img").write_bytes(b"")
    (root / "outside.img").write_bytes(b"")
    (images / "out").symlink_to(root)  # a directory symlink out
    (images / "shadow").symlink_to("/etc/shadow")
    (images / "rel").symlink_to("sub")  # a relative symlink staying in
    (images / "up").symlink_to("../outside.img")
    (root / "into").symlink_to(images)  # from outside into the directory
    (root / "loop").symlink_to(root / "loop")
    return root


SEGMENTS = ["images", "sub", "pen.img", "deep.img", "out", "shadow", "rel", "up", "into",
            "loop", "outside.img", "..", ".", "new.img", "etc"]  # fmt: skip


@given(segments=st.lists(st.sampled_from(SEGMENTS), max_size=8))
@example(segments=["loop", "..", "images", "images"])  # a loop taken away by ".." (found)
@example(segments=["new.img", "..", "loop", "..", "images", "pen.img"])
@settings(max_examples=500, deadline=None)
def test_below_agrees_with_a_walk_of_the_path(tree: Path, segments: list[str]) -> None:
    path = "/".join([str(tree), *segments])
    images = str(tree / "images")
    end = walk(path)
    expected = end.startswith(images + "/") and not os.path.islink(end)
    assert registry.below(path, tree / "images") == expected, (path, end)
