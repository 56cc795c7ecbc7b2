"""The agent refuses, before it imports or builds anything, a function the registry
does not hold and a storage image outside its --image-dir, whatever the
orchestrator's desired state says (issue 12, section 4: defence in depth).

Root tier: the supervisor builds namespaces and the zygote joins them. The canary
(tests/canary.py) is importable by every process here (PYTHONPATH): only the
registry keeps it out.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from canary import Canary, canary
from netfate.agent.instances import Instance, InstanceError, NodeContext, Zygote
from netfate.agent.supervisor import Supervisor
from netfate.host import netns

TLS = {"ca": "/pki/ca.pem", "cert": "/pki/hrh.pem", "key": "/pki/hrh.key"}


@pytest.fixture
def bird(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Canary:
    c = canary(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The zygote and `python -m netfate.vnf` find it too (and the netfate under test).
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    )
    return c


class NoSwitch:
    """No Open vSwitch here: the refusals come before any port is added."""

    def add_port(self, *_a: Any, **_k: Any) -> None:
        raise AssertionError("a refused instance got a switch port")

    def del_port(self, *_a: Any, **_k: Any) -> None:
        pass


@pytest.fixture
def ctx(tmp_path: Path, run_prefix: str) -> NodeContext:
    images = tmp_path / "images"
    images.mkdir()
    return NodeContext(
        node="n1", prefix=run_prefix, state_dir=tmp_path / "agent", bridge=f"{run_prefix}-n1",
        vsctl=NoSwitch(), image_dir=images,  # type: ignore[arg-type]
    )  # fmt: skip


def spec(iid: str, function: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"id": iid, "name": iid, "function": function, "ip": "10.9.0.2/24",
            "gateway": "10.9.0.1", "mac": "02:00:00:00:00:02", "config": config,
            "cpu": 0.1, "memory_mb": 64, "role": "active", "migration": None}  # fmt: skip


def start(ctx: NodeContext, s: dict[str, Any]) -> str:
    """Why the supervisor refused ``s``; nothing of it was built."""
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(ctx, asyncio.Event())
    asyncio.run(sup.start(s))
    assert s["id"] not in sup.instances
    assert not netns.exists(Instance(spec=s, ctx=ctx).netns)
    assert not list(ctx.state_dir.glob(f"{s['id']}*"))
    return sup.failed[s["id"]]


def test_the_agent_never_imports_a_function_outside_the_registry(
    ctx: NodeContext, bird: Canary
) -> None:
    why = start(ctx, spec("i-0000c0de", bird.ref, {}))
    assert "not a registered function" in why
    assert not bird.imported()


def test_the_agent_refuses_an_image_outside_its_image_directory(ctx: NodeContext) -> None:
    for k, image in enumerate(("/etc/shadow", f"{ctx.image_dir}/../x.img")):
        config = {"devices": [{"kind": "storage", "image": image}], "tls": TLS}
        why = start(ctx, spec(f"i-0000bad{k}", "netfate.vnf.usbip_host.tls:TlsUsbipHost", config))
        assert "image" in why and str(ctx.image_dir) in why, why


@pytest.fixture
def zygote(tmp_path: Path, bird: Canary) -> Iterator[Zygote]:
    z = Zygote(tmp_path)
    assert z.start()
    yield z
    z.stop()


def test_the_zygote_never_imports_a_function_outside_the_registry(
    zygote: Zygote, bird: Canary, tmp_path: Path, run_prefix: str
) -> None:
    name = f"{run_prefix}-zc"
    netns.ensure(name)
    try:
        argv = [bird.ref, "--instance", "i-0000c0de", "--control", str(tmp_path / "c.sock"),
                "--config", json.dumps({})]  # fmt: skip
        with pytest.raises(InstanceError, match="not a registered function"):
            zygote.fork(name, argv, tmp_path / "i.log", "i-0000c0de")
        assert zygote.usable()  # refused, and still serving
    finally:
        netns.remove(name)
    assert not bird.imported()


def test_an_agent_restarted_does_not_adopt_what_it_would_not_start(
    ctx: NodeContext, bird: Canary
) -> None:
    """A previous run left an instance running whose function is not (or no longer) in
    the registry: the restarted agent stops it and reports it failed instead of taking
    it over. The process stands in for it: its command line names the instance."""
    import subprocess
    import sys

    iid = "i-0000ad0b"
    inst = Instance(spec=spec(iid, bird.ref, {}), ctx=ctx)
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    netns.ensure(inst.netns)
    # alive() checks the command line names the instance.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", iid])
    try:
        inst.pid = proc.pid
        inst.save()
        sup = Supervisor(ctx, asyncio.Event())
        asyncio.run(sup.adopt())
        assert iid not in sup.instances
        assert "not a registered function" in sup.failed[iid]
        assert proc.wait(timeout=10) != 0  # stopped (SIGKILL: it answers no control call)
        assert not netns.exists(inst.netns)
        assert not list(ctx.state_dir.glob(f"{iid}*"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if netns.exists(inst.netns):
            netns.remove(inst.netns)
    assert not bird.imported()
