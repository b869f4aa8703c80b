"""stacks/openstack/preflight.py under Pulumi's mocks: a cloud described by dictionaries,
answering the provider's data sources the way the provider does (a lookup that matches
nothing fails with "Your query returned no results")."""

from __future__ import annotations

import importlib
import json
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pulumi
import pytest

from migrate.adapters.engine import provider
from migrate.core.errors import EXIT_ENVIRONMENT, EnvironmentNotReady, StageFailed
from migrate.core.stackplan import select_system
from migrate.orchestrate import pipeline
from migrate.stages.provision import EventTracker, _stage_failed
from tests.conftest import EXAMPLE_ESTATE
from tests.stacks.test_openstack_preview import Recording, check_against_schema

pytestmark = pytest.mark.filterwarnings(
    r"ignore:openstack\..* has been deprecated:DeprecationWarning")

PROGRAM = Path(__file__).resolve().parents[2] / "stacks" / "openstack"
SYSTEM = "scj-qyxy"  # two instances (flavors c4m8 and c8m16), every volume encrypted
NO_RESULTS = ("Your query returned no results. Please change your search criteria and "
              "try again.")
PROJECT = "project-1"


class Cloud(Recording):
    """What the cloud holds; every quota unlimited unless a test sets it."""

    def __init__(self) -> None:
        super().__init__()
        self.images = {"debian-12-hardened": {"minDiskGb": 10}}
        self.flavors = {"c4m8": (4, 8192), "c8m16": (8, 16384)}
        self.networks = {"egov-ext": True, "tenant": False}
        self.volume_types = ["encrypted", "__DEFAULT__"]
        self.port_names: list[str] = []
        self.limits = {"maxTotalInstances": -1, "totalInstancesUsed": 3,
                       "maxTotalCores": -1, "totalCoresUsed": 6,
                       "maxTotalRamSize": -1, "totalRamUsed": 4096}
        self.network_quota = {"port": -1, "securityGroup": -1, "securityGroupRule": -1,
                              "floatingip": -1}
        self.volume_quota = {"volumes": -1, "gigabytes": -1, "perVolumeGigabytes": -1}

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append(args)
        answer = getattr(self, "answer_" + args.token.split(":")[-1])
        try:
            return answer(dict(args.args))
        except LookupError:  # the provider's failure: the invoke fails, the program goes on
            return {}, [("name", NO_RESULTS)]

    def answer_getImage(self, args: dict) -> dict:
        image = self._found(self.images, args["name"])
        return {"id": f"image-{args['name']}", "name": args["name"], **image}

    def answer_getFlavor(self, args: dict) -> dict:
        vcpus, ram = self._found(self.flavors, args["name"])
        return {"id": f"flavor-{args['name']}", "name": args["name"], "vcpus": vcpus,
                "ram": ram}

    def answer_getNetwork(self, args: dict) -> dict:
        external = self._found(self.networks, args["name"])
        return {"id": f"network-{args['name']}", "name": args["name"], "external": external}

    def answer_getAuthScope(self, args: dict) -> dict:
        return {"id": args["name"], "name": args["name"], "projectId": PROJECT}

    def answer_getLimitsV2(self, args: dict) -> dict:
        return {"id": args["projectId"], **self.limits}

    def answer_getQuotaV2(self, args: dict) -> dict:
        return {"id": args["projectId"], **self.network_quota}

    def answer_getQuotasetV3(self, args: dict) -> dict:
        by_type = {f"{kind}_{name}": "-1" for name in self.volume_types
                   for kind in ("volumes", "gigabytes", "snapshots")}
        return {"id": args["projectId"], **self.volume_quota, "volumeTypeQuota": by_type}

    def answer_getPortIds(self, args: dict) -> dict:
        names = [n for n in self.port_names if args.get("name") in (None, n)]
        return {"id": "ports", "ids": [f"port-{n}" for n in names]}

    @staticmethod
    def _found(table: dict, name: str):
        if name not in table:
            raise LookupError(name)
        return table[name]


@pytest.fixture(scope="module")
def plan() -> dict:
    estate = pipeline.open_estate(EXAMPLE_ESTATE)
    from migrate.core.plan import build_plan

    return build_plan(estate, pipeline.run_census(pipeline.context_of(estate)))


@pytest.fixture
def preflight() -> Iterator[ModuleType]:
    sys.path.insert(0, str(PROGRAM))
    sys.modules.pop("preflight", None)
    try:
        yield importlib.import_module("preflight")
    finally:
        sys.modules.pop("preflight", None)
        sys.path.remove(str(PROGRAM))


def checked(cloud: Cloud, check) -> str | None:
    """The preflight's refusal under the mocked cloud, or None when it passes."""
    pulumi.runtime.set_mocks(cloud, project="migrate-openstack", stack="test", preview=True,
                             organization="organization")
    refusal: list[str] = []

    @pulumi.runtime.test
    def program():
        try:
            check()
        except pulumi.RunError as error:
            refusal.append(str(error))

    program()
    return refusal[0] if refusal else None


def problems_of(message: str) -> list[str]:
    return [line.removeprefix("problem: ") for line in message.splitlines()
            if line.startswith("problem: ")]


def test_a_cloud_with_everything_passes_and_nothing_is_registered(preflight, plan):
    cloud = Cloud()
    assert checked(cloud, lambda: preflight.check(plan, "", SYSTEM)) is None
    assert cloud.resources == []
    tokens = {c.token.split(":")[-1] for c in cloud.calls}
    assert {"getImage", "getFlavor", "getLimitsV2", "getQuotaV2", "getQuotasetV3",
            "getPortIds"} <= tokens


def test_every_problem_is_named_at_once(preflight, plan):
    cloud = Cloud()
    cloud.images = {}
    del cloud.flavors["c8m16"]
    cloud.flavors["c4m8"] = (2, 8192)
    cloud.volume_types = ["__DEFAULT__"]
    cloud.limits |= {"maxTotalInstances": 4, "maxTotalCores": 8, "maxTotalRamSize": 8192}
    cloud.network_quota = {"port": 10, "securityGroup": 1, "securityGroupRule": 20}
    cloud.port_names = [f"other-{n}" for n in range(9)]
    cloud.volume_quota = {"volumes": 3, "gigabytes": 400, "perVolumeGigabytes": 100}

    message = checked(cloud, lambda: preflight.check(plan, "", SYSTEM))

    assert message is not None and message.startswith(preflight.MARKER)
    assert problems_of(message) == [
        "image debian-12-hardened (instance web): planned image debian-12, the cloud has no "
        "image of that name",
        "flavor c4m8 (instance web): planned 4 vCPU, 8192 MB RAM, the cloud has 2 vCPU, "
        "8192 MB RAM",
        "image debian-12-hardened (instance db): planned image debian-12, the cloud has no "
        "image of that name",
        "flavor c8m16 (instance db): planned 8 vCPU, 16384 MB RAM, the cloud has no flavor "
        "of that name",
        "volume type encrypted: planned for the encrypted volumes, the cloud has no volume "
        "type of that name",
        "quota for instances: planned 2, the cloud has 1 left (quota 4, 3 in use)",
        "quota for RAM (MB): planned 8192, the cloud has 4096 left (quota 8192, 4096 in use)",
        "quota for ports: planned 2, the cloud has 1 left (quota 10, 9 in use)",
        "quota for security groups: planned 2, the cloud has a quota of 1 (what is in use "
        "the API does not tell)",
        "quota for volumes: planned 4, the cloud has a quota of 3 (what is in use the API "
        "does not tell)",
        "quota for gigabytes: planned 442, the cloud has a quota of 400 (what is in use the "
        "API does not tell)",
        "quota for one volume (db, boot): planned 200 GB, the cloud has at most 100 GB per "
        "volume",
    ]
    assert cloud.resources == []


def test_instances_an_earlier_run_made_are_not_counted_twice(preflight, plan):
    cloud = Cloud()
    system = select_system(plan, SYSTEM)
    cloud.port_names = [f"{i['resource_name']}-port" for i in system["instances"]]
    # exactly full: the system's own instances, cores and RAM are what is in use
    cloud.limits |= {"maxTotalInstances": 2, "totalInstancesUsed": 2, "maxTotalCores": 12,
                     "totalCoresUsed": 12, "maxTotalRamSize": 24576, "totalRamUsed": 24576}
    cloud.network_quota["port"] = 2
    assert checked(cloud, lambda: preflight.check(plan, "", SYSTEM)) is None
    cloud.port_names = cloud.port_names[:1]
    message = checked(cloud, lambda: preflight.check(plan, "", SYSTEM))
    assert problems_of(message) == [
        "quota for instances: planned 1, the cloud has 0 left (quota 2, 2 in use)",
        "quota for cores: planned 8, the cloud has 0 left (quota 12, 12 in use)",
        "quota for RAM (MB): planned 16384, the cloud has 0 left (quota 24576, 24576 in use)",
    ]


@pytest.mark.parametrize(("name", "problem"), [
    ("egov-ext", None),
    ("nowhere", "external network nowhere: planned as the routers' gateway, the cloud has "
                "no network of that name"),
    ("tenant", "external network tenant: planned an external network, the cloud has a "
               "network of that name that is not external"),
])
def test_the_network_stack_needs_an_external_network(preflight, plan, name, problem):
    changed = {**plan, "cloud": {**plan["cloud"], "openstack": {
        **plan["cloud"]["openstack"], "external_network": name}}}
    message = checked(Cloud(), lambda: preflight.check(changed, plan["networks"][0]["key"], ""))
    assert (problems_of(message) if message else []) == ([problem] if problem else [])


@pytest.fixture
def whole_program() -> Iterator[None]:
    """The program's own modules importable as __main__ imports them; forgotten afterwards."""
    sys.path.insert(0, str(PROGRAM))
    try:
        yield
    finally:
        pulumi.runtime.set_all_config({})
        for name in ("compute", "floating", "network", "preflight", "security"):
            sys.modules.pop(name, None)
        sys.path.remove(str(PROGRAM))


def run_main(cloud: Cloud, plan_file: Path, system_id: str) -> str | None:
    """__main__.py of the program for one system stack; the refusal, or None."""
    pulumi.runtime.set_mocks(cloud, project="migrate-openstack", stack="test", preview=True,
                             organization="organization")
    pulumi.runtime.set_all_config({"migrate:plan": str(plan_file), "migrate:system": system_id})
    refusal: list[str] = []

    @pulumi.runtime.test
    def program():
        try:
            runpy.run_path(str(PROGRAM / "__main__.py"), run_name="__main__")
        except pulumi.RunError as error:
            refusal.append(str(error))

    program()
    return refusal[0] if refusal else None


def test_the_program_refuses_before_it_registers_any_resource(whole_program, plan, tmp_path):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    ready = Cloud()
    assert run_main(ready, plan_file, SYSTEM) is None
    assert any(r.typ == "openstack:compute/instance:Instance" for r in ready.resources)
    lacking = Cloud()
    del lacking.flavors["c8m16"]
    message = run_main(lacking, plan_file, SYSTEM)
    assert problems_of(message) == [
        "flavor c8m16 (instance db): planned 8 vCPU, 16384 MB RAM, the cloud has no flavor "
        "of that name"]
    assert lacking.resources == []


def test_every_invoke_argument_is_a_schema_input(preflight, plan):
    schema = json.loads(provider.schema_path().read_text())
    cloud = Cloud()
    checked(cloud, lambda: preflight.check(plan, "", SYSTEM))
    checked(cloud, lambda: preflight.check(plan, plan["networks"][0]["key"], ""))
    assert check_against_schema(schema, cloud) == []


REFUSAL = """migrate-preflight: 2 problems in the cloud; the stack was not changed
problem: image x (instance app): planned image debian-12, the cloud has no image of that name
problem: quota for ports: planned 2, the cloud has 1 left (quota 10, 9 in use)
hint: upload image x to the cloud; ask the cloud's operators for more quota in the project"""


def test_a_refusal_becomes_environment_not_ready_with_every_problem_and_the_hint():
    tracker = EventTracker("sys-a", lambda _line: None)
    tracker.errors.append((None, REFUSAL))
    # the engine's own output repeats the message, indented
    error = Exception("error: " + REFUSAL.replace("\n", "\n    "))
    failure = _stage_failed("sys-a", "preview", error, tracker)
    assert isinstance(failure, EnvironmentNotReady)
    assert failure.exit_code == EXIT_ENVIRONMENT
    assert failure.message == (
        "preview of stack sys-a stopped before changing it, the cloud lacks what the plan "
        "needs: image x (instance app): planned image debian-12, the cloud has no image of that "
        "name; quota for ports: planned 2, the cloud has 1 left (quota 10, 9 in use)")
    assert failure.hint == ("upload image x to the cloud; ask the cloud's operators for more "
                            "quota in the project")


def test_other_engine_failures_stay_stage_failed():
    tracker = EventTracker("sys-a", lambda _line: None)
    tracker.errors.append(("urn:pulumi:s::p::openstack:compute/instance:Instance::a",
                           "Error creating OpenStack server: Quota exceeded"))
    failure = _stage_failed("sys-a", "up", Exception("exit status 255"), tracker)
    assert type(failure) is StageFailed


def test_refusals_of_several_stacks_are_reported_together():
    from migrate.stages.provision import _all_failures

    refused = [EnvironmentNotReady("preview of stack sys-a stopped", "create flavor x"),
               EnvironmentNotReady("preview of stack sys-b stopped", "create flavor x")]
    combined = _all_failures(refused)
    assert isinstance(combined, EnvironmentNotReady)
    assert "sys-a" in combined.message and "sys-b" in combined.message
    assert combined.hint == "create flavor x"
    mixed = _all_failures([*refused, StageFailed("up of stack sys-c failed", "run again")])
    assert isinstance(mixed, StageFailed) and "sys-c" in mixed.message


@pytest.mark.parametrize(("spec", "problem"), [
    ({}, "volume type encrypted: planned with encryption, for the encrypted volumes, the "
         "cloud has a volume type of that name without encryption (no LUKS or plain "
         "provider)"),
    ({"provider": "luks", "cipher": "aes-xts-plain64", "key_size": 256}, None),
    (None, None),  # not shown to this user: checked per volume once the volumes exist
])
def test_a_volume_type_that_does_not_encrypt_is_named(preflight, plan, monkeypatch, spec,
                                                      problem):
    asked: list[str] = []
    monkeypatch.setattr(preflight, "volume_type_encryption",
                        lambda name: asked.append(name) or spec)
    message = checked(Cloud(), lambda: preflight.check(plan, "", SYSTEM))
    assert asked == ["encrypted"]
    assert (problems_of(message) if message else None) == ([problem] if problem else None)


def test_floating_ips_need_their_network_and_quota(preflight, openstack_plan):
    ready = Cloud()
    assert checked(ready, lambda: preflight.check(openstack_plan, "", "sjj-tyrz")) is None
    assert "egov-ext" in [c.args.get("name") for c in ready.calls
                          if c.token.endswith("getNetwork")]
    lacking = Cloud()
    lacking.networks = {"egov-ext": False}
    lacking.network_quota["floatingip"] = 0
    message = checked(lacking, lambda: preflight.check(openstack_plan, "", "sjj-tyrz"))
    assert problems_of(message) == [
        "floating network egov-ext: planned an external network, the cloud has a network of "
        "that name that is not external",
        "quota for floating IPs: planned 1, the cloud has a quota of 0 (what is in use the API "
        "does not tell)"]
    assert "cloud.openstack.floating_network" in message
    # a system without a floating IP asks nothing about them
    quiet = Cloud()
    quiet.network_quota["floatingip"] = 0
    assert checked(quiet, lambda: preflight.check(openstack_plan, "", SYSTEM)) is None
    assert not any(c.token.endswith("getNetwork") for c in quiet.calls)
