"""ExchangeClient(connect_address=...): connect to an address, verify the URL's host name."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.adapters.exchange import ExchangeClient, ExchangeTLSError
from migrate.rehearsal.exchange import pki, server

HOST_NAME = "exchange.sandbox.test"


@pytest.fixture
def named_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A platform on 127.0.0.1 whose certificate names only HOST_NAME (no IP address)."""
    ca = pki.ensure_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    cert = pki.ensure_server_cert(ca, tmp_path / "server.pem", tmp_path / "server.key",
                                  dns_names=[HOST_NAME])
    token = tmp_path / "admin.token"
    token.write_text("t" * 40)
    token.chmod(0o600)
    httpd = server.build_server(server.ServerOptions(
        listen="127.0.0.1:0", db=str(tmp_path / "exchange.db"), cert=str(cert.cert_path),
        key=str(cert.key_path), admin_token_file=str(token)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], ca.cert_path
    finally:
        httpd.shutdown()
        httpd.server_close()
        httpd.platform.store.close()
        thread.join(5)


def test_connect_address_verifies_the_url_host_name(named_server: tuple[int, Path]) -> None:
    port, ca = named_server
    url = f"https://{HOST_NAME}:{port}"
    with ExchangeClient(url, ca_bundle=str(ca), connect_address="127.0.0.1") as client:
        assert client.health()["status"] == "ok"
        assert client.health()["api"] == "v1"  # the kept-alive connection is reused


def test_connect_address_still_refuses_a_name_the_certificate_lacks(
    named_server: tuple[int, Path],
) -> None:
    port, ca = named_server
    url = f"https://other.sandbox.test:{port}"
    client = ExchangeClient(url, ca_bundle=str(ca), connect_address="127.0.0.1")
    with client, pytest.raises(ExchangeTLSError, match="TLS verification"):
        client.health()


def test_connecting_by_address_without_a_name_fails_verification(
    named_server: tuple[int, Path],
) -> None:
    port, ca = named_server
    with ExchangeClient(f"https://127.0.0.1:{port}", ca_bundle=str(ca)) as client, \
            pytest.raises(ExchangeTLSError):
        client.health()
