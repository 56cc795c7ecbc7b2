"""The configuration of the ISP side's serial importer (function.py, tls.py), as a
schema the API and the agent check before the function starts.

Its ``link`` is replaced by a symlink to the pty by a process running as root, so it
lies below the node's image directory as a storage image does (configs.DevicePath).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from netfate.vnf.configs import DevicePath, FunctionConfig, TlsFilesConfig
from netfate.vnf.usbip_host.config import BusId

HostName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9.:_-]{0,252})$",
        description="An address or a DNS name",
    ),
]


class ImporterConfig(FunctionConfig):
    server: HostName = Field(description="The HRH's USB/IP server")
    port: int = Field(default=3240, ge=1, le=65535)
    busid: BusId = "1-1"
    link: DevicePath | None = Field(
        default=None, description="A symlink to the pty, below the node's --image-dir"
    )
    retry_seconds: float = Field(default=1.0, gt=0, le=3600)


class TlsImporterConfig(ImporterConfig):
    tls: TlsFilesConfig
    server_name: HostName | None = Field(
        default=None, description="The name in the HRH's certificate (default: server)"
    )
