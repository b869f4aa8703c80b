"""Sandbox PKI for the exchange platform: a CA and server certificates signed by it.

Runs on the host (uses the ``cryptography`` package). The CA certificate is written where
``exchange.ca_bundle`` points, so the toolkit's client verifies the sandbox platform
like any other. Private keys are written with mode 0600; nothing is ever printed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from migrate.core.errors import MigrateError
from migrate.core.files import write_file_atomically

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


class PkiError(MigrateError):
    """A certificate or key cannot be made, read or written."""


@dataclass(frozen=True)
class CertificateAuthority:
    cert_path: Path
    key_path: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class ServerCertificate:
    cert_path: Path
    key_path: Path
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_after: dt.datetime


def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_ca(
    cert_path: Path | str,
    key_path: Path | str,
    *,
    common_name: str = "migrate sandbox exchange CA",
    days: int = CA_DAYS,
) -> CertificateAuthority:
    """Create a new CA key (0600) and self-signed certificate (0644), replacing any."""
    key = new_private_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "migrate sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    start = now_utc() - dt.timedelta(minutes=5)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = Path(cert_path), Path(key_path)
    write_file_atomically(key_path, key_pem(key), 0o600)
    write_file_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return CertificateAuthority(cert_path, key_path, certificate, key)


def load_ca(cert_path: Path | str, key_path: Path | str) -> CertificateAuthority:
    cert_path, key_path = Path(cert_path), Path(key_path)
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(
            f"cannot load the CA from {cert_path} / {key_path}: {exc}",
            hint="remove both files to make a new CA (servers must then get new certificates)",
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or (
        key.public_key().public_numbers() != certificate.public_key().public_numbers()
    ):
        raise PkiError(f"the CA key {key_path} does not belong to the certificate {cert_path}")
    return CertificateAuthority(cert_path, key_path, certificate, key)


def ensure_ca(
    cert_path: Path | str,
    key_path: Path | str,
    *,
    common_name: str = "migrate sandbox exchange CA",
) -> CertificateAuthority:
    """Load the CA if both files exist and it is not near expiry; otherwise make one."""
    cert_path, key_path = Path(cert_path), Path(key_path)
    if cert_path.exists() and key_path.exists():
        ca = load_ca(cert_path, key_path)
        if ca.certificate.not_valid_after_utc - now_utc() > RENEW_BEFORE:
            return ca
    return make_ca(cert_path, key_path, common_name=common_name)


def parse_ip_addresses(
    values: Iterable[str],
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    addresses = []
    for value in values:
        try:
            addresses.append(ipaddress.ip_address(value))
        except ValueError:
            raise PkiError(f"{value!r} is not an IP address") from None
    return addresses


def issue_server_cert(
    ca: CertificateAuthority,
    cert_path: Path | str,
    key_path: Path | str,
    *,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    days: int = SERVER_DAYS,
) -> ServerCertificate:
    """Issue a TLS server certificate for the names/addresses, signed by ``ca``."""
    dns = tuple(dict.fromkeys(dns_names))
    ips = tuple(dict.fromkeys(str(ip) for ip in parse_ip_addresses(ip_addresses)))
    if not dns and not ips:
        raise PkiError("a server certificate needs at least one DNS name or IP address")
    key = new_private_key()
    start = now_utc() - dt.timedelta(minutes=5)
    not_after = min(start + dt.timedelta(days=days), ca.certificate.not_valid_after_utc)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    alt_names += [x509.IPAddress(ip) for ip in parse_ip_addresses(ips)]
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (dns or ips)[0])]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
            critical=False,
        )
        .sign(ca.private_key, hashes.SHA256())
    )
    cert_path, key_path = Path(cert_path), Path(key_path)
    write_file_atomically(key_path, key_pem(key), 0o600)
    write_file_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return ServerCertificate(cert_path, key_path, dns, ips, not_after)


def server_cert_covers(
    ca: CertificateAuthority,
    cert_path: Path,
    key_path: Path,
    dns_names: Iterable[str],
    ip_addresses: Iterable[str],
) -> bool:
    """True when the pair is from ``ca``, names exactly these, matches its key, is fresh."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        certificate.verify_directly_issued_by(ca.certificate)
        alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    if key.public_key().public_numbers() != certificate.public_key().public_numbers():
        return False
    wanted_dns = set(dns_names)
    wanted_ips = {ipaddress.ip_address(ip) for ip in ip_addresses}
    return (
        set(alt.get_values_for_type(x509.DNSName)) == wanted_dns
        and set(alt.get_values_for_type(x509.IPAddress)) == wanted_ips
        and certificate.not_valid_after_utc - now_utc() > RENEW_BEFORE
    )


def ensure_server_cert(
    ca: CertificateAuthority,
    cert_path: Path | str,
    key_path: Path | str,
    *,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
) -> ServerCertificate:
    """Keep a valid matching certificate and key; otherwise issue a new pair (idempotent)."""
    cert_path, key_path = Path(cert_path), Path(key_path)
    dns, ips = tuple(dns_names), tuple(ip_addresses)
    if server_cert_covers(ca, cert_path, key_path, dns, ips):
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return ServerCertificate(cert_path, key_path, dns, ips, certificate.not_valid_after_utc)
    return issue_server_cert(ca, cert_path, key_path, dns_names=dns, ip_addresses=ips)
