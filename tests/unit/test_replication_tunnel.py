"""The replication tunnel, its pure parts: a replicated database's connection goes through the
source's ssh to its target (``ssh -R`` from the source, loopback at both ends), so the
inventory gives each replicating source host its forwards (a port on its target's loopback
per method, distinct for each source host an instance replaces) and each target the ports its
authorized migration key may listen on; a host that replicates nothing gets no forward, and
its target's key no port forwarding at all."""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from migrate.adapters.inventory import replication_tunnel, tunnel_ports
from tests.unit.example_inventory import example_inventory

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def database(host: str, engine: str, method: str) -> dict:
    return {"host": host, "engine": engine, "name": f"{host}_{engine}", "method": method}


SYSTEM = {
    "instances": [{"name": "app", "replaces": ["app01", "db01", "db02"]},
                  {"name": "web", "replaces": ["web01"]}],
    "data": {"databases": [database("db01", "postgresql", "logical_replication"),
                           database("db01", "postgresql", "final_dump"),
                           database("db02", "mariadb", "binlog_replication"),
                           database("db02", "postgresql", "logical_replication"),
                           database("web01", "postgresql", "final_dump")]},
}


def test_each_replicating_source_gets_a_forward_per_method_to_its_database_port() -> None:
    assert replication_tunnel(SYSTEM, "db01") == [
        {"method": "logical_replication", "port": 15433, "to": 5432}]
    assert replication_tunnel(SYSTEM, "db02") == [
        {"method": "binlog_replication", "port": 13308, "to": 3306},
        {"method": "logical_replication", "port": 15434, "to": 5432}]


def test_a_source_that_replicates_nothing_gets_no_tunnel() -> None:
    assert replication_tunnel(SYSTEM, "app01") == []
    assert replication_tunnel(SYSTEM, "web01") == []


def test_a_target_admits_the_listens_of_the_tunnels_into_it_and_no_other() -> None:
    assert tunnel_ports(SYSTEM, "app") == [13308, 15433, 15434]
    assert tunnel_ports(SYSTEM, "web") == []


def authorized_options(ports: list[int]) -> str:
    """The options prepare_target gives the migration key on a target with these tunnel
    ports (its task's expression, plain Jinja: a loop, no filter of Ansible's)."""
    tasks = yaml.safe_load((PLAYBOOKS / "roles/prepare_target/tasks/target.yml").read_text())
    task = next(t for t in tasks if t["name"] == "Authorize the temporary migration key for root")
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return environment.from_string(task["vars"]["prepare_target_forwarding"]).render(
        replication_tunnel_ports=ports)


def test_the_migration_key_may_listen_only_on_the_tunnel_ports_of_its_target() -> None:
    assert authorized_options([]) == "no-port-forwarding"
    assert authorized_options([13306, 15432]) == (
        'permitlisten="127.0.0.1:13306",permitopen="127.0.0.1:13306",'
        'permitlisten="127.0.0.1:15432",permitopen="127.0.0.1:15432"')


def test_the_inventory_carries_the_tunnels(estate, tmp_path) -> None:
    system, inventory = example_inventory(estate, tmp_path, "zrj-bdcdj")
    (replicated,) = system["data"]["databases"]
    assert replicated["method"] == "logical_replication"
    document = inventory["children"]
    sources, instances = document["source"]["hosts"], document["target"]["hosts"]
    assert {name: host["replication_tunnel"] for name, host in sources.items()} == {
        "web1": [], "file1": [],
        "db1": [{"method": "logical_replication", "port": 15432, "to": 5432}]}
    assert {host["instance"]: host["replication_tunnel_ports"]
            for host in instances.values()} == {"web": [], "file": [], "db": [15432]}
