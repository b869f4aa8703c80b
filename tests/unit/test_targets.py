"""The target contract (what every stack program outputs per instance), how a target is found
(entry points of ``migrate.targets``), and the OpenStack target as far as it is built."""

from __future__ import annotations

import copy
import json
import os
import urllib.parse
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from migrate.core import credentials
from migrate.core.errors import EnvironmentNotReady, GuardRefused, InvalidInput, StageFailed
from migrate.orchestrate import pipeline
from migrate.targets import GROUP, load_target, rehearses, surroundings_of, target_of
from migrate.targets.base import CitySurroundings
from migrate.targets.contract import Instance, read_instance, read_instances
from migrate.targets.openstack import OpenStackTarget, scrubbed_environment
from tests.conftest import edit

STACK = "sys-wjw-fybj"
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm3sYd0vYh5u2cVx8WfQm1oJx2P4gQe7rLk9aTt3uNs"
OTHER_ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILY+gEpCe0BCAwH5WPygN4H5u+W7Ev5qBczgJDzYNuLm"
# a blob that names ssh-rsa, presented as ed25519
MISLABELLED = "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQDF"
SANDBOX_INSTANCE = {
    "id": "wjw-fybj-web", "address": "10.20.1.10", "host_keys": [ED25519],
    "host_key": ED25519, "roles": ["web"], "replaces": ["web1"],
    "resource_name": "wjw-fybj-web", "machine": "mg-wjw-fybj-web",
    "known_hosts": f"10.20.1.10 {ED25519}",
    "volumes": [{"name": "data", "mount": "/srv/data", "path": "/var/lib/x/data",
                 "encryption": {"encrypted": False, "by": None,
                                "detail": "not available in the sandbox"}}]}
OPENSTACK_INSTANCE = {
    "id": "6f1c0c1e-1b7e-4d8a-9a57-0c3f0e6f7a10", "address": "10.20.1.11",
    "host_keys": [ED25519, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDF root@db"],
    "roles": ["db"], "replaces": ["db1"], "resource_name": "wjw-fybj-db",
    "volumes": [{"name": "pgdata", "mount": "/var/lib/postgresql",
                 "serial": "0b8e0c6e-55d5-4a4e-8f0e-5a2f4b0e1c11",
                 "encryption": {"encrypted": True, "by": "volume type encrypted (LUKS, on the "
                                "hypervisor)"}}]}


def broken(change: Any) -> dict:
    found = copy.deepcopy(SANDBOX_INSTANCE)
    change(found)
    return found


# ---- the contract -------------------------------------------------------------------


def test_the_sandbox_programs_outputs_satisfy_the_contract() -> None:
    made = read_instance(STACK, "web", SANDBOX_INSTANCE)
    assert made.host_keys == [ED25519] and made.address == "10.20.1.10"
    (volume,) = made.volumes
    assert (volume.path, volume.encryption.encrypted) == ("/var/lib/x/data", False)
    assert made.access() == {"address": "10.20.1.10", "host_key": ED25519}


def test_an_openstack_volume_is_found_by_serial_and_encrypted_by_its_volume_type() -> None:
    made = read_instance(STACK, "db", OPENSTACK_INSTANCE)
    (volume,) = made.volumes
    assert volume.serial and volume.device is None and volume.path is None
    assert volume.encryption.encrypted and volume.encryption.by.startswith("volume type")
    assert made.host_keys[1] == "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDF"  # comment dropped
    assert made.access()["host_key"] == ED25519


def test_state_written_before_the_contract_is_read() -> None:
    """Sandbox stacks provisioned before: one ``host_key``, the encryption as a sentence."""
    older = broken(lambda i: i.pop("host_keys"))
    older["volumes"][0]["encryption"] = "not available in the sandbox"
    made = read_instance(STACK, "web", older)
    assert made.host_keys == [ED25519]
    assert not made.volumes[0].encryption.encrypted
    assert made.volumes[0].encryption.detail == "not available in the sandbox"


@pytest.mark.parametrize(("change", "defect"), [
    (lambda i: i.pop("address"), "address: Field required"),
    (lambda i: i.update(address="10.20.1.999"), "address: not an IP address"),
    (lambda i: i.update(address=["10.20.1.10"]), "address: Input should be a valid string"),
    (lambda i: i.update(host_keys=[], host_key=None), "host_keys: List should have at least 1"),
    (lambda i: i.update(host_keys=["ssh-ed25519"]), "not an SSH public key"),
    (lambda i: i.update(host_keys=["ssh-ed25519 not*base64"]), "not valid base64 key data"),
    (lambda i: i.update(host_keys=[MISLABELLED]), "of type 'ssh-rsa', not 'ssh-ed25519'"),
    (lambda i: i.pop("id"), "id: Field required"),
    (lambda i: i.update(id=""), "id: String should have at least 1 character"),
    (lambda i: i.update(roles="web"), "roles: Input should be a valid list"),
    (lambda i: i.pop("replaces"), "replaces: Field required"),
    (lambda i: i.pop("resource_name"), "resource_name: Field required"),
    (lambda i: i.pop("volumes"), "volumes: Field required"),
    (lambda i: i["volumes"][0].update(mount="srv/data"), "volumes.0.mount: not an absolute"),
    (lambda i: i["volumes"][0].pop("path"), "says neither its device, its serial"),
    (lambda i: i["volumes"][0].pop("encryption"), "volumes.0.encryption: Field required"),
    (lambda i: i["volumes"][0].update(encryption={"encrypted": True}),
     "must say what encrypts it"),
    (lambda i: i["volumes"][0].update(encryption={"encrypted": "yes", "by": "x"}),
     "encryption.encrypted: Input should be a valid boolean"),
])
def test_malformed_outputs_are_refused_naming_stack_and_instance(change, defect) -> None:
    with pytest.raises(StageFailed) as caught:
        read_instance(STACK, "web", broken(change))
    assert caught.value.message.startswith(f"stack {STACK}: instance web has unusable outputs: ")
    assert defect in caught.value.message
    assert caught.value.hint == "provision the system again: the next run restores its outputs"


def test_a_refusal_does_not_echo_the_outputs() -> None:
    with pytest.raises(StageFailed) as caught:
        read_instance(STACK, "web", broken(lambda i: i.update(address="secret-looking-1234")))
    assert "secret-looking-1234" not in caught.value.message


@pytest.mark.parametrize("outputs", [None, [], {}, "web"])
def test_an_instances_output_that_is_no_map_is_refused(outputs) -> None:
    with pytest.raises(StageFailed, match=f"stack {STACK}: its 'instances' output is not a map"):
        read_instances(STACK, outputs)


def test_an_instance_that_is_no_map_is_refused() -> None:
    with pytest.raises(StageFailed, match=f"stack {STACK}: instance db has unusable outputs"):
        read_instances(STACK, {"web": SANDBOX_INSTANCE, "db": "10.20.1.11"})


# ---- targets through the pipeline: from the provisioning state --------------------------


@pytest.fixture
def state_outputs(monkeypatch: pytest.MonkeyPatch) -> dict:
    """What the provisioning state holds for the system's stack (the test fills it)."""
    held: dict = {}
    monkeypatch.setattr(pipeline, "stack_outputs", lambda _state, _target, stack: held)
    return held


def test_the_stages_get_address_and_host_key_from_the_contract(estate: Path,
                                                               state_outputs: dict) -> None:
    state_outputs["instances"] = {"web": SANDBOX_INSTANCE}
    context = pipeline.open_context(estate)
    assert pipeline.provisioned_targets(context, "wjw-fybj") == {
        "web": {"address": "10.20.1.10", "host_key": ED25519}}


def test_a_sandbox_instance_without_host_keys_is_malformed(estate: Path,
                                                           state_outputs: dict) -> None:
    state_outputs["instances"] = {"web": broken(lambda i: [i.pop("host_keys"),
                                                           i.pop("host_key")])}
    with pytest.raises(StageFailed, match=f"stack {STACK}: instance web has unusable outputs: "
                                          "host_keys: missing"):
        pipeline.provisioned_targets(pipeline.open_context(estate), "wjw-fybj")


def as_openstack(estate: Path) -> None:
    edit(estate / "migrate.yaml", "target: sandbox ", "target: openstack ")


class Console:
    """The compute API's console output of the instances (by server id), and who asked."""

    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs
        self.asked: list[str] = []
        self.booting = 0  # how many answers come before cloud-init printed the keys
        self.regions: list[str | None] = []  # the region of each session opened

    def opened(self, region: str | None) -> Console:
        self.regions.append(region)
        return self

    def console_output(self, server_id: str) -> str:
        self.asked.append(server_id)
        if self.booting:
            self.booting -= 1
            return "[   1.0] booting\n"
        return self.outputs[server_id]


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> Console:
    from migrate.targets import openstack, openstack_api

    found = Console({})
    monkeypatch.setattr(openstack_api.Session, "for_cloud",
                        classmethod(lambda _cls, _name, region=None: found.opened(region)))
    monkeypatch.setattr(openstack, "HOST_KEYS_POLL_S", 0.0)
    return found


def cloud_init_console(*keys: str) -> str:
    return ("[  55.3] cloud-init[311]: ci-info: ...\n-----BEGIN SSH HOST KEY KEYS-----\n"
            + "".join(f"{key} root@db\n" for key in keys) + "-----END SSH HOST KEY KEYS-----\n")


def unencrypted(instance: dict) -> dict:
    volumes = [{**v, "encryption": {"encrypted": False}} for v in instance["volumes"]]
    return {**instance, "volumes": volumes}


def test_openstack_host_keys_are_read_from_the_console_and_pinned(
        estate: Path, state_outputs: dict, console: Console) -> None:
    as_openstack(estate)
    without_keys = {k: v for k, v in unencrypted(OPENSTACK_INSTANCE).items() if k != "host_keys"}
    state_outputs["instances"] = {"db": without_keys}
    server = without_keys["id"]
    console.outputs[server] = cloud_init_console(ED25519)
    console.booting = 2  # read again until cloud-init printed them
    context = pipeline.open_context(estate)
    assert pipeline.provisioned_targets(context, "wjw-fybj") == {
        "db": {"address": "10.20.1.11", "host_key": ED25519}}
    pins = load_target("openstack").host_keys_file(context.estate, STACK)
    assert oct(pins.stat().st_mode & 0o777) == "0o600"
    asked = len(console.asked)
    assert asked == 3
    console.outputs[server] = cloud_init_console(OTHER_ED25519)  # a later console says else
    assert pipeline.provisioned_targets(context, "wjw-fybj")["db"]["host_key"] == ED25519
    assert len(console.asked) == asked  # pinned: the console is not asked again


def test_the_console_is_read_in_the_estates_region(estate: Path, state_outputs: dict,
                                                   console: Console) -> None:
    as_openstack(estate)
    edit(estate / "migrate.yaml", "    external_network: ", "    region: RegionTwo\n"
         "    external_network: ")
    without_keys = {k: v for k, v in unencrypted(OPENSTACK_INSTANCE).items() if k != "host_keys"}
    state_outputs["instances"] = {"db": without_keys}
    console.outputs[without_keys["id"]] = cloud_init_console(ED25519)
    context = pipeline.open_context(estate)
    assert pipeline.provisioned_targets(context, "wjw-fybj")["db"]["host_key"] == ED25519
    assert console.regions == ["RegionTwo"]


def test_a_replaced_instance_has_its_keys_read_again(estate: Path, state_outputs: dict,
                                                     console: Console) -> None:
    as_openstack(estate)
    first = {k: v for k, v in unencrypted(OPENSTACK_INSTANCE).items() if k != "host_keys"}
    console.outputs = {first["id"]: cloud_init_console(ED25519),
                       "new-server": cloud_init_console(OTHER_ED25519)}
    state_outputs["instances"] = {"db": first}
    context = pipeline.open_context(estate)
    pipeline.provisioned_targets(context, "wjw-fybj")
    state_outputs["instances"] = {"db": {**first, "id": "new-server"}}
    assert pipeline.provisioned_targets(context, "wjw-fybj")["db"]["host_key"] == OTHER_ED25519


def test_a_console_key_block_that_is_not_cloud_inits_is_refused(
        estate: Path, state_outputs: dict, console: Console) -> None:
    as_openstack(estate)
    without_keys = {k: v for k, v in unencrypted(OPENSTACK_INSTANCE).items() if k != "host_keys"}
    state_outputs["instances"] = {"db": without_keys}
    console.outputs[without_keys["id"]] = cloud_init_console(ED25519, "echo pwned")
    with pytest.raises(StageFailed, match="holds a host key block that is not cloud-init's"):
        pipeline.provisioned_targets(pipeline.open_context(estate), "wjw-fybj")


def test_an_openstack_instance_with_plain_data_volumes_is_reached(estate: Path,
                                                                  state_outputs: dict) -> None:
    as_openstack(estate)
    state_outputs["instances"] = {"db": unencrypted(OPENSTACK_INSTANCE)}
    assert pipeline.provisioned_targets(pipeline.open_context(estate), "wjw-fybj") == {
        "db": {"address": "10.20.1.11", "host_key": ED25519}}


def test_an_openstack_instance_without_volumes_is_reached(estate: Path,
                                                          state_outputs: dict) -> None:
    as_openstack(estate)
    state_outputs["instances"] = {"db": {**OPENSTACK_INSTANCE, "volumes": []}}
    assert pipeline.provisioned_targets(pipeline.open_context(estate), "wjw-fybj") == {
        "db": {"address": "10.20.1.11", "host_key": ED25519}}


# ---- finding a target ---------------------------------------------------------------


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch):
    """Pretend only these entry points of migrate.targets are installed."""
    def install(**points: str) -> None:
        found = [EntryPoint(name, value, GROUP) for name, value in points.items()]
        monkeypatch.setattr("migrate.targets.entry_points", lambda group: found)
        load_target.cache_clear()

    yield install
    load_target.cache_clear()


def test_both_targets_are_installed() -> None:
    assert load_target("sandbox").name == "sandbox"
    assert isinstance(load_target("openstack"), OpenStackTarget)


def test_an_unknown_target_is_a_clear_environment_error(installed) -> None:
    installed(openstack="migrate.targets.openstack:OpenStackTarget")
    with pytest.raises(EnvironmentNotReady) as caught:
        load_target("azure")
    assert "cloud target 'azure' (cloud.target in migrate.yaml) is not installed" in \
        caught.value.message
    assert "(installed: openstack)" in caught.value.message
    assert caught.value.hint.startswith("install the package that provides the azure target")


def test_an_estate_whose_target_is_not_installed_says_what_to_install(
        installed, estate: Path, run_cli) -> None:
    installed(openstack="migrate.targets.openstack:OpenStackTarget")
    with pytest.raises(EnvironmentNotReady) as caught:
        target_of(pipeline.open_estate(estate))
    assert "cloud target 'sandbox'" in caught.value.message
    assert "its rehearsal part, migrate.rehearsal.sandbox" in caught.value.hint
    result = run_cli("check", estate, "--system", "wjw-fybj")
    assert result.code == 3, result.stderr
    assert "cloud target 'sandbox'" in result.stderr and "Traceback" not in result.stderr


def test_an_entry_point_that_is_not_a_target_is_refused(installed) -> None:
    installed(sandbox="migrate.targets.openstack:OpenStackTarget",
              openstack="migrate.targets.openstack:no_such_thing")
    with pytest.raises(EnvironmentNotReady, match="is not the sandbox target"):
        load_target("sandbox")
    with pytest.raises(EnvironmentNotReady, match=r"declared by .* but cannot be loaded"):
        load_target("openstack")


# ---- the OpenStack target -----------------------------------------------------------


def test_only_the_clouds_yaml_location_survives_of_the_callers_os_variables() -> None:
    environ = {"OS_AUTH_URL": "http://keystone:5000/v3", "OS_PASSWORD": "x",
               "OS_CLOUD": "other", "OS_REGION_NAME": "RegionTwo", "OS_TOKEN": "t",
               "OS_CLIENT_CONFIG_FILE": "/etc/openstack/clouds.yaml", "PATH": "/usr/bin",
               "COS_BUCKET": "b", "os_lower": "y"}
    assert scrubbed_environment(environ) == {
        "OS_AUTH_URL": None, "OS_CLOUD": None, "OS_PASSWORD": None, "OS_REGION_NAME": None,
        "OS_TOKEN": None}


def on_openstack(estate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The estate on the openstack target, a stack passphrase, no OS_* of the shell."""
    as_openstack(estate)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a test passphrase\n")
    passphrase.chmod(0o600)
    monkeypatch.setenv(credentials.PASSPHRASE_ENV, str(passphrase))
    for name in [n for n in os.environ if n.startswith("OS_")]:
        monkeypatch.delenv(name)
    return estate


@pytest.fixture
def openstack_estate(estate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    on_openstack(estate, tmp_path, monkeypatch)
    monkeypatch.setenv("OS_AUTH_URL", "http://stray-keystone:5000/v3")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "clouds.yaml"))
    return estate


def test_the_stacks_get_the_named_cloud_and_no_stray_credentials(openstack_estate: Path,
                                                                 tmp_path: Path) -> None:
    settings = pipeline.provision_settings(pipeline.open_context(openstack_estate),
                                           tmp_path / "plan.json")
    assert settings.target == "openstack"
    assert settings.config == {"openstack:cloud": "egov-cloud", "migrate:hosts": "{}"}
    assert settings.env == {"OS_AUTH_URL": None}
    assert settings.preflight  # every stack checked against the cloud before any changes


def operator_key(estate: Path, private: str = "not a real key\n",
                 public: str | None = "ssh-ed25519 AAAAC3Nza operator@ops\n",
                 mode: int = 0o600) -> Path:
    keys = estate / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "operator").write_text(private)
    (keys / "operator").chmod(mode)
    if public is not None:
        (keys / "operator.pub").write_text(public)
    edit(estate / "migrate.yaml", "    external_network: egov-ext",
         "    external_network: egov-ext\n    region: RegionTwo\n"
         "    operator_key: keys/operator")
    return keys / "operator"


def test_region_and_operator_key_reach_the_stacks(openstack_estate: Path,
                                                  tmp_path: Path) -> None:
    key = operator_key(openstack_estate)
    opened = pipeline.open_estate(openstack_estate)
    settings = pipeline.provision_settings(pipeline.context_of(opened), tmp_path / "plan.json")
    assert settings.config == {"openstack:cloud": "egov-cloud", "openstack:region": "RegionTwo",
                               "migrate:authorized_keys": "ssh-ed25519 AAAAC3Nza operator@ops",
                               "migrate:hosts": "{}"}
    assert target_of(opened).operator_key_path(opened) == key.absolute()


def test_without_an_operator_key_nothing_could_log_in(openstack_estate: Path) -> None:
    opened = pipeline.open_estate(openstack_estate)
    with pytest.raises(InvalidInput) as caught:
        target_of(opened).operator_key_path(opened)
    (problem,) = caught.value.problems
    assert problem.path == "cloud.openstack.operator_key"
    assert "is not set" in problem.message


@pytest.mark.parametrize(("arguments", "message"), [
    ({"mode": 0o644}, "is readable by others than its owner"),
    ({"public": None}, "does not hold the public key line"),
    ({"public": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n"}, "does not hold the public key"),
])
def test_an_unusable_operator_key_is_refused_with_its_setting(openstack_estate: Path,
                                                              arguments, message) -> None:
    operator_key(openstack_estate, **arguments)
    opened = pipeline.open_estate(openstack_estate)
    with pytest.raises(InvalidInput) as caught:
        target_of(opened).operator_public_key(opened)
    (problem,) = caught.value.problems
    assert problem.path == "cloud.openstack.operator_key" and message in problem.message
    assert problem.line is not None


def test_a_missing_operator_key_file_is_refused(openstack_estate: Path) -> None:
    operator_key(openstack_estate).unlink()
    opened = pipeline.open_estate(openstack_estate)
    with pytest.raises(InvalidInput, match="1 problem"):
        target_of(opened).operator_key_path(opened)


def test_a_city_cloud_is_surrounded_by_the_city(openstack_estate: Path) -> None:
    opened = pipeline.open_estate(openstack_estate)
    around = surroundings_of(opened)
    assert isinstance(around, CitySurroundings) and not rehearses(opened)
    around.guard_address("192.0.2.10")  # nothing guarded: the cloud's security groups decide
    assert around.package_mirror_url(opened) is None
    assert around.platform_address(opened) is None and around.host_entries(opened) == {}
    assert not around.brings_up and not around.makes_sources(opened)
    assert around.source_known_hosts(opened) is None


def test_an_openstack_estate_may_rehearse_its_surroundings(openstack_estate: Path,
                                                           tmp_path: Path) -> None:
    edit(openstack_estate / "migrate.yaml", "sandbox:\n", "sandbox:\n  surroundings: true\n")
    opened = pipeline.open_estate(openstack_estate)
    around = surroundings_of(opened)
    assert rehearses(opened) and around.name == "sandbox" and around.brings_up
    host = urllib.parse.urlsplit(opened.settings.exchange.url).hostname
    assert around.host_entries(opened) == {host: around.platform_address(opened)}
    settings = pipeline.provision_settings(pipeline.context_of(opened), tmp_path / "plan.json")
    assert json.loads(settings.config["migrate:hosts"]) == around.host_entries(opened)
    with pytest.raises(GuardRefused):  # every connection stays on this host
        around.guard_address("192.0.2.10")


def test_the_sandbox_cloud_always_rehearses_its_surroundings(estate: Path) -> None:
    opened = pipeline.open_estate(estate)
    assert rehearses(opened) and surroundings_of(opened).name == "sandbox"


def test_the_model_instance_is_frozen() -> None:
    made = Instance.model_validate(SANDBOX_INSTANCE)
    with pytest.raises(ValueError, match="frozen"):
        made.address = "10.0.0.1"
