"""What prepare_target puts on a target besides data: packages, configuration, rewrites."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from migrate.core.model import placeholder_names, render_placeholders
from migrate.core.plan import SANDBOX_MIRROR_PORT, build_plan
from migrate.orchestrate import pipeline
from migrate.rehearsal.sandbox import mirror
from migrate.rehearsal.sandbox.provider import firewall_rules
from tests.conftest import edit

FILTERS = (Path(__file__).resolve().parents[2] / "playbooks/roles/prepare_target"
           / "filter_plugins/rewrites.py")


def plan_of(estate_path: Path) -> dict:
    estate = pipeline.open_estate(estate_path)
    return build_plan(estate, pipeline.run_census(pipeline.context_of(estate)))


def system_of(plan: dict, sid: str) -> dict:
    return next(s for s in plan["systems"] if s["id"] == sid)


def test_placeholders_name_instances_and_render_to_addresses():
    assert placeholder_names("${db}:5432 ${web} $${db}") == ["db", "web"]
    assert render_placeholders("host=${db} literal $${db}", {"db": "10.0.0.5"}) == \
        "host=10.0.0.5 literal ${db}"


def test_the_plan_carries_configuration_and_rendered_rewrites(estate):
    system = system_of(plan_of(estate), "wjw-fybj")
    web = next(i for i in system["instances"] if i["name"] == "web")
    db = next(i for i in system["instances"] if i["name"] == "db")
    assert {"host": "web1", "path": "/opt/legacy/app.py"} in web["configuration"]
    assert web["rewrites"] == [{"host": "web1", "file": "/etc/legacy/fybj-web.json",
                                "old": '"host": "192.168.90.22"',
                                "new": f'"host": "{db["address"]}"'}]
    assert db["configuration"] == [] and db["rewrites"] == [] and db["packages"] == []


def test_packages_open_an_egress_rule_to_the_mirror_only_where_declared(estate):
    edit(estate / "systems/wjw-fybj.yaml",
         "{name: web, replaces: [web1], vcpu: 2, memory_gb: 4, disk_gb: 60,  image: debian-12}",
         "{name: web, replaces: [web1], vcpu: 2, memory_gb: 4, disk_gb: 60,  image: debian-12,"
         " packages: [tree, php-fpm, tree]}")
    system = system_of(plan_of(estate), "wjw-fybj")
    web = next(i for i in system["instances"] if i["name"] == "web")
    assert web["packages"] == ["php-fpm", "tree"]
    mirror_rules = [r for r in system["security_rules"] if r["origin"] == "packages"]
    assert [(r["instance"], r["direction"], r["port"]) for r in mirror_rules] == \
        [("web", "egress", SANDBOX_MIRROR_PORT)]
    assert SANDBOX_MIRROR_PORT == mirror.PORT
    # The sandbox resolves the mirror to the host's address on the exchange bridge.
    rules = firewall_rules(system, "web", "10.20.53.1")
    assert [r["networks"] for r in rules if r["origin"] == "packages"] == [["10.40.0.1/32"]]


def test_packages_on_openstack_need_a_mirror_with_an_address(run_cli, estate):
    edit(estate / "migrate.yaml", "target: sandbox", "target: openstack")
    edit(estate / "systems/wjw-fybj.yaml",
         "{name: web, replaces: [web1], vcpu: 2, memory_gb: 4, disk_gb: 60,  image: debian-12}",
         "{name: web, replaces: [web1], vcpu: 2, memory_gb: 4, disk_gb: 60,  image: debian-12,"
         " packages: [tree]}")
    result = run_cli("validate", estate)
    assert result.code == 2
    assert "target.instances[0].packages: packages need the cloud's package mirror" in \
        result.stderr
    edit(estate / "migrate.yaml", "  ops_network:",
         "  packages: {mirror: 'http://mirror.egov.local/debian'}\n  ops_network:")
    result = run_cli("validate", estate)
    assert "has no address for the targets' egress rule" in result.stderr
    edit(estate / "migrate.yaml", "  packages: {mirror: 'http://mirror.egov.local/debian'}",
         "  packages: {mirror: 'http://10.50.0.8:8080/debian'}")
    assert run_cli("validate", estate).code == 0
    system = system_of(plan_of(estate), "wjw-fybj")
    assert [(r["peer"]["cidr"], r["port"]) for r in system["security_rules"]
            if r["origin"] == "packages"] == [("10.50.0.8/32", 8080)]


@pytest.fixture(scope="module")
def rewritten():
    spec = importlib.util.spec_from_file_location("rewrites", FILTERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()["migrate_rewritten"]


def test_rewrites_apply_to_their_file_in_order_and_keep_every_other_byte(rewritten):
    rewrites = [{"file": "/etc/a.conf", "old": "192.168.1.2", "new": "10.0.0.9"},
                {"file": "/etc/b.conf", "old": "x", "new": "y"},
                {"file": "/etc/a.conf", "old": "port 1", "new": "port 2"}]
    text = "db 192.168.1.2 port 1\nagain 192.168.1.2\n\n"
    assert rewritten(text, rewrites, "/etc/a.conf") == "db 10.0.0.9 port 2\nagain 10.0.0.9\n\n"
    assert rewritten(text, rewrites, "/etc/c.conf") == text


def test_volatile_tables_are_planned_schema_qualified(estate):
    edit(estate / "systems/wjw-fybj.yaml", "password: secret://db-fybj}",
         "password: secret://db-fybj,\n       volatile_tables: [sessions, app.cache]}")
    system = system_of(plan_of(estate), "wjw-fybj")
    [database] = system["data"]["databases"]
    assert database["volatile_tables"] == ["app.cache", "public.sessions"]
