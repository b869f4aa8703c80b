"""Sandbox CA and TLS: the client verifies the platform against exchange.ca_bundle."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from migrate.adapters.exchange import ExchangeClient, ExchangeError, ExchangeTLSError
from migrate.core.errors import MigrateError
from migrate.rehearsal.exchange import pki


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_private_and_certificates_readable(sandbox_pki) -> None:
    assert mode_of(sandbox_pki.server_key) == 0o600
    assert mode_of(sandbox_pki.ca_cert.with_name("ca.key")) == 0o600
    assert mode_of(sandbox_pki.ca_cert) == 0o644


def test_server_certificate_names_and_issuer(sandbox_pki) -> None:
    certificate = x509.load_pem_x509_certificate(sandbox_pki.server_cert.read_bytes())
    ca = x509.load_pem_x509_certificate(sandbox_pki.ca_cert.read_bytes())
    certificate.verify_directly_issued_by(ca)
    alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_ensure_is_idempotent_and_reissues_when_names_change(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    again = pki.ensure_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    assert again.certificate == ca.certificate

    first = pki.ensure_server_cert(ca, tmp_path / "s.pem", tmp_path / "s.key", dns_names=["a"])
    pem = first.cert_path.read_bytes()
    pki.ensure_server_cert(ca, tmp_path / "s.pem", tmp_path / "s.key", dns_names=["a"])
    assert first.cert_path.read_bytes() == pem
    pki.ensure_server_cert(ca, tmp_path / "s.pem", tmp_path / "s.key", dns_names=["a", "b"])
    assert first.cert_path.read_bytes() != pem


def test_bad_inputs_raise_domain_errors(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    with pytest.raises(MigrateError, match="not an IP address"):
        pki.issue_server_cert(ca, tmp_path / "s.pem", tmp_path / "s.key", ip_addresses=["x"])
    with pytest.raises(MigrateError, match="at least one"):
        pki.issue_server_cert(ca, tmp_path / "s.pem", tmp_path / "s.key")
    other = pki.make_ca(tmp_path / "o.pem", tmp_path / "o.key")
    (tmp_path / "ca.key").write_bytes(other.key_path.read_bytes())
    with pytest.raises(MigrateError, match="does not belong"):
        pki.load_ca(tmp_path / "ca.pem", tmp_path / "ca.key")


def test_health_over_tls_verified_against_the_ca(auto_server) -> None:
    with ExchangeClient(auto_server.url, ca_bundle=str(auto_server.ca_cert)) as client:
        health = client.health()
    assert health["status"] == "ok"
    assert health["api"] == "v1"
    assert health["version"]


def test_health_by_ip_address_matches_the_ip_san(auto_server) -> None:
    url = f"https://127.0.0.1:{auto_server.port}"
    with ExchangeClient(url, ca_bundle=str(auto_server.ca_cert)) as client:
        assert client.health()["status"] == "ok"


def test_client_with_another_ca_fails_verification(auto_server, sandbox_pki) -> None:
    client = ExchangeClient(auto_server.url, ca_bundle=str(sandbox_pki.other_ca_cert))
    with client, pytest.raises(ExchangeTLSError, match="TLS verification") as caught:
        client.health()
    assert caught.value.hint and "ca_bundle" in caught.value.hint


def test_client_without_the_ca_fails_verification(auto_server) -> None:
    with ExchangeClient(auto_server.url) as client, pytest.raises(ExchangeTLSError):
        client.health()


def test_client_refuses_plain_http() -> None:
    with pytest.raises(ExchangeError, match="https"):
        ExchangeClient("http://localhost:1")
