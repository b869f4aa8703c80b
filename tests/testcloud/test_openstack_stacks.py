"""stacks/openstack on the real OpenStack of this host (issue 16).

One planned system of tests/testcloud/estate (mzj-shjz: one instance with a boot volume and
two data volumes, and the flows its plan allows) goes up with the pinned engine and the
provider built from sources: its department network stack, then its system stack. The result
is checked through the OpenStack API and from inside the instance (logged in as root with
the operator key, its host key pinned from the console first; data volumes mounted by their
serial), applied again without change, and destroyed, after which the project holds exactly
the resources it held before.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from migrate.orchestrate import pipeline
from migrate.rehearsal.sandbox import machines, network
from migrate.rehearsal.testcloud import api, routes
from migrate.stages.provision import Provisioner, StackResult, targets_for
from migrate.targets import load_target
from migrate.targets.openstack_console import host_keys_from_console
from tests.testcloud.conftest import cloud_resources, holding_again, openstack_settings

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

ESTATE = Path(__file__).resolve().parent / "estate"
SYSTEM = "mzj-shjz"
SSH_READY_S = 600.0  # qemu TCG on 2 shared cores: about 70 s when idle, minutes when loaded

@dataclass
class Applied:
    plan: dict
    system: dict
    provisioner: Provisioner
    networks: list
    systems: list
    results: list[StackResult]
    before: dict[str, set[str]]
    zones: list[str]
    operator_key: Path
    estate: Any = None
    progress: list[str] = field(default_factory=list)
    routes: list[routes.Route] = field(default_factory=list)
    destroyed: bool = False


def operator_key(folder: Path) -> Path:
    key = folder / "operator_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "migrate-operator",
                    "-f", str(key)], check=True)
    return key


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, clouds_yaml: Path,
            session: api.Session) -> Iterator[Applied]:
    folder = tmp_path_factory.mktemp("testcloud") / "estate"
    shutil.copytree(ESTATE, folder)
    estate = pipeline.open_estate(folder)
    outcome = pipeline.make_plan(pipeline.context_of(estate))
    plan = outcome.plan
    system = next(s for s in plan["systems"] if s["id"] == SYSTEM)
    before = cloud_resources(session)
    progress: list[str] = []
    key = operator_key(folder.parent)
    provisioner = Provisioner(
        openstack_settings(folder, outcome.path.resolve(), clouds_yaml,
                           authorized_keys=key.with_suffix(".pub").read_text()),
        progress.append)
    networks, systems = targets_for(plan, [SYSTEM])
    zones = [zone.cidr for zone in estate.settings.cloud.zones.values()]
    state = Applied(plan, system, provisioner, networks, systems, [], before, zones, key,
                    estate, progress)
    try:
        state.results = provisioner.up(networks, systems)
        state.routes = routes.ensure_routes(session, zones)
        yield state
    finally:
        if not state.destroyed:
            provisioner.destroy(networks, systems, set())
        routes.remove_routes(state.routes)


def server_of(session: api.Session, applied: Applied, instance: dict) -> dict:
    server_id = applied.results[-1].outputs["instances"][instance["name"]]["id"]
    return session.get("compute", f"/servers/{server_id}")["server"]


def test_up_creates_the_network_stack_then_the_system_stack(applied: Applied) -> None:
    network_result, system_result = applied.results
    assert network_result.stack == f"net-{applied.system['network']}"
    assert system_result.stack == f"sys-{SYSTEM}"
    # network, subnet, router, router interface (+ the stack itself)
    assert network_result.changes.get("create") == 5
    instance = applied.system["instances"][0]
    outputs = system_result.outputs["instances"][instance["name"]]
    assert outputs["address"] == instance["address"]
    assert outputs["id"]


def test_network_subnet_and_router_as_planned(session: api.Session, applied: Applied) -> None:
    planned = next(n for n in applied.plan["networks"] if n["key"] == applied.system["network"])
    subnets = session.get("network", f"/v2.0/subnets?name={planned['name']}-subnet")["subnets"]
    assert [(s["cidr"], s["gateway_ip"]) for s in subnets] == [
        (planned["cidr"], planned["gateway"])]
    routers = session.get("network", f"/v2.0/routers?name={planned['name']}-router")["routers"]
    assert len(routers) == 1
    provider = session.get("network", "/v2.0/networks?name=provider")["networks"][0]
    assert routers[0]["external_gateway_info"]["network_id"] == provider["id"]
    assert "managed-by:migrate" in routers[0]["tags"]


def planned_rules(system: dict, instance: str, group_ids: dict[str, str]) -> set[tuple]:
    rules = set()
    for rule in system["security_rules"]:
        if rule["instance"] != instance:
            continue
        peer = rule["peer"]
        remote = (("group", group_ids[peer["instance"]]) if peer["kind"] == "instance"
                  else ("cidr", peer["cidr"]))
        rules.add((rule["direction"], rule["protocol"], rule["port"], rule["port"], remote))
    return rules


def actual_rules(session: api.Session, group_id: str) -> set[tuple]:
    found = session.get("network", f"/v2.0/security-group-rules?security_group_id={group_id}")
    rules = set()
    for rule in found["security_group_rules"]:
        remote = (("group", rule["remote_group_id"]) if rule["remote_group_id"]
                  else ("cidr", rule["remote_ip_prefix"]))
        rules.add((rule["direction"], rule["protocol"], rule["port_range_min"],
                   rule["port_range_max"], remote))
    return rules


def test_security_groups_hold_exactly_the_planned_rules(session: api.Session,
                                                        applied: Applied) -> None:
    group_ids = {}
    for instance in applied.system["instances"]:
        groups = session.get("network", "/v2.0/security-groups?name="
                             f"{instance['security_group']}")["security_groups"]
        assert len(groups) == 1, instance["security_group"]
        group_ids[instance["name"]] = groups[0]["id"]
    for instance in applied.system["instances"]:
        planned = planned_rules(applied.system, instance["name"], group_ids)
        assert planned, "the plan allows no flow at all: nothing would be checked"
        # default deny: no rule beyond the plan's, not even the default egress ones
        assert actual_rules(session, group_ids[instance["name"]]) == planned
        port = session.get("network", f"/v2.0/ports?name={instance['resource_name']}-port")
        assert [p["security_groups"] for p in port["ports"]] == [[group_ids[instance["name"]]]]


def test_instance_active_with_its_planned_address_and_flavor(session: api.Session,
                                                             applied: Applied) -> None:
    for instance in applied.system["instances"]:
        server = server_of(session, applied, instance)
        assert server["status"] == "ACTIVE"
        addresses = [a["addr"] for entries in server["addresses"].values() for a in entries]
        assert addresses == [instance["address"]]
        flavors = {f["name"]: f["id"] for f in session.get("compute", "/flavors")["flavors"]}
        assert server["flavor"]["id"] == flavors[instance["flavor"]]
        assert server["metadata"]["system"] == SYSTEM


def test_boot_and_data_volumes_attached_as_planned(session: api.Session,
                                                   applied: Applied) -> None:
    for instance in applied.system["instances"]:
        server = server_of(session, applied, instance)
        attached = {v["id"] for v in server["os-extended-volumes:volumes_attached"]}
        wanted = {f"{instance['resource_name']}-boot": instance["boot_volume"]["size_gb"]}
        wanted |= {f"{instance['resource_name']}-{v['name']}": v["size_gb"]
                   for v in instance["volumes"]}
        for name, size in wanted.items():
            volumes = session.get("volumev3", f"/volumes/detail?name={name}")["volumes"]
            assert len(volumes) == 1, name
            volume = volumes[0]
            assert volume["status"] == "in-use", (name, volume["status"])
            assert volume["size"] == size
            assert volume["id"] in attached
            assert [a["server_id"] for a in volume["attachments"]] == [server["id"]]


def test_instance_reachable_from_the_ops_network(applied: Applied) -> None:
    """The host stands on the ops network (the provider network): ssh, the one port the plan
    opens to it, answers with sshd's banner through the department router."""
    assert applied.routes, "no route to the department network through its router"
    for instance in applied.system["instances"]:
        address = instance["address"]
        network.assert_local_address(address, applied.zones)
        banner = api.wait_for(lambda a=address: machines._read_banner(a, 22, 2.0),
                              SSH_READY_S, 2.0, f"ssh on {address}")
        assert banner.startswith("SSH-2.0-OpenSSH")


def test_a_port_the_plan_does_not_open_is_dropped(applied: Applied) -> None:
    """Default deny is enforced, not only written down: a port nothing allows gets no
    answer at all (without the security group the guest's kernel would refuse it at once)."""
    address = applied.system["instances"][0]["address"]
    network.assert_local_address(address, applied.zones)
    api.wait_for(lambda: machines._read_banner(address, 22, 2.0), SSH_READY_S, 2.0, "ssh")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        socket.create_connection((address, 9), timeout=5.0).close()
    assert time.monotonic() - started >= 4.5


def console_host_keys(session: api.Session, server_id: str) -> list[str]:
    output = session.request("POST", "compute", f"/servers/{server_id}/action",
                             {"os-getConsoleOutput": {}})["output"]
    return host_keys_from_console(output)


def ssh(applied: Applied, known_hosts: Path, address: str, *command: str
        ) -> subprocess.CompletedProcess:
    network.assert_local_address(address, applied.zones)
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(applied.operator_key), "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
         "-o", "ConnectTimeout=20", f"root@{address}", "--", *command],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def pinned(session: api.Session, applied: Applied, clouds_yaml: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Each instance's host keys as the OpenStack target learns them (its own API client,
    the console output), pinned before any ssh, written as known_hosts for the tests."""
    target = load_target("openstack")
    stack = f"sys-{SYSTEM}"
    outputs = applied.results[-1].outputs["instances"]
    files = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds_yaml))
        for instance in applied.system["instances"]:
            keys = target.learn_host_keys(applied.estate, stack, instance["name"],
                                          outputs[instance["name"]])
            server_id = outputs[instance["name"]]["id"]
            assert keys == console_host_keys(session, server_id)  # the test cloud's own read
            pins = json.loads(target.host_keys_file(applied.estate, stack).read_text())
            assert pins[instance["name"]] == {"server": server_id, "keys": keys}
            path = tmp_path_factory.mktemp("known") / "known_hosts"
            path.write_text("".join(f"{instance['address']} {key}\n" for key in keys))
            files[instance["name"]] = path
    yield files


def test_root_logs_in_with_the_operator_key_and_the_pinned_host_key(
        applied: Applied, pinned: dict[str, Path], tmp_path: Path) -> None:
    for instance in applied.system["instances"]:
        done = ssh(applied, pinned[instance["name"]], instance["address"], "id", "-un")
        assert (done.returncode, done.stdout.strip()) == (0, "root"), done.stderr
        # another key pinned for the address: ssh refuses before logging in
        wrong = tmp_path / f"{instance['name']}-wrong"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)],
                       check=True)
        other = wrong.with_suffix(".pub").read_text().split()[:2]
        impostor = tmp_path / f"{instance['name']}-known"
        impostor.write_text(f"{instance['address']} {' '.join(other)}\n")
        refused = ssh(applied, impostor, instance["address"], "true")
        assert refused.returncode == 255
        assert "Host key verification failed" in refused.stderr


def mounted_serials(applied: Applied, known_hosts: Path, address: str) -> dict[str, str]:
    """mount point -> serial of the virtio disk whose first partition is mounted there."""
    found = ssh(applied, known_hosts, address, "findmnt", "-J", "-o", "SOURCE,TARGET")
    assert found.returncode == 0, found.stderr
    links = ssh(applied, known_hosts, address, "ls", "-l", "/dev/disk/by-id/")
    by_device = {}
    for line in links.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-3].startswith("virtio-") and parts[-3].endswith("-part1"):
            by_device["/dev/" + parts[-1].split("/")[-1]] = parts[-3][7:-6]
    return {fs["target"]: by_device[fs["source"]]
            for fs in json.loads(found.stdout)["filesystems"][0].get("children", [])
            if fs["source"] in by_device}


def wait_mounted(applied: Applied, known_hosts: Path, address: str, count: int
                 ) -> dict[str, str]:
    def all_there() -> dict[str, str] | None:
        found = mounted_serials(applied, known_hosts, address)
        return found if len(found) == count else None

    return api.wait_for(all_there, SSH_READY_S, 3.0, f"{count} data volumes mounted")


def test_data_volumes_mounted_by_their_serial_again_without_change(
        applied: Applied, pinned: dict[str, Path]) -> None:
    outputs = applied.results[-1].outputs["instances"]
    for instance in applied.system["instances"]:
        known, address = pinned[instance["name"]], instance["address"]
        wanted = {v["mount"]: v["serial"] for v in outputs[instance["name"]]["volumes"]}
        assert len(wanted) == len(instance["volumes"]) > 0
        # cloud-init runs the script at first boot, after sshd may already answer
        mounted = wait_mounted(applied, known, address, len(wanted))
        assert mounted == wanted
        fstab = ssh(applied, known, address, "cat", "/etc/fstab").stdout
        again = ssh(applied, known, address, "/usr/local/sbin/migrate-volumes")
        assert again.returncode == 0, again.stderr
        assert ssh(applied, known, address, "cat", "/etc/fstab").stdout == fstab
        assert mounted_serials(applied, known, address) == wanted


def test_second_up_changes_nothing(applied: Applied) -> None:
    again = applied.provisioner.up(applied.networks, applied.systems)
    assert [r.changed for r in again] == [False, False], [r.changes for r in again]


def test_destroy_leaves_the_project_as_it_was(session: api.Session, applied: Applied) -> None:
    results = applied.provisioner.destroy(applied.networks, applied.systems, set())
    applied.destroyed = True
    assert [r.stack for r in results] == [f"sys-{SYSTEM}", f"net-{applied.system['network']}"]
    assert all(r.changes.get("delete") for r in results)
    assert holding_again(session, applied.before) == applied.before

