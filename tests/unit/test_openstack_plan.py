"""What the plan gives an instance on OpenStack besides its flows: egress to the cloud's
metadata service, resolvers and time servers (cloud.openstack), and a floating IP only for
an Internet-zone instance that a flow from ``internet`` reaches. Other targets' plans get
neither (the golden plan, a sandbox plan, stays as it was)."""

from __future__ import annotations

from pathlib import Path

from migrate.core.stackplan import select_system
from migrate.stages.runbook import system_resources
from tests.conftest import edit
from tests.unit.test_plan import plan_of
from tests.unit.test_plan_apply import written_plan_fits_its_schema

CLOUD_SERVICES = ("metadata", "dns", "ntp")


def as_openstack(estate: Path, settings: str = "") -> None:
    edit(estate / "migrate.yaml", "target: sandbox ", "target: openstack ")
    if settings:
        edit(estate / "migrate.yaml", "    external_network: egov-ext",
             "    external_network: egov-ext\n" + settings)


def service_rules(system: dict) -> list[tuple]:
    return sorted((r["instance"], r["protocol"], r["port"], r["peer"]["kind"],
                   r["peer"]["cidr"], r["origin"])
                  for r in system["security_rules"] if r["origin"] in CLOUD_SERVICES)


def test_openstack_instances_may_reach_metadata_resolvers_and_time_servers(estate):
    as_openstack(estate, "    dns_servers: [10.0.0.53, 10.0.0.54]\n"
                         "    ntp_servers: [10.0.0.123]")
    plan = plan_of(estate)
    for system in plan["systems"]:
        expected = []
        for instance in system["instances"]:
            name = instance["name"]
            expected += [(name, "tcp", 80, "metadata_service", "169.254.169.254/32", "metadata"),
                         (name, "udp", 53, "dns_server", "10.0.0.53/32", "dns"),
                         (name, "tcp", 53, "dns_server", "10.0.0.53/32", "dns"),
                         (name, "udp", 53, "dns_server", "10.0.0.54/32", "dns"),
                         (name, "tcp", 53, "dns_server", "10.0.0.54/32", "dns"),
                         (name, "udp", 123, "ntp_server", "10.0.0.123/32", "ntp")]
        assert service_rules(system) == sorted(expected), system["id"]
        found = [r for r in system["security_rules"] if r["origin"] in CLOUD_SERVICES]
        assert all(r["direction"] == "egress" and not r["temporary"] for r in found)
    # what migrate.yaml sets is recorded with the plan, so a change shows as one
    assert plan["cloud"]["openstack"]["dns_servers"] == ["10.0.0.53", "10.0.0.54"]


def test_by_default_only_the_metadata_service_and_none_on_a_cloud_of_config_drives(estate):
    as_openstack(estate)
    plan = plan_of(estate)
    system = select_system(plan, "sjj-tyrz")
    assert service_rules(system) == [
        ("db", "tcp", 80, "metadata_service", "169.254.169.254/32", "metadata"),
        ("web", "tcp", 80, "metadata_service", "169.254.169.254/32", "metadata")]
    assert set(plan["cloud"]["openstack"]) == {"cloud", "external_network",
                                               "encrypted_volume_type"}
    edit(estate / "migrate.yaml", "    external_network: egov-ext",
         "    external_network: egov-ext\n    metadata_service: false")
    plan = plan_of(estate)
    assert all(service_rules(s) == [] for s in plan["systems"])
    assert plan["cloud"]["openstack"]["metadata_service"] is False


def test_a_sandbox_plan_gets_neither_rules_nor_floating_ips(estate):
    # the example estate names an OpenStack, but rehearses on the sandbox
    edit(estate / "migrate.yaml", "    external_network: egov-ext",
         "    external_network: egov-ext\n    dns_servers: [10.0.0.53]")
    plan = plan_of(estate)
    assert all(service_rules(s) == [] for s in plan["systems"])
    assert all("floating_ip" not in i for s in plan["systems"] for i in s["instances"])


def test_only_an_internet_zone_instance_reached_from_internet_gets_a_floating_ip(estate):
    as_openstack(estate)
    plan = plan_of(estate)
    given = {(s["id"], i["name"]): i["floating_ip"]
             for s in plan["systems"] for i in s["instances"]}
    assert given.pop(("sjj-tyrz", "web")) == {"network": "egov-ext"}
    assert set(given.values()) == {None}  # its db, and every egov_extranet instance
    edit(estate / "migrate.yaml", "    external_network: egov-ext",
         "    external_network: egov-ext\n    floating_network: egov-public")
    instances = select_system(plan_of(estate), "sjj-tyrz")["instances"]
    assert {i["name"]: i["floating_ip"] for i in instances} == {
        "web": {"network": "egov-public"}, "db": None}


def test_an_openstack_plan_validates_against_the_shipped_schema_and_the_model(estate, run_cli):
    as_openstack(estate, "    dns_servers: [10.0.0.53]\n    ntp_servers: [10.0.0.123]")
    assert run_cli("plan", estate).code == 0
    written_plan_fits_its_schema(estate)


def test_the_runbook_says_why_each_cloud_rule_exists_and_which_instance_is_exposed(estate):
    as_openstack(estate, "    dns_servers: [10.0.0.53]\n    ntp_servers: [10.0.0.123]")
    plan = plan_of(estate)
    resources = system_resources(plan, select_system(plan, "sjj-tyrz"))
    origins = {row[4] for row in resources["rules"]}
    assert {"云平台元数据服务", "域名解析", "时间同步"} <= origins
    addresses = {row[0]: row[4] for row in resources["instances"]}
    assert addresses["sjj-tyrz-web"].endswith("（浮动 IP，egov-ext）")
    assert "浮动" not in addresses["sjj-tyrz-db"]
