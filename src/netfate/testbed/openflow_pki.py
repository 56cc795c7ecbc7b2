"""The certificates of a secure SDN run (`testbed up --sdn --secure`): OpenFlow over TLS.

A CA of the run's own (vnf/pki.py) issues two leaves in `<run>/pki/openflow/`:
the controller's (serverAuth) and the switches' (clientAuth; one vswitchd serves
every bridge of the run, and Open vSwitch has one key per daemon). The CA's key
lies apart, in `<run>/pki/openflow-ca-key/` (0700, the key 0600), and is used only
here, while the run is built; every key is 0600.

The controller accepts only a switch whose certificate this CA signed
(sdn/tls.py); the switches accept only a controller whose certificate it signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netfate.vnf.pki import CertificateAuthority
from netfate.vnf.tls import TlsFiles

CONTROLLER = "controller"
SWITCH = "switches"


@dataclass(frozen=True)
class OpenflowPki:
    controller: TlsFiles
    switch: TlsFiles


def directory(run_dir: Path) -> Path:
    return run_dir / "pki" / "openflow"


def make(run_dir: Path, name: str) -> OpenflowPki:
    """A new CA for run `name` and its two leaves (made again if they exist)."""
    d = directory(run_dir)
    d.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = CertificateAuthority(d, name=f"netfate run {name} OpenFlow CA")
    return OpenflowPki(
        controller=ca.issue(CONTROLLER, usage="server", names=("127.0.0.1",)),
        switch=ca.issue(SWITCH, usage="client"),
    )


def files(run_dir: Path) -> OpenflowPki:
    """Where make() put them."""
    d = directory(run_dir)
    return OpenflowPki(TlsFiles.in_directory(d, CONTROLLER), TlsFiles.in_directory(d, SWITCH))
