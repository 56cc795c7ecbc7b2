"""TLS keys are write-only too (issue 12, section 5): the Home Radio Head demo
(services/usbip/topologies/hrh.yaml) makes a CA and a key per tunnel end (the HRH's,
each ISP function's) and starts the HRH and the climate function with them. While
they run, no key (nor the run's credentials) is found in any GET of the API, the
event log and stream, a log, a file open to others (a key file is 0600, its
directory closed to others), or a process's argument list or environment.
"""

from __future__ import annotations

from pathlib import Path

from netfate.demo.platform import Api
from netfate.services.usbip import demo
from netfate.testbed.builder import Testbed
from secret_scan import Leaks, credentials, scan_api, scan_files, scan_processes


def key_bodies(root: Path) -> dict[str, str]:
    """Every private key the run made, by file: the first line of its PEM body (64
    base64 characters of the key itself)."""
    out = {}
    for f in sorted(root.rglob("*.key")):
        lines = f.read_text().splitlines()
        assert lines[0].startswith("-----BEGIN") and "PRIVATE KEY" in lines[0], f
        out[f"key {f.relative_to(root)}"] = lines[1]
    return out


def test_no_tls_key_in_reads_logs_files_or_argv(run_prefix: str) -> None:
    said: list[str] = []
    with Testbed.up(demo.TOPOLOGY, prefix=run_prefix, sdn=demo.SDN) as tb:
        demo.show(tb, said.append)  # the HRH and the climate function, left running
        assert tb.api_url
        insts = Api(tb.api_url, tb.api_token)("GET", "/instances")
        assert {i["descriptor"] for i in insts if i["state"] == "running"} >= {
            "hrh-usbip-host", "hrh-climate"
        }, insts  # fmt: skip
        keys = key_bodies(tb.state.dir)
        # the CA's, the HRH's and the two ISP functions'
        assert len(keys) == 4 and any("ca-key" in k for k in keys), sorted(keys)
        leaks = Leaks({**keys, **credentials(tb)})
        procs = scan_processes(leaks)
        hrh = next(i for i in insts if i["descriptor"] == "hrh-usbip-host")
        values = {"node": demo.HRH_NODE, "name": demo.HRH_NODE, "iid": hrh["id"]}
        events = scan_api(tb, leaks, values)
        logs = scan_files(tb.state.dir, leaks)
    assert procs > 10 and events
    assert "logs/orchestrator.log" in logs and any(p.startswith("agents/") for p in logs), logs
    assert leaks.found == [], "\n".join(leaks.found)
