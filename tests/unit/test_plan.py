from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from migrate.core.plan import allocate, render_plan
from migrate.orchestrate import pipeline
from tests.conftest import EXAMPLE_ESTATE, edit
from tests.factories import system_dict

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def plan_of(estate_path: Path, previous: dict | None = None) -> dict:
    estate = pipeline.open_estate(estate_path)
    census = pipeline.run_census(pipeline.context_of(estate))
    from migrate.core.plan import build_plan

    return build_plan(estate, census, previous=previous)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1" and path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
        pytest.fail(f"{name} rewritten: review 'git diff {path}', then rerun without "
                    "UPDATE_GOLDEN (a rewritten golden file never passes the run that wrote it)")
    assert path.read_text(encoding="utf-8") == text, (
        f"{name} differs from the golden file; if the change is intended, rerun with "
        "UPDATE_GOLDEN=1 and review the diff")


def test_example_plan_matches_golden():
    check_golden("example-plan.json", render_plan(plan_of(EXAMPLE_ESTATE)))


def test_example_census_matches_golden():
    estate = pipeline.open_estate(EXAMPLE_ESTATE)
    census = pipeline.run_census(pipeline.context_of(estate)).as_dict()
    check_golden("example-census.json",
                 json.dumps(census, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def test_plan_is_byte_identical_run_to_run(run_cli, estate):
    first = run_cli("plan", estate, "--output", "json")
    written = (estate / ".migrate/plan.json").read_bytes()
    second = run_cli("plan", estate, "--output", "json")
    assert first.code == second.code == 0
    assert (estate / ".migrate/plan.json").read_bytes() == written
    assert json.loads(first.stdout)["changed"] is True
    assert json.loads(second.stdout)["changed"] is False


def test_waves_follow_the_dependency_chain_and_skip_non_migrating(run_cli, estate):
    result = run_cli("plan", estate, "--output", "json")
    waves = json.loads(result.stdout)["waves"]
    assert waves == [
        {"number": 1, "systems": ["scj-qyxy", "sjj-tyrz", "wjw-fybj"]},
        {"number": 2, "systems": ["rsj-sbcx", "zrj-bdcdj"]},
        {"number": 3, "systems": ["mzj-shjz"]},
    ]
    in_waves = {s for w in waves for s in w["systems"]}
    assert not in_waves & {"gaj-rkhc", "yjj-yjzh", "rsj-ldjc", "fgw-xyxx"}


def test_smallest_fitting_flavor_and_level_three_encryption():
    plan = plan_of(EXAMPLE_ESTATE)
    systems = {s["id"]: s for s in plan["systems"]}
    tyrz = {i["name"]: i for i in systems["sjj-tyrz"]["instances"]}
    assert tyrz["web"]["flavor"] == "c4m8"      # 4 vCPU / 8 GB fits exactly
    assert tyrz["db"]["flavor"] == "c8m16"      # 16 GB needs the largest
    assert tyrz["db"]["boot_volume"]["encrypted"] is True
    assert all(v["encrypted"] for v in tyrz["db"]["volumes"])
    sbcx = {i["name"]: i for i in systems["rsj-sbcx"]["instances"]}
    assert sbcx["web"]["flavor"] == "c2m4"
    assert sbcx["db"]["boot_volume"]["encrypted"] is False
    assert sbcx["web"]["volumes"] == [{"encrypted": False, "holds": "files",
                                       "mount": "/srv/sbcx/uploads",
                                       "name": "data-srv-sbcx-uploads", "size_gb": 60}]


def test_addresses_lie_in_the_department_subnet_of_the_zone():
    import ipaddress

    plan = plan_of(EXAMPLE_ESTATE)
    networks = {n["key"]: n for n in plan["networks"]}
    seen = set()
    for planned in plan["systems"]:
        network = networks[planned["network"]]
        zone_cidr = {"internet": "10.10.0.0/16", "egov_extranet": "10.20.0.0/16"}[
            planned["zone"]]
        assert ipaddress.ip_network(network["cidr"]).subnet_of(ipaddress.ip_network(zone_cidr))
        for instance in planned["instances"]:
            address = ipaddress.ip_address(instance["address"])
            assert address in ipaddress.ip_network(network["cidr"])
            assert address != ipaddress.ip_address(network["gateway"])
            assert instance["address"] not in seen
            seen.add(instance["address"])


def test_adding_systems_keeps_every_existing_allocation(estate):
    before = plan_of(estate)
    import yaml

    new_department = system_dict("jyj-xjxt", department={"code": "jyj", "name": "市教育局"})
    same_department = system_dict(
        "rsj-jyfw", department={"code": "rsj", "name": "市人力资源和社会保障局"},
        source={"hosts": [{"name": "app1", "address": "192.168.10.77", "roles": ["web"]}]})
    new_department["source"]["hosts"][0]["address"] = "192.168.15.5"
    for doc in (new_department, same_department):
        (estate / "systems" / f"{doc['id']}.yaml").write_text(
            yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    after = plan_of(estate, previous=before)

    def addresses(plan: dict) -> dict:
        return {(s["id"], i["name"]): i["address"] for s in plan["systems"]
                for i in s["instances"]}

    old, new = addresses(before), addresses(after)
    assert {k: new[k] for k in old} == old
    assert {n["key"]: n["cidr"] for n in after["networks"]}.items() >= {
        n["key"]: n["cidr"] for n in before["networks"]}.items()
    assert ("jyj-xjxt", "app") in new and ("rsj-jyfw", "app") in new


def test_allocation_is_sticky_and_probes_past_collisions():
    first = allocate(["a", "b", "c"], 1, 3, {})
    assert sorted(first.values()) == [1, 2, 3]
    assert allocate(["a", "b", "c", "d"], 1, 4, first) == {**first, "d": 4}
    assert allocate(["x"], 1, 3, {"x": 2}) == {"x": 2}
    with pytest.raises(Exception, match="no free address slot"):
        allocate(["a", "b"], 1, 1, {})


def test_security_rules_open_nothing_wider_than_the_flows():
    plan = plan_of(EXAMPLE_ESTATE)
    for planned in plan["systems"]:
        for rule in planned["security_rules"]:
            if rule["peer"]["cidr"] == "0.0.0.0/0":
                assert planned["zone"] == "internet"
                assert rule["direction"] == "ingress"
                assert rule["origin"].startswith("target.flows")
    tyrz = next(s for s in plan["systems"] if s["id"] == "sjj-tyrz")
    web_ingress = sorted((r["port"], r["peer"]["kind"]) for r in tyrz["security_rules"]
                         if r["instance"] == "web" and r["direction"] == "ingress")
    assert web_ingress == [(22, "ops"), (22, "source_host"), (8443, "exchange"),
                           (8443, "internet")]
    db_ingress = [(r["port"], r["peer"]) for r in tyrz["security_rules"]
                  if r["instance"] == "db" and r["direction"] == "ingress"
                  and r["origin"].startswith("target.flows")]
    assert db_ingress == [(5432, {"cidr": f"{tyrz['instances'][0]['address']}/32",
                                  "instance": "web", "kind": "instance",
                                  "security_group": "sg-sjj-tyrz-web"})]


def test_dependency_on_a_merged_system_follows_its_survivor(estate):
    edit(estate / "systems/wjw-fybj.yaml", "depends_on: []", "depends_on: [fgw-xyxx]")
    plan = plan_of(estate)
    fybj = next(s for s in plan["systems"] if s["id"] == "wjw-fybj")
    assert fybj["depends_on"] == ["scj-qyxy"]
    assert fybj["wave"] == 2
    assert any("merged into scj-qyxy" in w for w in plan["warnings"])


def test_dependency_on_a_system_that_does_not_move_is_a_warning(estate):
    edit(estate / "systems/wjw-fybj.yaml", "depends_on: []", "depends_on: [gaj-rkhc]")
    plan = plan_of(estate)
    assert any("wjw-fybj: depends on gaj-rkhc, which does not move (refuse)" in w
               for w in plan["warnings"])
    assert next(s for s in plan["systems"] if s["id"] == "wjw-fybj")["wave"] == 1


def test_cutover_estimate_over_the_budget_is_warned(estate):
    edit(estate / "systems/wjw-fybj.yaml", "max_downtime_minutes: 30", "max_downtime_minutes: 5")
    plan = plan_of(estate)
    fybj = next(s for s in plan["systems"] if s["id"] == "wjw-fybj")
    assert fybj["estimates"]["cutover_minutes"] > 5
    assert any(w.startswith("wjw-fybj: estimated cutover") for w in plan["warnings"])


def test_large_databases_use_replication_small_ones_a_final_dump():
    plan = plan_of(EXAMPLE_ESTATE)
    methods = {d["name"]: d["method"] for s in plan["systems"] for d in s["data"]["databases"]}
    assert methods["fybj"] == "final_dump"          # 1.5 GB
    assert methods["bdcdj"] == "logical_replication"  # 95 GB


def test_replicated_databases_open_no_database_port_between_source_and_target():
    """The replication connection goes through the replication tunnel (the source's ssh to
    its target): the only path between them is the temporary ssh from the source."""
    plan = plan_of(EXAMPLE_ESTATE)
    replicating = [s for s in plan["systems"] if any(
        d["method"] == "logical_replication" for d in s["data"]["databases"])]
    assert replicating  # the example estate replicates (bdcdj's 95 GB among them)
    for planned in plan["systems"]:
        hosts = {h["name"]: h["address"] for h in planned["source_hosts"]}
        with_sources = [(r["instance"], r["direction"], r["port"], r["peer"]["cidr"],
                         r["origin"], r["temporary"]) for r in planned["security_rules"]
                        if r["peer"]["kind"] == "source_host"]
        assert with_sources == sorted(
            (i["name"], "ingress", 22, f"{hosts[host]}/32", "migration", True)
            for i in planned["instances"] for host in i["replaces"]), planned["id"]


def test_census_date_comes_from_the_option_first(estate):
    estate_model = pipeline.open_estate(estate)
    assert pipeline.run_census(pipeline.context_of(estate_model)).as_of == date(2026, 11, 20)
    assert pipeline.run_census(pipeline.context_of(estate_model), date(2027, 6, 1)).verdicts[
        "rsj-sbcx"].disposition == "decommission"
