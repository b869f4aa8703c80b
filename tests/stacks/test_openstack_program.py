"""The OpenStack program under Pulumi's own mocks (no OpenStack is reachable here)."""

from __future__ import annotations

import copy
from collections import Counter

import pulumi
import pytest
import yaml

from migrate.core.stackplan import select_network, select_system
from migrate.orchestrate import pipeline
from tests.conftest import EXAMPLE_ESTATE

# pulumi_openstack warns at import about its own deprecated resource aliases; nothing here
# uses them. Every other warning stays an error.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:openstack\..* has been deprecated:DeprecationWarning")


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.calls: list[pulumi.runtime.MockCallArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        if args.typ == "pulumi:pulumi:StackReference":
            return [args.name, {"name": args.name, "outputs": {
                "network_id": f"id-of-{args.name}", "subnet_id": f"subnet-of-{args.name}"}}]
        if args.typ == "openstack:networking/floatingIp:FloatingIp":
            return [f"id-of-{args.name}", {**args.inputs, "address": f"address-of-{args.name}"}]
        return [f"id-of-{args.name}", dict(args.inputs)]

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append(args)
        if args.token == "openstack:images/getImage:getImage":
            return {"id": f"image-{args.args['name']}", "name": args.args["name"]}
        if args.token == "openstack:networking/getNetwork:getNetwork":
            return {"id": f"external-{args.args['name']}", "name": args.args["name"]}
        raise AssertionError(f"unexpected invoke {args.token}")

    def of_type(self, typ: str) -> list:
        return [r for r in self.resources if r.typ == typ]


@pytest.fixture(scope="module")
def plan() -> dict:
    estate = pipeline.open_estate(EXAMPLE_ESTATE)
    from migrate.core.plan import build_plan

    return build_plan(estate, pipeline.run_census(pipeline.context_of(estate)))


def run_program(build) -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="migrate-openstack", stack="test", preview=False,
                             organization="organization")

    @pulumi.runtime.test
    def program():
        return pulumi.Output.all(*build())

    program()
    return mocks


def system_resources(modules: dict, plan: dict, system_id: str) -> RecordingMocks:
    def build():
        system = select_system(plan, system_id)
        attached = modules["network"].attach(system)
        groups = modules["security"].security_groups(system)
        built = modules["compute"].instances(system, attached, groups,
                                             plan["cloud"]["openstack"])
        return [b.server.id for b in built.values()]

    return run_program(build)


def rule_signature(rule_inputs: dict, groups_by_id: dict) -> tuple:
    remote = rule_inputs.get("remoteIpPrefix") or groups_by_id[rule_inputs["remoteGroupId"]]
    return (groups_by_id[rule_inputs["securityGroupId"]], rule_inputs["direction"],
            rule_inputs["protocol"], rule_inputs["portRangeMin"], rule_inputs["portRangeMax"],
            remote)


def planned_signature(system: dict, rule: dict) -> tuple:
    peer = rule["peer"]
    remote = f"sg-{system['id']}-{peer['instance']}" if peer["kind"] == "instance" \
        else peer["cidr"]
    return (f"sg-{system['id']}-{rule['instance']}", rule["direction"], rule["protocol"],
            rule["port"], rule["port"], remote)


def test_every_system_gets_exactly_the_planned_rules_and_no_wider(program_modules, plan):
    modules = program_modules("openstack")
    for system in plan["systems"]:
        mocks = system_resources(modules, plan, system["id"])
        groups = mocks.of_type("openstack:networking/secGroup:SecGroup")
        assert {g.inputs["name"] for g in groups} == {i["security_group"]
                                                     for i in system["instances"]}
        assert all(g.inputs["deleteDefaultRules"] is True for g in groups), "default deny"
        by_id = {f"id-of-{g.name}": g.inputs["name"] for g in groups}
        created = Counter(rule_signature(r.inputs, by_id)
                          for r in mocks.of_type("openstack:networking/secGroupRule:SecGroupRule"))
        planned = Counter(planned_signature(system, r) for r in system["security_rules"])
        assert created == planned, system["id"]
        world = [sig for sig in created if sig[5] == "0.0.0.0/0"]
        if system["id"] == "sjj-tyrz":
            assert world == [("sg-sjj-tyrz-web", "ingress", "tcp", 8443, 8443, "0.0.0.0/0")]
        else:
            assert world == [], f"{system['id']} must not be open to the Internet"


def test_a_rule_added_to_the_plan_renames_no_other_rule(program_modules, plan):
    """Rule resources are named by what they allow, never by their position: otherwise a
    new rule renames the later ones and neutron refuses the renamed copies (409)."""
    modules = program_modules("openstack")
    system = next(s for s in plan["systems"] if len(s["security_rules"]) > 3)

    def rule_names(planned: dict) -> set[str]:
        mocks = system_resources(modules, planned, system["id"])
        return {r.name for r in mocks.of_type("openstack:networking/secGroupRule:SecGroupRule")}

    before = rule_names(plan)
    grown = copy.deepcopy(plan)
    mine = next(s for s in grown["systems"] if s["id"] == system["id"])
    first = mine["security_rules"][0]
    mine["security_rules"].insert(0, {**first, "port": 9999, "origin": "target.flows[9]"})
    after = rule_names(grown)
    assert before < after and len(after - before) == 1


def test_level_three_volumes_are_encrypted_level_two_are_not(program_modules, plan):
    modules = program_modules("openstack")
    expectations = {"zrj-bdcdj": "encrypted", "rsj-sbcx": None}
    for system_id, volume_type in expectations.items():
        mocks = system_resources(modules, plan, system_id)
        volumes = mocks.of_type("openstack:blockstorage/volume:Volume")
        assert volumes, system_id
        assert {v.inputs.get("volumeType") for v in volumes} == {volume_type}, system_id


def test_instances_have_the_planned_flavor_address_image_and_tags(program_modules, plan):
    modules = program_modules("openstack")
    system = select_system(plan, "zrj-bdcdj")
    mocks = system_resources(modules, plan, "zrj-bdcdj")
    servers = {s.inputs["name"]: s.inputs
               for s in mocks.of_type("openstack:compute/instance:Instance")}
    ports = {p.inputs["name"]: p.inputs for p in mocks.of_type("openstack:networking/port:Port")}
    boots = {v.inputs["name"]: v.inputs for v in mocks.of_type(
        "openstack:blockstorage/volume:Volume")}
    assert set(servers) == {i["resource_name"] for i in system["instances"]}
    for planned in system["instances"]:
        name = planned["resource_name"]
        assert servers[name]["flavorName"] == planned["flavor"]
        assert ports[f"{name}-port"]["fixedIps"][0]["ipAddress"] == planned["address"]
        assert ports[f"{name}-port"]["networkId"] == "id-of-organization/migrate-openstack/" \
            "net-zrj-egov_extranet"
        assert boots[f"{name}-boot"]["imageId"] == "image-debian-12-hardened"
        assert boots[f"{name}-boot"]["size"] == planned["boot_volume"]["size_gb"]
        assert set(servers[name]["tags"]) >= {"department:zrj", "system:zrj-bdcdj",
                                              "protection-level:3"}
        # the boot volume first, then every data volume, all present from the first boot
        devices = servers[name]["blockDevices"]
        assert [(d["uuid"], d["bootIndex"]) for d in devices] == [
            (f"id-of-{name}-boot", 0)] + [(f"id-of-{name}-{v['name']}", -1)
                                          for v in planned["volumes"]]
        assert all(d["sourceType"] == d["destinationType"] == "volume" for d in devices)
        assert not any(d["deleteOnTermination"] for d in devices)
    assert not mocks.of_type("openstack:compute/volumeAttach:VolumeAttach")


def test_department_network_has_subnet_router_and_interface(program_modules, plan):
    modules = program_modules("openstack")
    planned = select_network(plan, "rsj-egov_extranet")

    def build():
        built = modules["network"].department_network(planned, plan["cloud"]["openstack"])
        return [built.network.id, built.subnet.id]

    mocks = run_program(build)
    (subnet,) = mocks.of_type("openstack:networking/subnet:Subnet")
    assert subnet.inputs["cidr"] == planned["cidr"]
    assert subnet.inputs["gatewayIp"] == planned["gateway"]
    (router,) = mocks.of_type("openstack:networking/router:Router")
    assert router.inputs["externalNetworkId"] == "external-egov-ext"
    assert router.inputs["enableSnat"] is False  # peers see the planned addresses
    assert len(mocks.of_type("openstack:networking/routerInterface:RouterInterface")) == 1


# ---- on OpenStack: egress to the cloud's services, floating IPs ----------------------------


def test_the_egress_to_the_clouds_services_is_created_udp_too(program_modules, openstack_plan):
    modules = program_modules("openstack")
    for system in openstack_plan["systems"]:
        mocks = system_resources(modules, openstack_plan, system["id"])
        groups = mocks.of_type("openstack:networking/secGroup:SecGroup")
        by_id = {f"id-of-{g.name}": g.inputs["name"] for g in groups}
        rules = mocks.of_type("openstack:networking/secGroupRule:SecGroupRule")
        created = Counter(rule_signature(r.inputs, by_id) for r in rules)
        assert created == Counter(planned_signature(system, r)
                                  for r in system["security_rules"]), system["id"]
        for instance in system["instances"]:
            group = instance["security_group"]
            assert {sig for sig in created if sig[0] == group and sig[3] in (53, 80, 123)} == {
                (group, "egress", "tcp", 80, 80, "169.254.169.254/32"),
                (group, "egress", "udp", 53, 53, "10.0.0.53/32"),
                (group, "egress", "tcp", 53, 53, "10.0.0.53/32"),
                (group, "egress", "udp", 53, 53, "10.0.0.54/32"),
                (group, "egress", "tcp", 53, 53, "10.0.0.54/32"),
                (group, "egress", "udp", 123, 123, "10.0.0.123/32")}
        origins = {r.inputs["description"] for r in rules}
        assert {"metadata", "dns", "ntp"} <= origins


def exported_instances(modules: dict, plan: dict, system_id: str) -> tuple[RecordingMocks, dict]:
    """The system's resources and its ``instances`` output as __main__ exports it."""
    exported: dict = {}

    def build():
        system = select_system(plan, system_id)
        attached = modules["network"].attach(system)
        groups = modules["security"].security_groups(system)
        built = modules["compute"].instances(system, attached, groups, plan["cloud"]["openstack"])
        outputs = modules["floating"].with_floating_addresses(
            modules["compute"].instance_outputs(system, built, plan["cloud"]["openstack"]),
            modules["floating"].floating_ips(system, built))
        return [pulumi.Output.from_input(outputs).apply(exported.update)]

    return run_program(build), exported


def test_only_the_internet_front_end_gets_a_floating_ip_on_its_port(program_modules,
                                                                    openstack_plan):
    modules = program_modules("openstack")
    mocks, exported = exported_instances(modules, openstack_plan, "sjj-tyrz")
    (address,) = mocks.of_type("openstack:networking/floatingIp:FloatingIp")
    assert address.name == "sjj-tyrz-web-floating-ip"
    assert address.inputs["pool"] == "egov-ext"
    (association,) = mocks.of_type(
        "openstack:networking/floatingIpAssociate:FloatingIpAssociate")
    assert association.inputs == {"floatingIp": "address-of-sjj-tyrz-web-floating-ip",
                                  "portId": "id-of-sjj-tyrz-web-port"}
    assert exported["web"]["floating_address"] == "address-of-sjj-tyrz-web-floating-ip"
    planned = {i["name"]: i for i in select_system(openstack_plan, "sjj-tyrz")["instances"]}
    assert exported["web"]["address"] == planned["web"]["address"]  # the fixed one beside it
    assert "floating_address" not in exported["db"]
    for system in openstack_plan["systems"]:
        if system["id"] != "sjj-tyrz":
            mocks, exported = exported_instances(modules, openstack_plan, system["id"])
            assert not mocks.of_type("openstack:networking/floatingIp:FloatingIp"), system["id"]
            assert not any("floating_address" in i for i in exported.values())


def test_a_plan_without_floating_ips_makes_none(program_modules, plan):
    # the sandbox's plan, or one made before floating IPs: its instances have no such key
    modules = program_modules("openstack")
    mocks, exported = exported_instances(modules, plan, "sjj-tyrz")
    assert not mocks.of_type("openstack:networking/floatingIp:FloatingIp")
    assert not mocks.of_type("openstack:networking/floatingIpAssociate:FloatingIpAssociate")
    assert set(exported) == {"web", "db"}


def test_the_subnet_hands_out_the_clouds_resolvers_when_set(program_modules, plan,
                                                            openstack_plan):
    modules = program_modules("openstack")

    def subnet_of(this_plan: dict):
        planned = select_network(this_plan, "rsj-egov_extranet")
        mocks = run_program(lambda: [modules["network"].department_network(
            planned, this_plan["cloud"]["openstack"]).subnet.id])
        (subnet,) = mocks.of_type("openstack:networking/subnet:Subnet")
        return subnet.inputs

    assert subnet_of(openstack_plan)["dnsNameservers"] == ["10.0.0.53", "10.0.0.54"]
    assert "dnsNameservers" not in subnet_of(plan)  # the cloud's own DHCP settings stay


def test_instances_get_a_config_drive_only_without_a_metadata_service(program_modules,
                                                                      openstack_plan):
    modules = program_modules("openstack")
    system_id = openstack_plan["systems"][0]["id"]
    served = system_resources(modules, openstack_plan, system_id)
    for instance in served.of_type("openstack:compute/instance:Instance"):
        assert "configDrive" not in instance.inputs
        assert yaml.safe_load(instance.inputs["userData"])["ntp"]["servers"] == ["10.0.0.123"]
    without = copy.deepcopy(openstack_plan)
    without["cloud"]["openstack"]["metadata_service"] = False
    drives = system_resources(modules, without, system_id)
    instances = drives.of_type("openstack:compute/instance:Instance")
    assert instances and all(i.inputs["configDrive"] is True for i in instances)
