"""A certificate authority, a server certificate for 127.0.0.1 and a client certificate, made
here with ``cryptography``, for the mutual-TLS test."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    issuer: str,
    *,
    ca: bool,
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    return builder.sign(ca_key, hashes.SHA256())


def make_certs(folder: Path) -> Certs:
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    pem = serialization.Encoding.PEM
    ca = folder / "ca.pem"
    ca.write_bytes(_issue("enclave test CA", ca_key, ca_key, "enclave test CA", ca=True, usage=None).public_bytes(pem))
    server = folder / "server.pem"
    server.write_bytes(
        _issue("127.0.0.1", server_key, ca_key, "enclave test CA", ca=False, usage=ExtendedKeyUsageOID.SERVER_AUTH).public_bytes(pem)
    )
    client = folder / "client.pem"
    client.write_bytes(
        _issue("enclaved", client_key, ca_key, "enclave test CA", ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH).public_bytes(pem)
    )
    return Certs(ca, server, _write_key(server_key, folder / "server.key"), client, _write_key(client_key, folder / "client.key"))
