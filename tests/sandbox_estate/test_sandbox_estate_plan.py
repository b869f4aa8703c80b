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
from migrate.rehearsal.sandbox.layout import veth_name
from tests.sandbox_estate.conftest import edit

TESTCLOUD_RUN_ESTATE = Path(__file__).resolve().parents[1] / "testcloud" / "run_estate"


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


def test_the_platform_machine_is_exchange_unless_the_estate_names_it(estate: Path) -> None:
    assert plan_sandbox(open_estate(estate)).platform.machine == "exchange"
    edit(estate / "migrate.yaml", "  allowed_networks: []\n",
         "  allowed_networks: []\n  platform_machine: city2-xchg\n")
    plan = plan_sandbox(open_estate(estate))
    assert (plan.platform.name, plan.platform.machine, plan.platform.host) == (
        "city2-xchg", "city2-xchg", "city2-xchg")
    assert [m.role for m in plan.machines if m.machine == "exchange"] == []
    assert naming_problems(plan) == []


def test_a_platform_named_like_a_legacy_machine_is_a_problem(estate: Path) -> None:
    loaded = open_estate(estate)
    legacy = next(m for m in plan_sandbox(loaded).legacy if len(m.name) <= 12)
    edit(estate / "migrate.yaml", "  allowed_networks: []\n",
         f"  allowed_networks: []\n  platform_machine: {legacy.name}\n")
    problems = naming_problems(plan_sandbox(open_estate(estate)))
    assert problems == [f"two machines are named {legacy.name!r} (sandbox.platform_machine"
                        " names the exchange platform's)"]


def host_names(plan) -> dict[str, set[str]]:
    """What a sandbox plan makes that is the host's, not its sandbox root's: machine names
    (and their veths), bridge devices, and the networks on them."""
    return {"machines": {m.machine for m in plan.machines},
            "devices": ({b.device for b in plan.bridges}
                        | {veth_name(m.name) for m in plan.machines}),
            "addresses": {m.ip for m in plan.machines} | {b.gateway_ip for b in plan.bridges}}


def test_the_test_cloud_run_estate_shares_nothing_of_the_host_with_the_example(
        estate: Path) -> None:
    """scripts/test.sh runs tests/testcloud beside the other tests: the run estate's sandbox
    (around the test cloud) and the example estate's (and its copies') are up at once."""
    example, run = plan_sandbox(open_estate(estate)), plan_sandbox(
        open_estate(TESTCLOUD_RUN_ESTATE))
    ours, theirs = host_names(example), host_names(run)
    assert {kind: ours[kind] & theirs[kind] for kind in ours} == {
        kind: set() for kind in ours}
    overlapping = [(a.cidr, b.cidr) for a in example.bridges for b in run.bridges
                   if ipaddress.IPv4Network(a.cidr).overlaps(ipaddress.IPv4Network(b.cidr))]
    assert overlapping == []
    assert run.platform.machine != example.platform.machine == "exchange"


def test_two_estates_with_other_names_and_networks_share_nothing_of_the_host(
        estate: Path) -> None:
    """The way to rehearse two estates side by side: the second with a platform name,
    networks (exchange, ops, sources) and system ids of its own. And the check fails when it
    should: the same estate twice shares everything."""
    first = plan_sandbox(open_estate(estate))
    assert host_names(first) == host_names(plan_sandbox(open_estate(estate)))
    settings = estate / "migrate.yaml"
    text = settings.read_text(encoding="utf-8")
    settings.write_text(text.replace("10.40.0.", "10.41.0.").replace(
        "10.30.0.", "10.31.0.").replace(
        "  allowed_networks: []\n", "  allowed_networks: []\n  platform_machine: city2-xchg\n"),
        encoding="utf-8")
    ids = [m.stem for m in (estate / "systems").glob("*.yaml")]
    for manifest in (estate / "systems").glob("*.yaml"):
        body = manifest.read_text(encoding="utf-8")
        for sid in ids:
            body = body.replace(sid, f"c2{sid}")
        manifest.write_text(body.replace("address: 192.168.", "address: 172.18."),
                            encoding="utf-8")
    second = plan_sandbox(open_estate(estate))
    assert len(second.machines) == len(first.machines)
    ours, theirs = host_names(first), host_names(second)
    assert {kind: ours[kind] & theirs[kind] for kind in ours} == {
        kind: set() for kind in ours}
    assert [(a.cidr, b.cidr) for a in first.bridges for b in second.bridges
            if ipaddress.IPv4Network(a.cidr).overlaps(ipaddress.IPv4Network(b.cidr))] == []
