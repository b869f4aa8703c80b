"""The all-in-one OpenStack on this host, once per test session.

``services.up`` takes about 10 s when the cloud is up, about 6 minutes for the services on
a cached image, and the image builds (about 15 minutes) on a cold machine. CI brings the
cloud up in the background while the other tests run (scripts/test.sh). If the cloud was
not running before the session, it is removed again at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from migrate.core.errors import EnvironmentNotReady
from migrate.rehearsal.testcloud import api, services
from migrate.rehearsal.testcloud import image as tc_image
from migrate.rehearsal.testcloud import machine as tc_machine
from migrate.stages.provision import ProvisionSettings
from migrate.targets.openstack import scrubbed_environment

LISTS = {
    "networks": ("network", "/v2.0/networks", "networks"),
    "subnets": ("network", "/v2.0/subnets", "subnets"),
    "routers": ("network", "/v2.0/routers", "routers"),
    "ports": ("network", "/v2.0/ports", "ports"),
    "security_groups": ("network", "/v2.0/security-groups", "security_groups"),
    "security_group_rules": ("network", "/v2.0/security-group-rules", "security_group_rules"),
    "volumes": ("volumev3", "/volumes", "volumes"),
    "servers": ("compute", "/servers", "servers"),
}


def cloud_resources(session: api.Session) -> dict[str, set[str]]:
    """The ids of every resource of the kinds the stack programs make, as the API lists them.

    Left out: each project's security group "default" and its rules, which neutron makes by
    itself the first time a project creates a port and keeps for the project's life (on a
    fresh cloud the first instance of a test makes it)."""
    items = {kind: session.get(service, path)[key]
             for kind, (service, path, key) in LISTS.items()}
    defaults = {g["id"] for g in items["security_groups"] if g["name"] == "default"}
    items["security_groups"] = [g for g in items["security_groups"] if g["id"] not in defaults]
    items["security_group_rules"] = [r for r in items["security_group_rules"]
                                     if r["security_group_id"] not in defaults]
    return {kind: {str(item["id"]) for item in found} for kind, found in items.items()}


def holding_again(session: api.Session, before: dict[str, set[str]],
                  timeout: float = 120.0) -> dict[str, set[str]]:
    """The cloud's resources once they are ``before`` again (deletes finish in the
    background), or the last listing after ``timeout``, so a failed comparison shows what is
    left."""
    deadline = time.monotonic() + timeout
    while True:
        now = cloud_resources(session)
        if now == before or time.monotonic() > deadline:
            return now
        time.sleep(2.0)


def openstack_settings(estate_dir: Path, plan_file: Path, clouds_yaml: Path,
                       authorized_keys: str | None = None,
                       preflight: bool = False) -> ProvisionSettings:
    """Stack settings for an estate on the test cloud, as the OpenStack target makes them:
    the clouds.yaml entry by name, every other OS_* variable of the shell removed."""
    passphrase = estate_dir / "pulumi-passphrase"
    if not passphrase.exists():
        passphrase.write_text("the test cloud's stacks, protects nothing real\n")
        passphrase.chmod(0o600)
    config = {"openstack:cloud": services.CLOUD_NAME}
    if authorized_keys:
        config["migrate:authorized_keys"] = authorized_keys
    return ProvisionSettings(
        "openstack", estate_dir / ".migrate", plan_file, passphrase, config,
        env={**scrubbed_environment(os.environ), "OS_CLIENT_CONFIG_FILE": str(clouds_yaml)},
        preflight=preflight)


@pytest.fixture(scope="session")
def cloud_root() -> Iterator[Path]:
    from migrate.rehearsal.sandbox import require_host

    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"needs root and the sandbox tools: {error.message}")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun")
    root = tc_machine.cloud_root()
    was_running = tc_machine.Machine(root, tc_image.image_path()).status() == "running"
    services.up(root)
    yield root
    if not was_running and os.environ.get("MIGRATE_TESTCLOUD_KEEP") != "1":
        services.down(root)


@pytest.fixture(scope="session")
def clouds_yaml(cloud_root: Path) -> Path:
    return cloud_root / "clouds.yaml"


@pytest.fixture(scope="session")
def session(clouds_yaml: Path) -> api.Session:
    clouds = yaml.safe_load(clouds_yaml.read_text())
    return api.Session.from_cloud(clouds["clouds"][services.CLOUD_NAME]).authenticate()
