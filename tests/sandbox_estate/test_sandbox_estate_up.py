"""sandbox up / status / down on a copy of the example estate: every machine, for real.

One ``sandbox up`` serves the module (it boots 17 legacy machines and the platform); the
last test takes it down and compares the host with how it was before. The module's
finalizer runs ``sandbox_down`` whatever happened.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate.adapters.exchange import ExchangeClient
from migrate.core.loader import Estate
from migrate.core.state import secret_values, state_dir
from migrate.orchestrate.pipeline import open_estate
from migrate.rehearsal.legacy.seed import build_host_seeds, checksum_query, expected_digests
from migrate.rehearsal.sandbox import machines
from migrate.rehearsal.sandbox.estate import (
    SandboxReport,
    admin_token_path,
    known_hosts_path,
    operator_key_path,
    sandbox_down,
    sandbox_status,
    sandbox_up,
)
from migrate.rehearsal.sandbox.estate_platform import wait_platform_healthy
from migrate.rehearsal.sandbox.estate_record import record_path
from tests.sandbox_estate.conftest import copy_estate, edit, host_snapshot, ssh

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SCALE = 16 * 1024  # bytes per declared GB: small data, same code paths
NON_ROOT_SYSTEM = "gaj-rkhc"  # logs in as "ops" (with sudo) instead of root


@dataclass
class World:
    folder: Path
    estate: Estate
    report: SandboxReport
    before: dict
    root: Path


@pytest.fixture(scope="module")
def world(sandbox_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = copy_estate(tmp_path_factory.mktemp("up") / "estate")
    edit(folder / "systems" / f"{NON_ROOT_SYSTEM}.yaml", "user: root", "user: ops")
    estate = open_estate(folder)
    before = host_snapshot(sandbox_env, estate)
    try:
        report = sandbox_up(estate, scale=SCALE)
        yield World(folder, estate, report, before, sandbox_env)
    finally:
        sandbox_down(estate)


def source_hosts(estate: Estate) -> list[tuple[str, str, str]]:
    return [(sid, host.name, host.address) for sid, system in sorted(estate.systems.items())
            for host in system.source.hosts]


def test_every_source_host_and_the_platform_run(world: World) -> None:
    report = world.report
    legacy = {(m.system_id, m.host): m for m in report.machines if m.role == "legacy"}
    assert set(legacy) == {(sid, host) for sid, host, _ in source_hosts(world.estate)}
    for sid, host, address in source_hosts(world.estate):
        machine = legacy[(sid, host)]
        assert machine.address == address
        assert machine.status == machines.RUNNING
        assert machine.boot_s is not None and 0 < machine.boot_s < 120
    platform = [m for m in report.machines if m.role == "exchange"]
    assert len(platform) == 1 and platform[0].status == machines.RUNNING
    assert platform[0].address == "10.40.0.10"
    assert len({m.machine for m in report.machines}) == len(report.machines)
    assert all(b.present for b in report.bridges)
    assert {b.role for b in report.bridges} == {"legacy", "exchange", "ops"}
    assert report.changed and record_path(report.estate_id, world.root).is_file()


def _check_machine(world: World, sid: str, host: str, address: str) -> list[str]:
    """Log in with the system's key and compare seeded data with what the seeder expects."""
    system = world.estate.systems[sid]
    secrets_dir = world.folder / "secrets"
    key = secrets_dir / system.source.ssh.key.removeprefix("secret://")
    user = system.source.ssh.user
    seed = next(s for s in build_host_seeds(system, secrets_dir, SCALE) if s.host == host)
    expected = expected_digests(seed)
    sudo = "" if user == "root" else "sudo -n "
    failures: list[str] = []

    def run(command: str) -> str:
        result = ssh(address, user, key, known_hosts_path(world.estate), command)
        if result.returncode != 0:
            failures.append(f"{sid}/{host}: {command!r} -> {result.returncode} {result.stderr}")
        return result.stdout.strip()

    state = run(f"{sudo}systemctl is-system-running --wait")
    if state != "running":
        failures.append(f"{sid}/{host}: system {state}: " + run(f"{sudo}systemctl --failed"))
    for database in seed.databases:
        for table in database.tables:
            query = checksum_query(table.name).replace('"', '\\"')
            got = run(f'{sudo}runuser -u postgres -- psql -At -F "|" -d {database.name}'
                      f' -c "{query}"')
            want = expected["tables"][f"{database.name}.{table.name}"]
            if got != f"{want['rows']}|{want['checksum']}":
                failures.append(f"{sid}/{host}: table {table.name}: {got!r} != {want}")
    for path, digest in sorted(expected["files"].items())[:3]:
        got = run(f"{sudo}sha256sum {path}").split(" ")[0]
        if got != digest:
            failures.append(f"{sid}/{host}: {path} digest {got} != {digest}")
    for service in seed.services:
        health = run(f"curl -fsS --max-time 10 http://127.0.0.1:{service.port}/health")
        if not health or json.loads(health).get("status") != "ok":
            failures.append(f"{sid}/{host}: {service.name} /health answered {health!r}")
    if user != "root" and run("sudo -n id -u") != "0":
        failures.append(f"{sid}/{host}: {user} has no sudo rights")
    return failures


def test_ssh_into_each_legacy_machine_and_read_the_seeded_data(world: World) -> None:
    hosts = source_hosts(world.estate)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda h: _check_machine(world, *h), hosts))
    failures = [line for result in results for line in result]
    assert not failures, "\n".join(failures)
    seeded = [s for sid, *_ in hosts for s in build_host_seeds(
        world.estate.systems[sid], world.folder / "secrets", SCALE)]
    assert any(s.databases for s in seeded) and any(s.trees for s in seeded)
    assert any(s.services for s in seeded)


def test_platform_answers_over_verified_tls_and_the_apps_exist(world: World) -> None:
    url = world.estate.settings.exchange.url
    ca = world.folder / world.estate.settings.exchange.ca_bundle
    with ExchangeClient(url, ca_bundle=str(ca), connect_address="10.40.0.10") as client:
        assert client.health()["status"] == "ok"
    with_exchange = {sid: s.exchange for sid, s in world.estate.systems.items() if s.exchange}
    assert with_exchange
    for sid, exchange in with_exchange.items():
        secret = (world.folder / "secrets" / exchange.app_secret.removeprefix("secret://")
                  ).read_text().strip()
        with ExchangeClient(url, ca_bundle=str(ca), connect_address="10.40.0.10",
                            app_key=exchange.app_key, app_secret=secret) as client:
            assert client.whoami()["system_id"] == sid


def test_platform_name_resolves_inside_the_machines(world: World) -> None:
    system = world.estate.systems["rsj-sbcx"]
    key = world.folder / "secrets" / system.source.ssh.key.removeprefix("secret://")
    ca = (world.folder / world.estate.settings.exchange.ca_bundle).read_text()
    result = ssh(system.source.hosts[0].address, "root", key, known_hosts_path(world.estate),
                 f"getent hosts exchange.example.gov.cn && cat > /tmp/ca.pem <<'END'\n{ca}END\n"
                 "curl -fsS --cacert /tmp/ca.pem https://exchange.example.gov.cn/api/v1/health")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("10.40.0.10")
    assert json.loads(result.stdout.splitlines()[-1])["status"] == "ok"


def test_registrations_survive_a_restart_of_the_platform_service(world: World) -> None:
    result = ssh("10.40.0.10", "root", operator_key_path(world.estate),
                 known_hosts_path(world.estate),
                 "systemctl restart exchange.service && systemctl is-active exchange.service"
                 " && stat -c %a /var/lib/exchange/exchange.db /etc/exchange/admin.token")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["active", "600", "600"]
    wait_platform_healthy(world.estate, "10.40.0.10", timeout=30)
    exchange = world.estate.systems["rsj-sbcx"].exchange
    assert exchange is not None
    secret = (world.folder / "secrets" / "exchange-rsj-sbcx").read_text().strip()
    url = world.estate.settings.exchange.url
    ca = world.folder / world.estate.settings.exchange.ca_bundle
    with ExchangeClient(url, ca_bundle=str(ca), connect_address="10.40.0.10",
                        app_key=exchange.app_key, app_secret=secret) as client:
        assert client.whoami()["system_id"] == "rsj-sbcx"


def test_secrets_are_private_and_never_reported(world: World) -> None:
    folder = world.folder / "secrets"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    private = [p for p in folder.iterdir() if not p.name.endswith(".pub")]
    assert private and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in private)
    assert (folder / "ssh-rsj").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert len((folder / "db-sbcx").read_text().strip()) == 32
    assert stat.S_IMODE(admin_token_path(world.estate).stat().st_mode) == 0o600
    ca_key = state_dir(world.estate) / "sandbox" / "ca" / "ca.key"
    assert stat.S_IMODE(ca_key.stat().st_mode) == 0o600
    ca_bundle = world.folder / world.estate.settings.exchange.ca_bundle
    assert stat.S_IMODE(ca_bundle.stat().st_mode) == 0o644
    token = admin_token_path(world.estate).read_text().strip()
    values = [*secret_values(open_estate(world.folder)), token]
    written = json.dumps(world.report.as_dict()) + (
        state_dir(world.estate) / "journal.jsonl").read_text()
    written += record_path(world.report.estate_id, world.root).read_text()
    assert not [v for v in values if v in written]


def test_register_links_every_catalogue_resource_on_the_platform(world: World) -> None:
    from migrate.orchestrate.pipeline import context_of, register_systems

    first = register_systems(context_of(world.estate))
    migrating = {"mzj-shjz", "rsj-sbcx", "scj-qyxy", "sjj-tyrz", "wjw-fybj", "zrj-bdcdj"}
    assert {r["system"] for r in first} == migrating
    for result in first:
        declared = len(world.estate.systems[result["system"]].exchange.resources)
        assert result["linked"] == declared, result
    assert all(not r["changed"] for r in register_systems(context_of(world.estate)))


def test_second_up_changes_nothing(world: World) -> None:
    again = sandbox_up(world.estate, scale=SCALE)
    assert again.changes == []
    assert not again.changed
    assert [m.machine for m in again.machines] == [m.machine for m in world.report.machines]
    assert all(m.status == machines.RUNNING for m in again.machines)


def test_status_rediscovers_the_sandbox(world: World) -> None:
    status = sandbox_status(open_estate(world.folder))
    assert status.estate_id == world.report.estate_id
    assert {(m.machine, m.address, m.status) for m in status.machines} == {
        (m.machine, m.address, machines.RUNNING) for m in world.report.machines}
    assert status.as_dict()["bridges"] == world.report.as_dict()["bridges"]


def test_down_leaves_the_host_as_it_was(world: World) -> None:
    secrets_before = sorted(p.name for p in (world.folder / "secrets").iterdir())
    down = sandbox_down(world.estate)
    assert down.changed and all(m.status == machines.ABSENT for m in down.machines)
    assert host_snapshot(world.root, world.estate) == world.before
    assert not record_path(world.report.estate_id, world.root).exists()
    assert sorted(p.name for p in (world.folder / "secrets").iterdir()) == secrets_before
    assert (world.folder / world.estate.settings.exchange.ca_bundle).is_file()
    assert known_hosts_path(world.estate).is_file()
    again = sandbox_down(world.estate)
    assert again.changes == [] and host_snapshot(world.root, world.estate) == world.before
    status = sandbox_status(world.estate)
    assert status.machines == [] and status.bridges == []
    entries = [json.loads(line) for line in
               (state_dir(world.estate) / "journal.jsonl").read_text().splitlines()]
    stages = [e["stage"] for e in entries]
    assert stages.count("sandbox_up") == 2 and "sandbox_down" in stages
    up_entry = next(e for e in entries if e["stage"] == "sandbox_up")
    assert "exchange" in up_entry["outputs"]["machines"]
    assert os.environ["MIGRATE_SANDBOX_ROOT"] == str(world.root)
