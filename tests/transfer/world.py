"""The world of the transfer tests: the example estate's sandbox plus the target machines
of one system, made directly with the machine layer at the plan's addresses."""

from __future__ import annotations

import copy
import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from migrate.core.errors import EnvironmentNotReady
from migrate.core.loader import Estate
from migrate.orchestrate.pipeline import context_for_plan, context_of, make_plan, open_estate
from migrate.rehearsal.sandbox import machines, network
from migrate.rehearsal.sandbox.estate import (
    known_hosts_path,
    operator_key_path,
    operator_public_key,
    sandbox_down,
    sandbox_up,
)
from migrate.rehearsal.sandbox.host import require_host
from migrate.rehearsal.sandbox.hostkeys import host_public_key
from migrate.rehearsal.sandbox.layout import upper_dir
from migrate.targets.context import Context
from tests.run import events

EXAMPLE_ESTATE = Path(__file__).resolve().parents[2] / "examples" / "estate"
SYSTEM = "wjw-fybj"
# the last configuration path of its manifest (sandbox_world adds one after it)
LAST_COPIED = "    - {host: web1, path: /etc/systemd/system/legacy-users.service}\n"
TARGET_IMAGE = "cloud"


@dataclass
class World:
    folder: Path
    estate: Estate
    plan: dict
    system: dict
    targets: dict[str, dict[str, str]] = field(default_factory=dict)
    machines: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    before: dict = field(default_factory=dict)

    def source_address(self, host: str) -> str:
        return next(h["address"] for h in self.system["source_hosts"] if h["name"] == host)

    def context(self, plan: dict | None = None) -> Context:
        """What a command hands the stages, working to ``plan`` (the world's by default)."""
        return context_for_plan(self.estate, plan or self.plan)

    def logical_plan(self) -> dict:
        """The plan with every database of the system kept in step by logical replication
        (the example's own is small enough for a final dump)."""
        plan = copy.deepcopy(self.plan)
        system = next(s for s in plan["systems"] if s["id"] == self.system["id"])
        for database in system["data"]["databases"]:
            database["method"] = "logical_replication"
        return plan


def copy_estate(target: Path, *only: str) -> Path:
    """A copy of the example estate (manifests only); with ``only``, those systems' manifests
    alone, so its sandbox boots their source hosts and no other system's."""
    shutil.copytree(EXAMPLE_ESTATE, target,
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs"))
    return events.keep_only(target, *only) if only else target


def bring_up(folder: Path, scale: int, system_id: str = SYSTEM) -> World:
    """sandbox up, the plan, and the system's target machines (started, ssh-ready)."""
    estate = open_estate(folder)
    sandbox_up(estate, scale=scale)
    plan = make_plan(context_of(estate), write=False).plan
    system = next(s for s in plan["systems"] if s["id"] == system_id)
    world = World(folder, estate, plan, system)
    make_targets(world)
    return world


def target_machine_name(system_id: str, instance: str) -> str:
    return f"tgt-{system_id}-{instance}"


def make_targets(world: World) -> None:
    net = next(n for n in world.plan["networks"] if n["key"] == world.system["network"])
    prefix = ipaddress.ip_network(net["cidr"]).prefixlen
    network.ensure_bridge(net["key"], f"{net['gateway']}/{prefix}")
    world.networks.append(net["key"])
    key = operator_public_key(world.estate)
    for instance in world.system["instances"]:
        name = target_machine_name(world.system["id"], instance["name"])
        machines.create_machine(machines.MachineSpec(
            name=name, image=TARGET_IMAGE, bridge=net["key"],
            address=f"{instance['address']}/{prefix}", gateway=net["gateway"],
            authorized_keys=key, hostname=instance["resource_name"]))
        world.machines.append(name)
        machines.start_machine(name)
    for instance in world.system["instances"]:
        name = target_machine_name(world.system["id"], instance["name"])
        machines.wait_ssh_ready(name, 60)
        world.targets[instance["name"]] = {
            "address": instance["address"], "host_key": host_public_key(upper_dir(name))}


@contextmanager
def sandbox_world(tmp_path_factory: pytest.TempPathFactory, scale: int,
                  copy_also: str | None = None) -> Iterator[World]:
    """SYSTEM alone of a copy of the example estate, brought up in a sandbox root of its own
    and torn down afterwards; ``copy_also``, a line added to its manifest's configuration
    after the last copied path. Skips without root and the sandbox tools (a failure under
    CI)."""
    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"transfer sandbox tests need root and the sandbox tools: {error.message}")
    root = tmp_path_factory.mktemp("sandbox-root")
    folder = copy_estate(tmp_path_factory.mktemp("transfer") / "estate", SYSTEM)
    if copy_also is not None:
        manifest = folder / "systems" / f"{SYSTEM}.yaml"
        text = manifest.read_text(encoding="utf-8")
        assert text.count(LAST_COPIED) == 1
        manifest.write_text(text.replace(LAST_COPIED, LAST_COPIED + copy_also),
                            encoding="utf-8")
    made: World | None = None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIGRATE_SANDBOX_ROOT", str(root))
        patch.delenv("MIGRATE_STATE_DIR", raising=False)
        estate = open_estate(folder)
        try:
            made = bring_up(folder, scale)
            yield made
        finally:
            tear_down(made, estate)


def tear_down(world: World | None, estate: Estate | None) -> None:
    """Destroy exactly what bring_up made (targets by name, their bridge), then sandbox down."""
    if world is not None:
        for name in world.machines:
            machines.destroy_machine(name)
        for key in world.networks:
            network.remove_bridge(key)
    if estate is not None:
        sandbox_down(estate)


def ssh(world: World, address: str, user: str, key: Path, command: str,
        known_hosts: Path | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    network.assert_local_address(address)
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes",
         "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={known_hosts or known_hosts_path(world.estate)}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=10", f"{user}@{address}", command],
        capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL)


def on_source(world: World, host: str, command: str) -> subprocess.CompletedProcess[str]:
    manifest = world.estate.systems[world.system["id"]]
    key = world.folder / world.estate.settings.secrets.dir / manifest.source.ssh.key.split(
        "://", 1)[1]
    return ssh(world, world.source_address(host), manifest.source.ssh.user, key, command)


def on_target(world: World, instance: str, command: str,
              known_hosts: Path) -> subprocess.CompletedProcess[str]:
    return ssh(world, world.targets[instance]["address"], "root",
               operator_key_path(world.estate), command, known_hosts)
