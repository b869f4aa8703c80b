"""What sandbox up plans for an estate (pure: no root, nothing touched)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from migrate.core.errors import InvalidInput
from migrate.orchestrate.pipeline import open_estate
from migrate.rehearsal.sandbox.estate_plan import (
    legacy_gateway,
    naming_problems,
    network_problems,
    plan_sandbox,
)
from migrate.rehearsal.sandbox.estate_secrets import needed_secrets
from tests.sandbox_estate.conftest import edit


def test_example_estate_plan(estate: Path) -> None:
    loaded = open_estate(estate)
    plan = plan_sandbox(loaded)
    hosts = {(sid, h.name, h.address) for sid, s in loaded.systems.items()
             for h in s.source.hosts}
    assert {(m.system_id, m.host, m.ip) for m in plan.legacy} == hosts
    assert len({m.machine for m in plan.machines}) == len(plan.machines) == len(hosts) + 1
    assert all(len(m.machine) <= 12 and len(b.device) <= 15
               for m in plan.machines for b in plan.bridges)
    legacy = {b.cidr: b for b in plan.bridges if b.role == "legacy"}
    assert legacy["192.168.10.0/24"].gateway == "192.168.10.254/24"
    assert legacy["192.168.10.0/24"].device == "mg-l192-168-10"
    assert plan.platform.address == "10.40.0.10/24" and plan.platform.gateway == "10.40.0.1"
    assert plan.bridge(plan.platform.network).gateway == "10.40.0.1/24"
    ops = next(b for b in plan.bridges if b.role == "ops")
    assert ops.gateway == "10.30.0.1/24"
    assert plan.exchange_host == "exchange.example.gov.cn"
    assert {"10.10.0.0/16", "10.20.0.0/16", "10.40.0.0/24", "10.30.0.0/24",
            "192.168.10.0/24"} <= set(plan.probe_networks)
    assert naming_problems(plan) == [] and network_problems(loaded, plan) == []


def test_gateway_skips_addresses_that_source_hosts_use() -> None:
    net = ipaddress.IPv4Network("192.168.10.0/24")
    used = {ipaddress.IPv4Address("192.168.10.254"), ipaddress.IPv4Address("192.168.10.253")}
    assert legacy_gateway(net, used) == "192.168.10.252/24"


def test_without_seed_legacy_only_platform_and_ops(estate: Path) -> None:
    edit(estate / "migrate.yaml", "seed_legacy: true", "seed_legacy: false")
    plan = plan_sandbox(open_estate(estate))
    assert [m.role for m in plan.machines] == ["exchange"]
    assert sorted(b.role for b in plan.bridges) == ["exchange", "ops"]


def test_missing_exchange_network_is_a_problem_of_migrate_yaml(estate: Path) -> None:
    edit(estate / "migrate.yaml", "  network: 10.40.0.0/24                    # 交换平台前置区\n",
         "")
    with pytest.raises(InvalidInput) as caught:
        plan_sandbox(open_estate(estate))
    problem = caught.value.problems[0]
    assert problem.file.endswith("migrate.yaml") and problem.path == "exchange.network"
    assert problem.line is not None


def test_source_network_overlapping_a_zone_is_reported(estate: Path) -> None:
    edit(estate / "systems" / "rsj-ldjc.yaml", "192.168.10.40", "10.20.5.40")
    loaded = open_estate(estate)
    problems = network_problems(loaded, plan_sandbox(loaded))
    assert any("10.20.5.0/24" in p and "egov_extranet" in p for p in problems)


def test_secret_kinds(estate: Path) -> None:
    kinds = {n.name: n.kind for n in needed_secrets(open_estate(estate))}
    assert kinds["ssh-rsj"] == "ssh-key"
    assert kinds["db-sbcx"] == "token" and kinds["exchange-rsj-sbcx"] == "token"
