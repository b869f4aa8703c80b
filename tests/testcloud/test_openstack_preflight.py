"""The program's preflight (stacks/openstack/preflight.py) on the real OpenStack of this host.

tests/testcloud/estate as it is previews cleanly; a copy whose migrate.yaml names an image
and a flavor the cloud does not have is refused with EnvironmentNotReady naming both, by
preview and by provision, and the cloud holds afterwards exactly what it held before. A
system stack is previewed only once its network stack exists (Provisioner.preview), so the
module brings the network stack of the estate up first and destroys it at the end.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate.core.errors import EXIT_ENVIRONMENT, EnvironmentNotReady
from migrate.orchestrate import pipeline
from migrate.rehearsal.testcloud import api
from migrate.stages.provision import Provisioner, targets_for
from tests.testcloud.conftest import cloud_resources, holding_again, openstack_settings

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

ESTATE = Path(__file__).resolve().parent / "estate"
SYSTEM = "mzj-shjz"
MISSING_IMAGE = "migrate-no-such-image"
MISSING_FLAVOR = "tc.no-such-flavor"

def planned(folder: Path) -> tuple[dict, Path]:
    outcome = pipeline.make_plan(pipeline.open_context(folder))
    return outcome.plan, outcome.path.resolve()


def without_image_and_flavor(folder: Path) -> None:
    """The estate's migrate.yaml with an image and a flavor the test cloud does not have."""
    settings = folder / "migrate.yaml"
    text = settings.read_text(encoding="utf-8")
    changed = text.replace("{debian-12: testcloud-guest}", f"{{debian-12: {MISSING_IMAGE}}}") \
        .replace("name: tc.c1m1,", f"name: {MISSING_FLAVOR},")
    assert changed.count(MISSING_IMAGE) == 1 and changed.count(MISSING_FLAVOR) == 1
    settings.write_text(changed, encoding="utf-8")


@dataclass
class Clouds:
    """One state directory (the estate's) and two plans of the same system: as the estate
    has it, and without the image and flavor."""

    ready: Provisioner
    lacking: Provisioner
    networks: list
    systems: list
    before: dict[str, set[str]]


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory, clouds_yaml: Path,
           session: api.Session) -> Iterator[Clouds]:
    root = tmp_path_factory.mktemp("preflight")
    shutil.copytree(ESTATE, root / "estate")
    shutil.copytree(ESTATE, root / "lacking")
    without_image_and_flavor(root / "lacking")
    plan, plan_file = planned(root / "estate")
    lacking_plan, lacking_file = planned(root / "lacking")
    assert lacking_plan["systems"][0]["instances"][0]["flavor"] == MISSING_FLAVOR
    ready = Provisioner(openstack_settings(root / "estate", plan_file, clouds_yaml))
    lacking = Provisioner(openstack_settings(root / "estate", lacking_file, clouds_yaml))
    networks, systems = targets_for(plan, [SYSTEM])
    before = cloud_resources(session)
    try:
        ready.up(networks, [])
        yield Clouds(ready, lacking, networks, systems, before)
    finally:
        ready.destroy(networks, systems, set())


def test_the_estate_as_it_is_passes_the_preflight(clouds: Clouds) -> None:
    network_result, system_result = clouds.ready.preview(clouds.networks, clouds.systems)
    assert system_result.stack == f"sys-{SYSTEM}"
    assert system_result.note is None, "the system stack was not previewed"
    assert system_result.changes.get("create"), system_result.changes
    assert not network_result.changed


@pytest.mark.parametrize("operation", ["preview", "up"])
def test_a_missing_image_and_flavor_are_named_before_any_change(
        clouds: Clouds, session: api.Session, operation: str) -> None:
    held = cloud_resources(session)
    with pytest.raises(EnvironmentNotReady) as caught:
        getattr(clouds.lacking, operation)(clouds.networks, clouds.systems)
    refusal = caught.value
    assert refusal.exit_code == EXIT_ENVIRONMENT
    assert f"image {MISSING_IMAGE} (instance app): planned image debian-12, the cloud has " \
        "no image of that name" in refusal.message
    assert f"flavor {MISSING_FLAVOR} (instance app): planned 1 vCPU, 1024 MB RAM, the cloud " \
        "has no flavor of that name" in refusal.message
    assert f"upload image {MISSING_IMAGE}" in refusal.hint
    assert f"create flavor {MISSING_FLAVOR}" in refusal.hint
    assert cloud_resources(session) == held


def test_a_fresh_estate_is_checked_whole_before_its_first_stack_changes(
        clouds: Clouds, tmp_path: Path, clouds_yaml: Path, session: api.Session) -> None:
    """Without a network stack yet, the system stack cannot be previewed; with the target's
    preflight every stack is checked first, so provision does not make the department network
    and then stop at the system."""
    folder = tmp_path / "fresh"
    shutil.copytree(ESTATE, folder)
    without_image_and_flavor(folder)
    plan, plan_file = planned(folder)
    fresh = Provisioner(openstack_settings(folder, plan_file, clouds_yaml, preflight=True))
    networks, systems = targets_for(plan, [SYSTEM])
    held = cloud_resources(session)
    for operation in ("preview", "up"):
        with pytest.raises(EnvironmentNotReady) as caught:
            getattr(fresh, operation)(networks, systems)
        assert f"sys-{SYSTEM}" in caught.value.message and MISSING_FLAVOR in caught.value.message
    assert cloud_resources(session) == held


def test_the_cloud_holds_what_it_held_before(clouds: Clouds, session: api.Session) -> None:
    results = clouds.ready.destroy(clouds.networks, clouds.systems, set())
    assert [r.stack for r in results] == [f"sys-{SYSTEM}", "net-mzj-egov_extranet"]
    assert holding_again(session, clouds.before) == clouds.before

