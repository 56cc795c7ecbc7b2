"""The files one end of a mutual-TLS connection needs, as a function's config names them.

A CA (``netfate.vnf.pki.CertificateAuthority``) writes them; the
functions that run inside namespaces (the HRH's USB/IP host and its importers)
only read them, so the type lives here, below the services that issue them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    """What one end of a tunnel needs: the CA to trust, its own certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def to_config(self) -> dict[str, str]:
        """As a function's ``tls`` config entry."""
        return {"ca": str(self.ca), "cert": str(self.cert), "key": str(self.key)}

    @classmethod
    def in_directory(cls, directory: Path, name: str) -> TlsFiles:
        """Where :meth:`CertificateAuthority.issue` in ``directory`` puts ``name``'s files."""
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        return cls(directory / "ca.pem", directory / f"{safe}.pem", directory / f"{safe}.key")

    @classmethod
    def from_config(cls, cfg: dict[str, object]) -> TlsFiles:
        try:
            return cls(Path(str(cfg["ca"])), Path(str(cfg["cert"])), Path(str(cfg["key"])))
        except KeyError as e:
            raise ValueError(f"tls config needs ca, cert and key (missing {e})") from None
