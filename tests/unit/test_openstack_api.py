"""migrate's own OpenStack calls: the clouds.yaml entry the estate names, and TLS always
verified, against a keystone stand-in that answers over real TLS on loopback."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from migrate.core.errors import EnvironmentNotReady, StageFailed
from migrate.rehearsal.exchange import pki
from migrate.targets import openstack_api
from tests.json_http import JsonHandler


class Keystone(JsonHandler):
    seen: list[dict] = []  # noqa: RUF012 (one server per test)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        if self.path == "/v3/auth/tokens":
            port = self.server.server_address[1]
            answer = {"token": {"catalog": [{"type": "compute", "endpoints": [
                {"interface": "public", "region_id": "RegionOne",
                 "url": f"https://127.0.0.1:{port}/compute/v2.1"}]}]}}
            self._send(201, answer, {"X-Subject-Token": "token-1"})
        elif self.path.endswith("/action") and self.headers["X-Auth-Token"] == "token-1":
            self._send(200, {"output": "[ 1.0] booted\n"})
        else:
            self._send(401, {"error": "no"})


@pytest.fixture
def keystone(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    ca = pki.make_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    cert = pki.issue_server_cert(ca, tmp_path / "server.pem", tmp_path / "server.key",
                                 ip_addresses=["127.0.0.1"])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Keystone)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert_path, cert.key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    Keystone.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], ca.cert_path
    server.shutdown()
    server.server_close()


def write_clouds(tmp_path: Path, monkeypatch, **entry) -> Path:
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"egov": entry}}))
    monkeypatch.setenv(openstack_api.CONFIG_ENV, str(path))
    return path


def auth(port: int) -> dict:
    return {"auth_url": f"https://127.0.0.1:{port}/v3", "username": "ops",
            "password": "not-a-real-password-0000", "project_name": "mzj"}


def test_password_session_with_the_clouds_ca_reads_a_console(keystone, tmp_path, monkeypatch):
    port, ca = keystone
    write_clouds(tmp_path, monkeypatch, auth=auth(port), cacert=str(ca),
                 region_name="RegionOne")
    session = openstack_api.Session.for_cloud("egov")
    assert session.console_output("server-1") == "[ 1.0] booted\n"
    password = Keystone.seen[0]["auth"]["identity"]["password"]["user"]
    assert password["name"] == "ops"


def test_a_certificate_the_system_does_not_trust_is_refused(keystone, tmp_path, monkeypatch):
    port, _ca = keystone
    write_clouds(tmp_path, monkeypatch, auth=auth(port))  # no cacert: the system's CAs
    with pytest.raises(StageFailed, match="CERTIFICATE_VERIFY_FAILED"):
        openstack_api.Session.for_cloud("egov").authenticate()
    assert Keystone.seen == []  # the password never left


def test_an_entry_that_turns_verification_off_is_refused(tmp_path, monkeypatch):
    write_clouds(tmp_path, monkeypatch, auth=auth(1), verify=False)
    with pytest.raises(EnvironmentNotReady, match="turns TLS verification off"):
        openstack_api.Session.for_cloud("egov")


def test_an_unknown_cloud_names_the_file_and_the_clouds_it_has(tmp_path, monkeypatch):
    path = write_clouds(tmp_path, monkeypatch, auth=auth(1))
    with pytest.raises(EnvironmentNotReady) as caught:
        openstack_api.Session.for_cloud("egov-cloud")
    assert str(path) in caught.value.message and "egov" in caught.value.message


def test_application_credentials_are_used_when_the_entry_has_them():
    body = openstack_api._auth_body({"application_credential_id": "id-1",
                                     "application_credential_secret": "s"},
                                    {"auth_type": "v3applicationcredential"})
    assert body["auth"]["identity"]["methods"] == ["application_credential"]
    assert "scope" not in body["auth"]
