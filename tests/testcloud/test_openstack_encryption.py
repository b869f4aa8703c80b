"""Protection level 3 on the real OpenStack of this host: encrypted volumes through cinder's
encrypted volume type, checked through cinder's API.

The test estate's mzj-shjz, raised to level 3, goes up with the pinned engine and the
provider built from sources. Its boot volume (from the image) and data volumes are of the
estate's encrypted volume type (tc-luks: LUKS, aes-xts-plain64, 256 bits, front-end; cinder
writes LUKS with qemu-img, qemu opens it on the hypervisor with the key nova gets from the
test cloud's key manager), in use by the instance; the OpenStack target's check through
cinder passes and says what cinder reported, and verification rests on that check (the
guest sees plain disks, no dm-crypt). Then the stacks are destroyed and the project holds
what it held before.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.core.errors import EnvironmentNotReady
from migrate.orchestrate import pipeline
from migrate.rehearsal.testcloud import api, routes
from migrate.stages.provision import Provisioner, targets_for
from migrate.stages.verify.run import cloud_encryption
from tests.conftest import edit
from tests.testcloud.conftest import cloud_resources, holding_again, openstack_settings
from tests.testcloud.test_openstack_stacks import (
    ESTATE,
    SYSTEM,
    Applied,
    operator_key,
    ssh,
    wait_mounted,
)

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

VOLUME_TYPE = "tc-luks"


@pytest.fixture(scope="module")
def level3(tmp_path_factory: pytest.TempPathFactory, clouds_yaml: Path,
           session: api.Session) -> Iterator[Applied]:
    folder = tmp_path_factory.mktemp("testcloud-level3") / "estate"
    shutil.copytree(ESTATE, folder)
    edit(folder / "systems" / f"{SYSTEM}.yaml", "protection_level: 2", "protection_level: 3")
    estate = pipeline.open_estate(folder)
    assert estate.settings.cloud.openstack.encrypted_volume_type == VOLUME_TYPE
    outcome = pipeline.make_plan(pipeline.context_of(estate))
    system = next(s for s in outcome.plan["systems"] if s["id"] == SYSTEM)
    assert all(i["boot_volume"]["encrypted"] and all(v["encrypted"] for v in i["volumes"])
               for i in system["instances"])
    before = cloud_resources(session)
    key = operator_key(folder.parent)
    progress: list[str] = []
    provisioner = Provisioner(
        openstack_settings(folder, outcome.path.resolve(), clouds_yaml,
                           authorized_keys=key.with_suffix(".pub").read_text(),
                           preflight=True),
        progress.append)
    networks, systems = targets_for(outcome.plan, [SYSTEM])
    zones = [zone.cidr for zone in estate.settings.cloud.zones.values()]
    state = Applied(outcome.plan, system, provisioner, networks, systems, [], before, zones,
                    key, estate, progress)
    try:
        started = time.monotonic()
        state.results = provisioner.up(networks, systems)
        print(f"level-3 stacks up in {time.monotonic() - started:.1f} s")
        state.routes = routes.ensure_routes(session, zones)
        with pytest.MonkeyPatch.context() as patch:  # migrate's own client reads it
            patch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds_yaml))
            yield state
    finally:
        if not state.destroyed:
            provisioner.destroy(networks, systems, set())
        routes.remove_routes(state.routes)


def test_a_volume_type_without_encryption_is_named_before_any_change(
        tmp_path: Path, clouds_yaml: Path, session: api.Session) -> None:
    """The test cloud's plain type ``ceph`` named as the encrypted one: the preflight asks
    cinder for its encryption spec and refuses before the first stack changes."""
    folder = tmp_path / "plain"
    shutil.copytree(ESTATE, folder)
    edit(folder / "systems" / f"{SYSTEM}.yaml", "protection_level: 2", "protection_level: 3")
    edit(folder / "migrate.yaml", f"encrypted_volume_type: {VOLUME_TYPE}",
         "encrypted_volume_type: ceph")
    outcome = pipeline.make_plan(pipeline.open_context(folder))
    provisioner = Provisioner(openstack_settings(folder, outcome.path.resolve(), clouds_yaml,
                                                 preflight=True))
    networks, systems = targets_for(outcome.plan, [SYSTEM])
    held = cloud_resources(session)
    try:
        with pytest.raises(EnvironmentNotReady) as caught:
            provisioner.up(networks, systems)
    finally:  # a preflight that let it pass must not leave the stacks behind
        if cloud_resources(session) != held:
            provisioner.destroy(networks, systems, set())
    assert ("volume type ceph: planned with encryption, for the encrypted volumes, the cloud "
            "has a volume type of that name without encryption") in caught.value.message
    assert "name one that encrypts in cloud.openstack.encrypted_volume_type" in \
        caught.value.hint
    assert cloud_resources(session) == held


def planned_volumes(instance: dict) -> list[str]:
    return [f"{instance['resource_name']}-boot"] + [
        f"{instance['resource_name']}-{v['name']}" for v in instance["volumes"]]


def test_every_volume_is_of_the_encrypted_type_and_in_use(session: api.Session,
                                                          level3: Applied) -> None:
    types = {t["name"]: t["id"] for t in session.get("volumev3", "/types")["volume_types"]}
    spec = session.get("volumev3", f"/types/{types[VOLUME_TYPE]}/encryption")
    assert (spec["provider"], spec["cipher"], spec["key_size"], spec["control_location"]) == (
        "luks", "aes-xts-plain64", 256, "front-end")
    outputs = level3.results[-1].outputs["instances"]
    for instance in level3.system["instances"]:
        server_id = outputs[instance["name"]]["id"]
        server = session.get("compute", f"/servers/{server_id}")["server"]
        attached = [session.get("volumev3", f"/volumes/{v['id']}")["volume"]
                    for v in server["os-extended-volumes:volumes_attached"]]
        assert sorted(v["name"] for v in attached) == sorted(planned_volumes(instance))
        for volume in attached:  # by id: another test's system may use the same names
            assert (volume["status"], volume["volume_type"], volume["encrypted"]) == (
                "in-use", VOLUME_TYPE, True), volume["name"]
            assert [a["server_id"] for a in volume["attachments"]] == [server_id]


def test_the_targets_check_through_cinder_passes_and_says_what_it_found(
        level3: Applied) -> None:
    # the stages' way in
    instances = pipeline.system_instances(pipeline.context_of(level3.estate), SYSTEM)
    for instance in level3.system["instances"]:
        checked = instances[instance["name"]]
        found = [checked.boot_volume, *checked.volumes]
        assert len(found) == 1 + len(instance["volumes"])
        for volume in found:
            encryption = volume.encryption
            assert encryption.encrypted
            assert encryption.by == (f"cinder volume type {VOLUME_TYPE} (luks, "
                                     "aes-xts-plain64, 256 bits, on the hypervisor)")
            report = encryption.checked
            assert report["volume_type"] == VOLUME_TYPE and report["volume_encrypted"]
            assert report["key_held"] is True
            assert report["spec_from"].startswith("GET /types/")


def test_verification_rests_on_the_clouds_report(level3: Applied) -> None:
    """What the verify suite's encryption check reads (the guest sees no dm-crypt)."""
    reported = cloud_encryption(pipeline.context_of(level3.estate), level3.system,
                                pipeline.system_instances)
    for instance in level3.system["instances"]:
        for volume in instance["volumes"]:
            found = reported[instance["name"]][volume["name"]]
            assert found["encrypted"] and found["checked"]["volume_type"] == VOLUME_TYPE


def test_the_guest_boots_from_and_mounts_its_encrypted_volumes(level3: Applied,
                                                               tmp_path: Path) -> None:
    """qemu opens the LUKS volumes: the instance boots from its encrypted boot volume and
    its first-boot script formats and mounts the data volumes, which it sees as plain
    disks."""
    stack = f"sys-{SYSTEM}"
    target = pipeline.context_of(level3.estate).target
    outputs = level3.results[-1].outputs["instances"]
    for instance in level3.system["instances"]:
        keys = target.learn_host_keys(level3.estate, stack, instance["name"],
                                      outputs[instance["name"]])
        known = tmp_path / f"{instance['name']}-known_hosts"
        known.write_text("".join(f"{instance['address']} {key}\n" for key in keys))
        wanted = {v["mount"]: v["serial"] for v in outputs[instance["name"]]["volumes"]}
        assert wait_mounted(level3, known, instance["address"], len(wanted)) == wanted
        types = ssh(level3, known, instance["address"], "lsblk", "-nro", "TYPE")
        assert types.returncode == 0, types.stderr
        assert "crypt" not in types.stdout.split()


def test_destroy_leaves_the_project_as_it_was(session: api.Session, level3: Applied) -> None:
    results = level3.provisioner.destroy(level3.networks, level3.systems, set())
    level3.destroyed = True
    assert all(r.changes.get("delete") for r in results)
    assert holding_again(session, level3.before) == level3.before
