"""`migrate check` on OpenStack checks the cloud first: the preflight of every stack of the
chosen systems (images, flavors, volume type, networks, quotas), every problem at once, exit
3, before check_prerequisites; nothing is provisioned. The stacks' programs are answered from
a recording here (what each stack's preflight said); the real one runs in
tests/testcloud/test_openstack_preflight.py."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from migrate.core.errors import EXIT_ENVIRONMENT
from migrate.orchestrate import pipeline
from migrate.stages import provision
from tests.unit.test_targets import on_openstack

FLAVOR_REFUSAL = (
    "migrate-preflight: 1 problem in the cloud; the stack was not changed\n"
    "problem: flavor c4m8 (instance web): planned 4 vCPU, 8192 MB RAM, the cloud has no "
    "flavor of that name\n"
    "hint: create flavor c4m8 (or ask the cloud's operators for it)")
NETWORK_REFUSAL = (
    "migrate-preflight: 1 problem in the cloud; the stack was not changed\n"
    "problem: external network egov-ext: planned as the routers' gateway, the cloud has no "
    "network of that name\n"
    "hint: set cloud.openstack.external_network in migrate.yaml")


class RecordedCloud(provision.Provisioner):
    """The provisioner with every stack's program answered from ``refusals`` (stack name ->
    what its preflight said); no engine runs."""

    made: ClassVar[list[RecordedCloud]] = []
    refusals: ClassVar[dict[str, str]] = {}

    def __init__(self, settings: provision.ProvisionSettings, progress=None) -> None:
        self.settings = settings
        self.progress = progress or (lambda _line: None)
        self.asked: list[tuple[str, str]] = []
        RecordedCloud.made.append(self)

    def _run(self, target: provision.StackTarget, operation: str) -> provision.StackResult:
        self.asked.append((target.name, operation))
        refusal = self.refusals.get(target.name)
        if operation == "preflight" and refusal:
            tracker = provision.EventTracker(target.name, self.progress)
            tracker.errors.append((None, refusal))
            raise provision._stage_failed(target.name, "preview", Exception(refusal), tracker)
        return provision.StackResult(target.name, operation, {})


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> type[RecordedCloud]:
    monkeypatch.setattr(pipeline, "Provisioner", RecordedCloud)
    monkeypatch.setattr(RecordedCloud, "made", [])
    monkeypatch.setattr(RecordedCloud, "refusals", {})
    return RecordedCloud


@pytest.fixture
def openstack_estate(estate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return on_openstack(estate, tmp_path, monkeypatch)


def test_check_names_every_problem_of_the_cloud_at_once(openstack_estate, recorded, run_cli):
    recorded.refusals = {"sys-sjj-tyrz": FLAVOR_REFUSAL, "net-sjj-internet": NETWORK_REFUSAL}
    result = run_cli("check", openstack_estate)
    assert result.code == EXIT_ENVIRONMENT, result.stderr
    assert "flavor c4m8 (instance web): planned 4 vCPU" in result.stderr
    assert "external network egov-ext: planned as the routers' gateway" in result.stderr
    (provisioner,) = recorded.made
    plan = pipeline.load_plan(pipeline.open_context(openstack_estate))
    stacks = {f"net-{n['key']}" for n in plan["networks"]} | {
        f"sys-{s['id']}" for s in plan["systems"]}
    assert sorted(provisioner.asked) == sorted((name, "preflight") for name in stacks)
    assert "no provisioned targets" not in result.stderr  # stopped before the hosts


def test_a_ready_cloud_is_said_and_then_the_hosts_are_checked(openstack_estate, recorded,
                                                               run_cli):
    result = run_cli("check", openstack_estate, "--system", "sjj-tyrz")
    (provisioner,) = recorded.made
    assert provisioner.asked == [("net-sjj-internet", "preflight"),
                                 ("sys-sjj-tyrz", "preflight")]
    assert "cloud: 2 stacks checked (preflight), nothing missing" in result.stderr
    # then check_prerequisites, which needs the provisioned instances
    assert result.code == 2 and "sjj-tyrz has no provisioned targets" in result.stderr


def test_a_target_without_a_preflight_is_not_asked(estate, recorded, run_cli):
    result = run_cli("check", estate, "--system", "sjj-tyrz")
    assert recorded.made == []
    assert "no provisioned targets" in result.stderr and "cloud:" not in result.stderr
