"""Trust and discovery against a real host: one machine booted from the ``legacy`` image on
a bridge of its own (192.168.178.0/24, used by no other part of the project), carrying a
PostgreSQL database with its roles, an nginx access log, cron jobs, a listening application
service and configuration that names the host's address and holds a password.

``migrate trust`` records its key only when told the fingerprint; ``migrate discover`` finds
what is there and writes a draft manifest that validates; a manifest missing things gets them
reported; a regenerated host key makes trust and discovery refuse. Secrets never appear in
what discovery writes.

The machine boots once for the module and each discovery runs once (module fixtures); each
test asserts one thing about them. The tests only read the machine, except the changed-key
test, which puts the old key back, so they pass in any order.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from migrate.core.errors import EnvironmentNotReady
from migrate.rehearsal.sandbox import hostkeys, images, machines, network
from migrate.rehearsal.sandbox.host import require_host
from migrate.rehearsal.sandbox.layout import upper_dir
from migrate.stages import trust

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

NETWORK = "disc178"
GATEWAY = "192.168.178.1"
ADDRESS = "192.168.178.10"
MACHINE = "dsc-wiki1"
SYSTEM = "dsj-wiki"
CST = timezone(timedelta(hours=8))
MIGRATE = Path(sys.executable).parent / "migrate"
MIGRATE_YAML = """schema_version: 1
estate: 发现测试
cloud:
  target: sandbox
  protection_level: 3
  zones:
    egov_extranet: {cidr: 10.178.0.0/16}
  images: {debian-12: debian-12-hardened}
  flavors:
    - {name: c2m4, vcpu: 2, memory_gb: 4}
    - {name: c4m8, vcpu: 4, memory_gb: 8}
exchange:
  url: https://exchange.example.gov.cn
  ca_bundle: certs/exchange-ca.pem
sources:
  known_hosts: known_hosts
"""
WIKI_UNIT = """[Unit]
Description=Department wiki (test application)
After=network.target

[Service]
WorkingDirectory=/srv/wiki
ExecStart=/usr/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory /srv/wiki/public

[Install]
WantedBy=multi-user.target
"""


@dataclass
class Host:
    root: Path  # sandbox root
    key: Path  # operator private key
    known: Path  # the test's own known_hosts (for setting the host up)
    secrets: dict[str, str]  # the passwords put on the host

    @property
    def upper(self) -> Path:
        return upper_dir(MACHINE, self.root)

    def fingerprint(self) -> str:
        return trust.fingerprint_of(hostkeys.host_public_key(self.upper).split()[1])

    def ssh(self, command: str, stdin: str | None = None) -> str:
        network.assert_local_address(ADDRESS)
        result = subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(self.key), "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
             "-o", "ConnectTimeout=10", f"root@{ADDRESS}", command],
            input=stdin, capture_output=True, text=True, timeout=180, check=False)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        return result.stdout


def _access_lines() -> list[tuple[str, str]]:
    """(file, line) of three months of use: September rotated and gzipped, October rotated,
    November current; 5, 7 and 3 distinct clients."""
    lines = []
    plan = [("access.log.2.gz", 2026, 9, 5, 40), ("access.log.1", 2026, 10, 7, 60),
            ("access.log", 2026, 11, 3, 10)]
    for name, year, month, clients, requests in plan:
        for index in range(requests):
            when = datetime(year, month, 1 + index % 15, 8 + index % 10, index % 60, 7,
                            tzinfo=CST)
            client = f"10.8.{month}.{1 + index % clients}"
            lines.append((name, f'{client} - - [{when.strftime("%d/%b/%Y:%H:%M:%S %z")}] '
                                f'"GET /wiki/page{index} HTTP/1.1" 200 {500 + index} '
                                '"-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"'))
    return lines


def _write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.chmod(path, mode)


def _lay_out_host(upper: Path, values: dict[str, str]) -> None:
    """The department's server as years of hand configuration left it (before first boot)."""
    _write(upper / "etc/systemd/system/wiki-app.service", WIKI_UNIT)
    _write(upper / "srv/wiki/public/index.html", "<h1>部门知识库</h1>\n")
    _write(upper / "srv/wiki/config.ini", f"[site]\nbase_url = http://{ADDRESS}:8080/\n")
    _write(upper / "srv/wiki/.env",
           f"DATABASE_URL=postgresql://wiki:{values['wiki']}@{ADDRESS}/wikidb\n", 0o600)
    for index in range(2):
        _write(upper / f"srv/wiki/uploads/scan{index}.pdf", os.urandom(1024 * 1024))
    _write(upper / "srv/reports/2026.csv", b"month,visits\n" + os.urandom(1536 * 1024))
    _write(upper / "etc/wiki/wiki.conf",
           f"# wiki settings\ndb_host = {ADDRESS}\ndb_name = wikidb\n"
           f"db_password = {values['wiki']}\n", 0o640)
    _write(upper / "etc/cron.d/wiki-backup",
           f"PGPASSWORD={values['wiki']}\n"
           "15 2 * * * postgres pg_dump -Fc wikidb > /srv/backup/wikidb.dump\n")
    _write(upper / "var/spool/cron/crontabs/root",
           "# DO NOT EDIT THIS FILE\n*/10 * * * * /usr/bin/find /srv/wiki/uploads -mmin -10\n",
           0o600)
    by_file: dict[str, list[str]] = {}
    for name, line in _access_lines():
        by_file.setdefault(name, []).append(line)
    for name, lines in by_file.items():
        text = "\n".join(lines) + "\n"
        data = gzip.compress(text.encode()) if name.endswith(".gz") else text.encode()
        _write(upper / "var/log/nginx" / name, data, 0o640)


SETUP_SQL = """CREATE ROLE wiki LOGIN PASSWORD '{wiki}';
CREATE ROLE wiki_ro LOGIN PASSWORD '{wiki_ro}';
CREATE DATABASE wikidb OWNER wiki;
CREATE DATABASE reports;
\\c wikidb
SET ROLE wiki;
CREATE TABLE pages (id serial PRIMARY KEY, title text NOT NULL, body text NOT NULL);
INSERT INTO pages (title, body)
  SELECT 'page ' || g, repeat('正文', 200) FROM generate_series(1, 3000) g;
GRANT SELECT ON pages TO wiki_ro;
RESET ROLE;
\\c reports
CREATE TABLE monthly (month text PRIMARY KEY, visits integer NOT NULL);
ALTER TABLE monthly OWNER TO wiki;
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """The machine on its own bridge, booted once for the module (the tests only read from
    it, but the one that changes its key, which puts the old key back); both removed by
    their ids afterwards, also on failure."""
    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"needs root and the sandbox tools: {error.message}")
    if shutil.which("ssh") is None:
        pytest.skip("needs the ssh client (openssh-client)")
    image = images.ensure_image("legacy")  # built once (minutes) when not cached yet
    tmp_path = tmp_path_factory.mktemp("discovery-host")
    root = tmp_path / "sandbox"
    key, public = hostkeys.ensure_client_keypair(tmp_path / "operator" / "id_ed25519")
    values = {"wiki": secrets.token_urlsafe(18), "wiki_ro": secrets.token_urlsafe(18)}
    spec = machines.MachineSpec(name=MACHINE, image=str(image), bridge=NETWORK,
                                address=f"{ADDRESS}/24", gateway=GATEWAY,
                                authorized_keys=public, hostname="wiki1")
    network.ensure_bridge(NETWORK, f"{GATEWAY}/24")  # refuses if the network is in use here
    try:
        machines.create_machine(spec, root)
        _lay_out_host(upper_dir(MACHINE, root), values)
        machines.start_machine(MACHINE, root)
        machines.wait_ssh_ready(MACHINE, 60, root)
        known = hostkeys.write_known_hosts(tmp_path / "setup_known_hosts",
                                           [hostkeys.known_hosts_line(MACHINE, ADDRESS, root)])
        ready = Host(root, key, known, values)
        ready.ssh("systemctl enable --now postgresql nginx wiki-app >/dev/null 2>&1; "
                  "for i in $(seq 100); do runuser -u postgres -- pg_isready -q && break; "
                  "sleep 0.2; done; for i in $(seq 100); do ss -H -ltn 'sport = :8080' "
                  "| grep -q . && break; sleep 0.1; done")
        ready.ssh("cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1",
                  SETUP_SQL.format(**values))
        # the department's admins log in as 'ops' and use sudo (no root login on real servers)
        ready.ssh("useradd -m -s /bin/sh ops && install -d -m 700 -o ops -g ops ~ops/.ssh && "
                  "install -m 600 -o ops -g ops /root/.ssh/authorized_keys ~ops/.ssh/ && "
                  "echo 'ops ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/ops && "
                  "chmod 440 /etc/sudoers.d/ops")
        yield ready
    finally:
        machines.destroy_machine(MACHINE, root)
        network.remove_bridge(NETWORK, force=True)


def _estate(tmp_path: Path) -> Path:
    estate = tmp_path / "estate"
    (estate / "systems").mkdir(parents=True)
    (estate / "migrate.yaml").write_text(MIGRATE_YAML, encoding="utf-8")
    return estate


def _copy(estate: Path, tmp_path: Path) -> Path:
    """A test's own copy of a module fixture's estate, to change."""
    return Path(shutil.copytree(estate, tmp_path / "estate", symlinks=True))


def _regenerate_host_key(host: Host) -> None:
    machines.stop_machine(MACHINE, host.root)
    for path in (host.upper / "etc/ssh").glob("ssh_host_ed25519_key*"):
        path.unlink()
    hostkeys.generate_host_key(host.upper, "wiki1")
    machines.start_machine(MACHINE, host.root)
    machines.wait_ssh_ready(MACHINE, 60, host.root)


def _restore_host_key(host: Host, saved: dict[str, bytes]) -> None:
    machines.stop_machine(MACHINE, host.root)
    for name, data in saved.items():
        _write(host.upper / "etc/ssh" / name, data, 0o600 if name.endswith("_key") else 0o644)
    machines.start_machine(MACHINE, host.root)
    machines.wait_ssh_ready(MACHINE, 60, host.root)


def _without_pids(value: object) -> object:
    if isinstance(value, list):
        return [_without_pids(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_pids(v) for k, v in value.items() if k != "pids"}
    return value


def _written_text(estate: Path) -> str:
    """Everything discovery and trust wrote: it must hold no secret."""
    parts = [p.read_text(errors="replace") for p in (estate / ".migrate").rglob("*")
             if p.is_file()]
    return "\n".join(parts)


def _cli(*args: object) -> CliResult:
    """The CLI as an unattended CI job runs it (module fixtures cannot use run_cli)."""
    done = subprocess.run([str(MIGRATE), *(str(a) for a in args)], capture_output=True,
                          text=True, timeout=600, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "CI": "true"})
    return CliResult(done.returncode, done.stdout, done.stderr)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@dataclass
class Discovered:
    """A new system's discovery as root, on an estate that trusts the host."""

    estate: Path
    outcome: dict  # the command's answer for the system
    document: dict  # the discovery document it wrote
    seconds: float

    @property
    def seen(self) -> dict:
        return self.document["hosts"][0]["observed"]

    @property
    def draft_text(self) -> str:
        return Path(self.outcome["draft"]).read_text()


@pytest.fixture(scope="module")
def trusted(host: Host, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An estate whose known_hosts records the host's key, as told by its fingerprint."""
    estate = _estate(tmp_path_factory.mktemp("trusted"))
    result = _cli("trust", estate, "--host", ADDRESS, "--accept", host.fingerprint(), "--yes")
    assert result.code == 0, result.stderr
    return estate


@pytest.fixture(scope="module")
def discovered(host: Host, trusted: Path) -> Discovered:
    started = time.monotonic()
    result = _cli("discover", trusted, "--system", SYSTEM, "--host", ADDRESS, "--user", "root",
                  "--key", host.key, "--output", "json")
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr
    outcome = json.loads(result.stdout)["systems"][0]
    return Discovered(trusted, outcome, json.loads(Path(outcome["path"]).read_text()), elapsed)


@pytest.fixture(scope="module")
def declared(discovered: Discovered, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The discovered estate with the draft moved into systems/ as it is."""
    estate = _copy(discovered.estate, tmp_path_factory.mktemp("declared"))
    shutil.copy(discovered.outcome["draft"], estate / "systems" / f"{SYSTEM}.yaml")
    return estate


@pytest.fixture(scope="module")
def as_ops(host: Host, declared: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Path, CliResult]:
    """Discovery logged in as the sudo user 'ops', as a second system on the same host."""
    estate = _copy(declared, tmp_path_factory.mktemp("as-ops"))
    return estate, _cli("discover", estate, "--system", "dsj-wiki-ops", "--host", ADDRESS,
                        "--user", "ops", "--key", host.key, "--output", "json")


def _with_access_key(estate: Path, host: Host) -> None:
    folder = estate / "secrets"
    folder.mkdir(mode=0o700)
    shutil.copy(host.key, folder / f"ssh-{SYSTEM}")
    os.chmod(folder / f"ssh-{SYSTEM}", 0o600)


@pytest.fixture(scope="module")
def gaps(host: Host, declared: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Path, dict]:
    """An existing manifest that misses a service, a flow, a data tree and a database, and
    overstates its users: its discovery report."""
    estate = _copy(declared, tmp_path_factory.mktemp("gaps"))
    manifest = estate / "systems" / f"{SYSTEM}.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["workload"]["services"] = [s for s in data["workload"]["services"]
                                    if s["unit"] == "nginx.service"]
    data["target"]["flows"] = [f for f in data["target"]["flows"] if f["port"] == 80]
    data["workload"]["files"] = [f for f in data["workload"]["files"] if f["path"] == "/srv/wiki"]
    data["workload"]["databases"] = [d for d in data["workload"]["databases"]
                                     if d["name"] == "wikidb"]
    data["census"]["usage_frequency"]["monthly_active_users"] = 12000
    manifest.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    _with_access_key(estate, host)
    result = _cli("discover", estate, "--system", SYSTEM, "--output", "json")
    assert result.code == 0, result.stderr
    return estate, json.loads(result.stdout)["systems"][0]


# ---- trust


def test_an_unknown_host_key_stops_discovery_before_anything_is_read(host: Host, tmp_path: Path,
                                                                     run_cli) -> None:
    estate = _estate(tmp_path)
    result = run_cli("discover", estate, "--system", SYSTEM, "--host", ADDRESS, "--user", "root",
                     "--key", host.key)
    assert result.code == 2 and "unknown" in result.stderr, result.stderr
    assert host.fingerprint() in result.stderr
    assert not list((estate / ".migrate" / "discovery").glob("*"))  # no document written


def test_unattended_trust_records_only_the_fingerprint_it_is_told(
        host: Host, tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    estate = _estate(tmp_path)
    known = estate / "known_hosts"
    result = run_cli("trust", estate, "--host", ADDRESS)
    assert result.code == 2 and "not trusted" in result.stderr and not known.exists()
    assert host.fingerprint() in result.stdout
    assert run_cli("trust", estate, "--host", ADDRESS, "--yes").code == 2  # --yes alone: no
    assert not known.exists()
    result = run_cli("trust", estate, "--host", ADDRESS, "--accept", host.fingerprint(), "--yes")
    assert result.code == 0, result.stderr
    assert known.read_text().split() == [ADDRESS, "ssh-ed25519",
                                         hostkeys.host_public_key(host.upper).split()[1]]


# ---- what discovery observes on the host


def test_discovery_writes_a_complete_observed_document(discovered: Discovered,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    document = discovered.document
    with capsys.disabled():
        print(f"\ndiscovery of {ADDRESS}: {discovered.seconds:.2f} s (command), "
              f"{document['duration_s']} s (document); probes: "
              f"{document['hosts'][0]['timings_s']}")
    assert document["schema_version"] == 1 and document["data"] == "observed"
    assert document["probe_errors"] == []
    assert discovered.seen["os"]["id"] == "debian" and discovered.seen["os"]["version_id"] == "12"


def test_discovery_finds_packages_listening_services_and_running_units(
        discovered: Discovered) -> None:
    seen = discovered.seen
    assert {"postgresql", "nginx-light", "cron"} <= {p["name"] for p in seen["packages"]}
    listening = {e["port"]: e["unit"] for e in seen["listening"]}
    assert listening[80] == "nginx.service" and listening[8080] == "wiki-app.service"
    assert listening[22] == "ssh.service" and listening[5432].startswith("postgresql@")
    assert {"cron.service", "nginx.service", "wiki-app.service"} <= set(seen["running_units"])


def test_discovery_finds_databases_their_owners_grantees_and_roles(
        discovered: Discovered) -> None:
    postgresql = discovered.seen["postgresql"]
    databases = {d["name"]: d for d in postgresql["databases"]}
    assert databases["wikidb"]["owner"] == "wiki"
    assert "wiki_ro" in databases["wikidb"]["table_grantees"]
    assert databases["reports"]["owner"] == "postgres"
    assert databases["reports"]["table_owners"] == ["wiki"]
    assert {"wiki", "wiki_ro"} <= {r["name"] for r in postgresql["roles"]}


def test_discovery_finds_data_directories_and_cron_jobs(discovered: Discovered) -> None:
    seen = discovered.seen
    directories = {d["path"]: d["size_kb"] for d in seen["data_directories"]}
    assert directories["/srv/wiki"] >= 2048 and directories["/srv/reports"] >= 1536
    cron = {(j["file"], j["user"]) for j in seen["cron"]}
    assert {("/etc/cron.d/wiki-backup", "postgres"),
            ("/var/spool/cron/crontabs/root", "root")} <= cron


def test_discovery_counts_monthly_users_from_rotated_access_logs(discovered: Discovered) -> None:
    web = discovered.seen["web_access"]
    assert [(m["month"], m["requests"], m["distinct_clients"]) for m in web["months"]] == [
        ("2026-09", 40, 5), ("2026-10", 60, 7), ("2026-11", 10, 3)]
    assert web["monthly_users"] == {"month": "2026-10", "distinct_clients": 7, "partial": False}


def test_discovery_finds_what_names_the_address_and_where_secrets_are(
        discovered: Discovered) -> None:
    document = discovered.document
    rewrites = {(r["file"], r["old"], r["kind"]) for r in document["rewrites"]}
    assert {("/etc/wiki/wiki.conf", ADDRESS, "application"),
            ("/srv/wiki/config.ini", ADDRESS, "application"),
            ("/srv/wiki/.env", ADDRESS, "application"),
            ("/etc/hosts", ADDRESS, "network")} <= rewrites
    found = {(s["file"], s["key"]) for s in document["secrets"]}
    assert {("/etc/wiki/wiki.conf", "db_password"), ("/srv/wiki/.env", "DATABASE_URL")} <= found


# ---- the draft manifest


def test_the_draft_declares_what_was_found(discovered: Discovered) -> None:
    assert "/etc/wiki/wiki.conf:4 db_password -> secret://dsj-wiki-wiki-conf-db_password" in (
        discovered.draft_text)
    draft = yaml.safe_load(discovered.draft_text)
    services = {s["unit"]: s["port"] for s in draft["workload"]["services"]}
    assert services == {"nginx.service": 80, "wiki-app.service": 8080}
    assert {f["path"] for f in draft["workload"]["files"]} == {"/srv/wiki", "/srv/reports"}
    assert {d["name"]: d["user"] for d in draft["workload"]["databases"]} == {
        "reports": "wiki", "wikidb": "wiki"}
    assert draft["census"]["usage_frequency"]["monthly_active_users"] == 7


def test_the_draft_validates_as_it_is(discovered: Discovered, declared: Path, run_cli) -> None:
    assert discovered.outcome["draft_valid"] is True, discovered.outcome["draft_problems"]
    result = run_cli("validate", declared)  # moved into systems/ unchanged
    assert result.code == 0, result.stderr


# ---- a sudo user, and a second system on a declared host


def test_a_sudo_user_sees_what_root_sees(discovered: Discovered,
                                         as_ops: tuple[Path, CliResult]) -> None:
    answer = json.loads(as_ops[1].stdout)
    document = json.loads(Path(answer["systems"][0]["path"]).read_text())
    assert document["probe_errors"] == []
    seen_ops, seen = document["hosts"][0]["observed"], discovered.seen
    for probe in ("listening", "data_directories", "cron", "web_access", "secrets"):
        assert _without_pids(seen_ops[probe]) == _without_pids(seen[probe]), probe
    assert [d["name"] for d in seen_ops["postgresql"]["databases"]] == [
        d["name"] for d in seen["postgresql"]["databases"]]


def test_a_draft_for_an_address_another_system_declares_does_not_validate(
        as_ops: tuple[Path, CliResult]) -> None:
    result = as_ops[1]
    answer = json.loads(result.stdout)
    assert result.code == 4 and answer["systems"][0]["draft_valid"] is False
    assert f"address {ADDRESS} is also used by dsj-wiki.wiki1" in answer["error"]["message"]


# ---- an existing manifest that misses things


def test_gaps_name_the_undeclared_service_data_tree_and_database(gaps: tuple[Path, dict]
                                                                 ) -> None:
    report = gaps[1]
    kinds = {(g["kind"], g.get("unit") or g.get("path") or g.get("database"))
             for g in report["gaps"]}
    assert {("undeclared_service", "wiki-app.service"),
            ("undeclared_data_directory", "/srv/reports"),
            ("undeclared_database", "reports")} <= kinds


def test_gaps_name_the_overstated_census_figure(gaps: tuple[Path, dict]) -> None:
    assert [d["field"] for d in gaps[1]["census_differences"]] == ["monthly_active_users"]


def test_rewrites_of_a_declared_host_name_its_variable(gaps: tuple[Path, dict]) -> None:
    assert {r["new"] for r in gaps[1]["rewrites"]} == {"${wiki1}"}


def test_nothing_trust_and_discovery_write_holds_a_secret(
        host: Host, discovered: Discovered, as_ops: tuple[Path, CliResult],
        gaps: tuple[Path, dict]) -> None:
    for estate in (discovered.estate, as_ops[0], gaps[0]):
        written = _written_text(estate)
        assert written, estate
        for value in host.secrets.values():
            assert value not in written, estate


# ---- a changed host key (last: it changes the host, and puts its old key back)


def test_a_changed_host_key_is_refused_until_the_new_one_is_named(
        host: Host, declared: Path, tmp_path: Path, run_cli) -> None:
    estate = _copy(declared, tmp_path)
    _with_access_key(estate, host)
    known = estate / "known_hosts"
    recorded, fingerprint = known.read_text(), host.fingerprint()
    saved = {p.name: p.read_bytes() for p in (host.upper / "etc/ssh").glob("ssh_host_ed25519*")}
    _regenerate_host_key(host)
    try:
        new_fingerprint = host.fingerprint()
        assert new_fingerprint != fingerprint
        result = run_cli("trust", estate)
        assert result.code == 2 and "CHANGED" in result.stderr
        assert new_fingerprint in result.stderr
        result = run_cli("trust", estate, "--accept", fingerprint)  # the old one: still no
        assert result.code == 2 and "CHANGED" in result.stderr
        assert known.read_text() == recorded
        result = run_cli("discover", estate, "--system", SYSTEM)
        assert result.code == 2 and "CHANGED" in result.stderr
        # named explicitly, the new key replaces the old one and discovery works again
        result = run_cli("trust", estate, "--accept", new_fingerprint)
        assert result.code == 0, result.stderr
        assert new_fingerprint in result.stdout and "REPLACED" in result.stdout
        assert run_cli("discover", estate, "--system", SYSTEM).code == 0
    finally:
        _restore_host_key(host, saved)
    assert host.fingerprint() == fingerprint
