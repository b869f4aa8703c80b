"""MariaDB databases (``engine: mariadb``) in the manifest, the plan and the comparison: the
schema accepts the engine, the plan dumps a small one and keeps a large one in step by binlog
replication (with a temporary path from the target to the source's port 3306), gives it a
data volume at /var/lib/mysql and reads its unqualified volatile tables as tables of the
database itself."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from migrate.core.model import SystemManifest
from migrate.core.safety import tree_problem
from migrate.orchestrate import pipeline
from migrate.stages.move.comparison import compare_tables, parse_table_sums
from tests.conftest import edit
from tests.factories import system_dict

SHJZ = "{host: app1, engine: postgresql, name: shjz, size_gb: 8, password: secret://db-shjz}"


def database(**fields: object) -> dict:
    return {"host": "app1", "engine": "mariadb", "name": "shop", "size_gb": 1,
            "password": "secret://db-shop", **fields}


def test_the_schema_accepts_mariadb_and_refuses_an_unknown_engine() -> None:
    accepted = SystemManifest.model_validate(
        system_dict("swj-shop", workload={"databases": [database()]}))
    assert accepted.workload.databases[0].engine == "mariadb"
    with pytest.raises(ValidationError, match="engine"):
        SystemManifest.model_validate(
            system_dict("swj-shop", workload={"databases": [database(engine="oracle")]}))


def test_the_generated_schema_lists_mariadb() -> None:
    schema = json.dumps(SystemManifest.model_json_schema())
    assert '"enum": ["postgresql", "mariadb"]' in schema


def mariadb_plan(estate, size_gb: float = 8, volatile: str = "") -> dict:
    manifest = estate / "systems" / "mzj-shjz.yaml"
    edit(manifest, SHJZ, "{host: app1, engine: mariadb, name: shjz, size_gb: "
                         f"{size_gb:g}, password: secret://db-shjz{volatile}}}")
    loaded = pipeline.open_estate(estate)
    census = pipeline.run_census(pipeline.context_of(loaded))
    from migrate.core.plan import build_plan

    return build_plan(loaded, census)


def shjz(plan: dict) -> dict:
    return next(s for s in plan["systems"] if s["id"] == "mzj-shjz")


def test_a_large_mariadb_database_is_kept_in_step_by_binlog_replication(estate) -> None:
    plan = mariadb_plan(estate)  # 8 GB: above dump_restore_max_gb (2 GB)
    (db,) = shjz(plan)["data"]["databases"]
    assert (db["engine"], db["method"]) == ("mariadb", "binlog_replication")
    assert not [w for w in plan["warnings"] if "shjz" in w and "dump" in w]
    # the target reads the source's binlog through the replication tunnel (the source's ssh
    # to it): no rule opens MariaDB's port, nor PostgreSQL's, between them
    assert not [r for r in shjz(plan)["security_rules"] if r["port"] in (3306, 5432)
                and r["peer"]["kind"] == "source_host"]
    assert [(r["instance"], r["direction"], r["port"], r["peer"]["host"], r["temporary"])
            for r in shjz(plan)["security_rules"] if r["peer"]["kind"] == "source_host"] == \
        [(db["instance"], "ingress", 22, "app1", True)]


def test_a_small_mariadb_database_is_dumped_without_a_warning(estate) -> None:
    plan = mariadb_plan(estate, size_gb=2)  # dump_restore_max_gb itself: still a dump
    assert shjz(plan)["data"]["databases"][0]["method"] == "final_dump"
    assert not [w for w in plan["warnings"] if "mariadb" in w]
    assert not [r for r in shjz(plan)["security_rules"] if r["port"] in (3306, 5432)]


def test_a_mariadb_database_gets_its_data_volume_at_var_lib_mysql(estate) -> None:
    volumes = {v["name"]: v for i in shjz(mariadb_plan(estate))["instances"]
               for v in i["volumes"]}
    assert "pgdata" not in volumes
    assert volumes["mysqldata"]["mount"] == "/var/lib/mysql"
    assert volumes["mysqldata"]["holds"] == "databases"
    assert volumes["mysqldata"]["size_gb"] == 12  # 8 GB x the volume margin 1.5


def test_unqualified_volatile_tables_of_mariadb_belong_to_the_database(estate) -> None:
    plan = mariadb_plan(estate, volatile=", volatile_tables: [sessions, other.cache]")
    assert shjz(plan)["data"]["databases"][0]["volatile_tables"] == ["other.cache",
                                                                     "shjz.sessions"]


def test_postgresql_databases_plan_as_before(estate) -> None:
    loaded = pipeline.open_estate(estate)
    from migrate.core.plan import build_plan

    plan = build_plan(loaded, pipeline.run_census(pipeline.context_of(loaded)))
    (db,) = shjz(plan)["data"]["databases"]
    assert (db["engine"], db["method"]) == ("postgresql", "logical_replication")
    assert [v["mount"] for i in shjz(plan)["instances"] for v in i["volumes"]
            if v["holds"] == "databases"] == ["/var/lib/postgresql"]


def test_mariadb_s_data_directory_never_moves_as_a_file_tree() -> None:
    assert "the database server's own data directory" in tree_problem("/var/lib/mysql/shop")


def test_mariadb_sums_compare_like_postgresql_s() -> None:
    here = parse_table_sums("shop.items 2000 84129011220941\nshop.events 3 1200\n")
    there = parse_table_sums("shop.items 2000 84129011220942\nshop.events 3 1200\n")
    compared = compare_tables(here, there, {"shop.sessions"})
    assert compared["differing"] == ["shop.items"]
    assert compared["volatile_unmatched"] == ["shop.sessions"]


def test_the_plan_runbook_says_what_binlog_replication_needs_of_the_source(
        estate, tmp_path) -> None:
    from migrate.stages.runbook import write_plan_runbooks

    plan = mariadb_plan(estate)
    write_plan_runbooks(pipeline.open_estate(estate), plan, tmp_path / "out", formats=["md"])
    text = (tmp_path / "out" / "plan" / "mzj-shjz.md").read_text(encoding="utf-8")
    assert "主从复制（binlog）" in text
    assert "binlog replication: shjz" in text
    assert "log_bin ON, binlog_format ROW, a non-zero server_id" in text
