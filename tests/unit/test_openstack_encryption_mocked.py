"""Encryption at rest on OpenStack, checked by the OpenStack target through cinder's API with
migrate's own client, against a keystone and cinder stand-in over real TLS on loopback: a
volume the plan wants encrypted passes only when it is of the estate's encrypted volume type
and that type encrypts (provider luks or plain); everything else is refused naming the
volume."""

from __future__ import annotations

import copy
import ssl
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from migrate.core.errors import EnvironmentNotReady
from migrate.orchestrate import pipeline
from migrate.rehearsal.exchange import pki
from migrate.targets import openstack_api
from migrate.targets.contract import read_instances
from migrate.targets.openstack_volumes import check_encryption, provider_kind
from tests.json_http import JsonHandler
from tests.unit.test_openstack_api import auth
from tests.unit.test_targets import ED25519, OPENSTACK_INSTANCE, as_openstack

PROJECT = "p-0001"
BOOT = "1a7e0c1e-0000-4d8a-9a57-0c3f0e6f7a10"
DATA = OPENSTACK_INSTANCE["volumes"][0]["serial"]
LUKS_SPEC = {"provider": "luks", "cipher": "aes-xts-plain64", "key_size": 256,
             "control_location": "front-end", "volume_type_id": "t-luks"}


class Cloud:
    """What the stand-in's cinder holds; a test changes it."""

    def __init__(self) -> None:
        self.types = {"t-luks": {"name": "tc-luks", "encryption": dict(LUKS_SPEC)},
                      "t-plain": {"name": "ceph", "encryption": {}}}
        self.volumes = {BOOT: {"type": "t-luks", "key": "00000000-0000-0000-0000-000000000000"},
                        DATA: {"type": "t-luks", "key": "00000000-0000-0000-0000-000000000000"}}
        self.admin = True  # cinder shows a type's encryption spec to admins only
        self.asked: list[str] = []


class Handler(JsonHandler):
    cloud = Cloud()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v3/auth/tokens":
            return self._send(404, {})
        port = self.server.server_address[1]
        catalog = [{"type": "volumev3", "endpoints": [
            {"interface": "public", "region_id": "RegionOne",
             "url": f"https://127.0.0.1:{port}/volume/v3/{PROJECT}"}]}]
        self._send(201, {"token": {"catalog": catalog}}, {"X-Subject-Token": "token-1"})

    def do_GET(self) -> None:
        cloud = type(self).cloud
        prefix = f"/volume/v3/{PROJECT}"
        if self.headers["X-Auth-Token"] != "token-1" or not self.path.startswith(prefix):
            return self._send(401, {"error": "no"})
        path = self.path.removeprefix(prefix)
        cloud.asked.append(path)
        parts = path.strip("/").split("/")
        if parts == ["types"]:
            return self._send(200, {"volume_types": [{"id": i, "name": t["name"]}
                                                     for i, t in cloud.types.items()]})
        if len(parts) == 3 and parts[0] == "types" and parts[2] == "encryption":
            if not cloud.admin:
                return self._send(403, {"forbidden": {"message": "Policy doesn't allow"}})
            return self._send(200, cloud.types[parts[1]]["encryption"])
        if parts[0] == "volumes" and len(parts) in (2, 3) and parts[1] in cloud.volumes:
            volume = cloud.volumes[parts[1]]
            kind = cloud.types[volume["type"]]
            if len(parts) == 2:
                return self._send(200, {"volume": {
                    "id": parts[1], "volume_type": kind["name"], "status": "in-use",
                    "encrypted": bool(kind["encryption"] and volume["key"])}})
            if parts[2] == "encryption":
                spec = {k: v for k, v in kind["encryption"].items() if k != "volume_type_id"}
                return self._send(200, {"encryption_key_id": volume["key"], **spec}
                                  if spec else {"encryption_key_id": None})
        self._send(404, {"itemNotFound": {"message": "not found"}})


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    ca = pki.make_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    cert = pki.issue_server_cert(ca, tmp_path / "server.pem", tmp_path / "server.key",
                                 ip_addresses=["127.0.0.1"])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert_path, cert.key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    Handler.cloud = Cloud()
    entry = {"auth": auth(server.server_address[1]), "cacert": str(ca.cert_path),
             "region_name": "RegionOne"}
    path = tmp_path / "clouds.yaml"  # the example estate's entry, and one for the checks
    path.write_text(yaml.safe_dump({"clouds": {"egov": entry, "egov-cloud": entry}}))
    monkeypatch.setenv(openstack_api.CONFIG_ENV, str(path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Handler.cloud
    server.shutdown()
    server.server_close()


def outputs(boot: bool = True) -> dict:
    """The system stack's instances output as stacks/openstack exports it (host keys pinned)."""
    found = copy.deepcopy(OPENSTACK_INSTANCE)
    found["volumes"][0]["volume_id"] = DATA
    if boot:
        found["boot_volume"] = {"volume_id": BOOT, "encryption": {
            "encrypted": True, "by": "cinder volume type tc-luks"}}
    return {"db": found}


def checked(wanted_type: str = "tc-luks", stack_outputs: dict | None = None) -> dict:
    instances = read_instances("sys-mzj-shjz", stack_outputs or outputs())
    return check_encryption(openstack_api.Session.for_cloud("egov"), "sys-mzj-shjz",
                            instances, wanted_type)


def test_volumes_of_an_encrypting_type_pass_with_what_cinder_reported(cloud: Cloud) -> None:
    found = checked()["db"]
    (data,) = found.volumes
    for encryption, volume_id in ((data.encryption, DATA),
                                  (found.boot_volume.encryption, BOOT)):
        assert encryption.encrypted
        assert encryption.by == ("cinder volume type tc-luks (luks, aes-xts-plain64, 256 bits, "
                                 "on the hypervisor)")
        report = encryption.checked
        assert report["volume_id"] == volume_id and report["volume_encrypted"]
        assert report["key_held"] is True
        assert report["spec_from"] == "GET /types/t-luks/encryption"
        assert report["checked_through"] == "the block-storage API (cinder v3)"
    assert f"/volumes/{DATA}" in cloud.asked and "/types/t-luks/encryption" in cloud.asked


def test_an_unencrypted_volume_type_is_refused_naming_the_volume(cloud: Cloud) -> None:
    cloud.types["t-luks"]["encryption"] = {}  # the type exists and encrypts nothing
    with pytest.raises(EnvironmentNotReady) as caught:
        checked()
    message = caught.value.message
    assert message.startswith("stack sys-mzj-shjz: 2 volume(s) the plan wants encrypted are "
                              "not encrypted by the cloud: ")
    assert "db:pgdata: volume type tc-luks has no encryption (provider: none)" in message
    assert "db:boot: volume type tc-luks has no encryption" in message
    assert "give volume type tc-luks a LUKS encryption" in caught.value.hint


def test_a_volume_of_another_type_is_refused(cloud: Cloud) -> None:
    cloud.volumes[DATA]["type"] = "t-plain"
    with pytest.raises(EnvironmentNotReady, match=f"db:pgdata: volume {DATA} is of volume "
                                                  "type ceph, not tc-luks"):
        checked()


def test_a_volume_made_before_its_type_encrypted_is_refused(cloud: Cloud) -> None:
    cloud.volumes[BOOT]["key"] = None
    with pytest.raises(EnvironmentNotReady, match=f"db:boot: volume {BOOT} of type tc-luks is "
                                                  "not encrypted itself"):
        checked()


def test_a_missing_volume_is_refused(cloud: Cloud) -> None:
    del cloud.volumes[DATA]
    with pytest.raises(EnvironmentNotReady, match=f"db:pgdata: volume {DATA} does not exist"):
        checked()


def test_without_admin_the_volumes_own_encryption_metadata_is_read(cloud: Cloud) -> None:
    cloud.admin = False
    report = checked()["db"].volumes[0].encryption.checked
    assert report["provider"] == "luks" and report["key_size"] == 256
    assert report["spec_from"].startswith(f"GET /volumes/{DATA}/encryption (the type's own "
                                          "spec is shown to admins only)")
    cloud.types["t-luks"]["encryption"] = {}
    with pytest.raises(EnvironmentNotReady, match="volume type tc-luks has no encryption"):
        checked()


def test_outputs_without_the_boot_volume_are_refused(cloud: Cloud) -> None:
    with pytest.raises(EnvironmentNotReady, match="db: the stack's outputs do not name the boot "
                                                  "volume"):
        checked(stack_outputs=outputs(boot=False))


@pytest.mark.parametrize(("provider", "kind"), [
    ("luks", "luks"), ("luks2", "luks"), ("nova.volume.encryptors.luks.LuksEncryptor", "luks"),
    ("plain", "plain"), ("CryptsetupEncryptor", "plain"), (None, None), ("", None)])
def test_providers(provider, kind) -> None:
    assert provider_kind(provider) == kind


def test_the_stages_reach_an_instance_only_once_cinder_says_it_encrypts(
        cloud: Cloud, estate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    as_openstack(estate)
    held = {"instances": outputs()}
    monkeypatch.setattr(pipeline, "stack_outputs", lambda _state, _target, _stack: held)
    opened = pipeline.open_estate(estate)
    wanted = opened.settings.cloud.openstack.encrypted_volume_type
    cloud.types["t-luks"]["name"] = wanted
    assert pipeline.provisioned_targets(pipeline.context_of(opened), "wjw-fybj") == {
        "db": {"address": "10.20.1.11", "host_key": ED25519}}
    cloud.types["t-luks"]["encryption"] = {}
    with pytest.raises(EnvironmentNotReady, match=f"db:pgdata: volume type {wanted} has no "
                                                  "encryption"):
        pipeline.provisioned_targets(pipeline.context_of(opened), "wjw-fybj")
