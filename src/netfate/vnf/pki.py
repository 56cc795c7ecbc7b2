"""A tiny certificate authority: the HRH tunnels' mutual TLS around USB/IP, and any
other TLS end of the platform that wants one (the orchestrator's HTTPS in tests).

It lives here, below the services, so that the platform can use it without one
(it was the USB/IP service's ``pki.py``).

USB/IP has no authentication or encryption of its own, and what it carries
(sensor readings, a pendrive's files) comes from inside a home.  Each HRH and
each ISP function gets a certificate from one CA; both ends require the
other's.  The client certificate's common name is the identity the HRH's
allow-list matches (``AllowRule.identities``).

This module only makes files (keys 0600, named as ``netfate.vnf.tls.TlsFiles``
says); the TLS contexts are built in ``netfate.vnf.usbip_host.tls`` and
``netfate.vnf.usbip_client.tls``.
Keys are ECDSA P-256: small, fast to make in tests, accepted by TLS 1.3.

Each leaf is for one end only: a server certificate (the HRH) carries the
serverAuth extended key usage, a client certificate (an ISP function) clientAuth,
and OpenSSL refuses a certificate presented for the other end. The CA's key never
lies among the leaves: the leaf directory (``ca.pem``, ``NAME.pem``, ``NAME.key``)
is what functions are pointed at, and the CA key lives in a directory of its own
(``<dir>-ca-key/ca.key``, 0700 and 0600). A CA key an earlier version left in the
leaf directory is moved there when the CA is opened. The leaf directory holds the
leaves' keys: it is 0700 as well.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from netfate.host.private import private_dir
from netfate.vnf.tls import TlsFiles

VALIDITY = datetime.timedelta(days=365)
Usage = Literal["server", "client"]
USAGES = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that existed keeps its mode through O_CREAT
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA's key signs certificates only; an ECDSA leaf's signs its handshakes only."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def key_directory(directory: Path) -> Path:
    """Where the CA of leaf directory `directory` keeps its key: beside it, not in it."""
    return directory.parent / f"{directory.name}-ca-key"


class CertificateAuthority:
    """A CA whose certificate is ``directory/ca.pem`` and whose key is
    ``key_directory(directory)/ca.key``; ``issue`` makes leaves in ``directory``."""

    def __init__(self, directory: Path, name: str = "netfate HRH CA") -> None:
        self.dir = private_dir(directory)
        self.key_dir = private_dir(key_directory(directory))
        self.cert_path = directory / "ca.pem"
        key_path = self.key_dir / "ca.key"
        if (directory / "ca.key").exists() and not key_path.exists():
            os.replace(directory / "ca.key", key_path)  # an earlier layout: out of the leaves
        if self.cert_path.exists() and key_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path}: not an EC key")
            self._key = key
            self._cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            return
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                _key_usage(ca=True),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        _write_key(key_path, self._key)
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, usage: Usage, names: tuple[str, ...] = ()) -> TlsFiles:
        """A certificate for ``common_name``, valid for one end of a TLS connection:
        ``usage`` "server" (serverAuth) or "client" (clientAuth).

        ``names`` become subjectAltNames (IP addresses or DNS names); the CN is
        always one too, so a client can check the HRH by its name.
        """
        if usage not in USAGES:
            raise ValueError(f"usage must be 'server' or 'client', not {usage!r}")
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = [x509.DNSName(common_name)]
        for n in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(
                _key_usage(ca=False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([USAGES[usage]]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        files = TlsFiles.in_directory(self.dir, common_name)
        _write_key(files.key, key)
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return files
