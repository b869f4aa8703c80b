"""The department's Java application (tests/foreign/tomcat.py: a WAR on Debian's tomcat10, its
DataSource naming the server's own address, MariaDB bound to that address, the user xmsb
allowed from it, uploads on disk, a nightly timer) moved into the sandbox cloud with
``migrate run``, driven only by its manifest, written as its ops engineer completes what
``migrate discover`` drafts: the packages, the hand-deployed files as configuration, the
uploads as files, the JDBC URL and bind-address rewritten to the target's planned address.

One test, three runs: the first has a row altered on the target right before verification
(after the cutover's own comparison passed), so verification fails and the system is rolled
back to the source, whose Tomcat answers again while the target's stays stopped; the second
moves it: every table and upload equal on both sides, the application answering on the
target's address with the projects the source showed, the account xmsb made for the target's
address with its password hash and grants (the journal says so), its timer running there;
the third changes nothing. Teardown rolls the source back, destroys the target and takes the
sandbox down, also when a check fails.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from migrate.rehearsal.sandbox import hostkeys
from migrate.stages import trust
from tests.foreign import builder, tomcat, world
from tests.foreign import estate as foreign_estate
from tests.foreign.tomcat import TomcatServer
from tests.run.events import journal

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SYSTEM = "fgw-xmsb"
MARIADB_SETTINGS = "/etc/mysql/mariadb.conf.d/60-xmsb.cnf"
TIMER = "xmsb-cleanup.timer"

MANIFEST = """schema_version: 1
id: {system}
name: 发改委项目申报系统
department: {{code: fgw, name: 市发展和改革委员会}}
function: 政府投资项目的申报、审核与批复登记（Java，Tomcat + MariaDB）
classification: non_classified
protection_level: 2
census:
  usage_scope: department
  usage_frequency:
    monthly_active_users: 60
    last_used: {today}
  approval: {{department: 市发展和改革委员会, date: 2020-04-01, document: 市发改〔2020〕15号}}
  funding: fiscal
  network: egov_extranet
  maintenance: {{vendor: 软件公司, last_update: 2026-03-01, active: true}}
source:
  ssh: {{user: root, key: secret://ssh-{system}}}
  hosts:
    - {{name: {hostname}, address: {address}, roles: [web, db]}}
workload:
  services:
    - {{name: tomcat10, host: {hostname}, unit: tomcat10.service, port: 8080, health: /xmsb/}}
  files:
    - {{host: {hostname}, path: /srv/xmsb, size_gb: 0.01, daily_change_gb: 0.001}}
  databases:
    - {{host: {hostname}, engine: mariadb, name: xmsb, size_gb: 0.01, user: xmsb,
       password: secret://db-xmsb}}
  configuration:                  # deployed by hand
    - {{host: {hostname}, path: {context}}}
    - {{host: {hostname}, path: {mariadb_settings}}}
    - {{host: {hostname}, path: {war}}}
    - {{host: {hostname}, path: {driver}}}
    - {{host: {hostname}, path: {drop_in}}}
    - {{host: {hostname}, path: /etc/systemd/system/xmsb-cleanup.service}}
    - {{host: {hostname}, path: {timer}}}
    - {{host: {hostname}, path: /etc/systemd/system/timers.target.wants/xmsb-cleanup.timer}}
    - {{host: {hostname}, path: {cleanup}}}
  rewrites:                       # the JDBC URL and MariaDB's bind-address name the server
    - {{host: {hostname}, file: {context}, old: "{address}", new: "${{app}}"}}
    - {{host: {hostname}, file: {mariadb_settings}, old: "{address}", new: "${{app}}"}}
target:
  zone: egov_extranet
  instances:
    - {{name: app, replaces: [{hostname}], vcpu: 2, memory_gb: 4, disk_gb: 40, image: debian-12,
       packages: [libmariadb-java, mariadb-server, tomcat10]}}
  flows:
    - {{from: ops, to: app, port: 8080}}
    - {{from: exchange, to: app, port: 8080}}
    - {{from: app, to: app, port: 3306}}  # the application reaches MariaDB on its address
exchange:
  app_key: {system}
  app_secret: secret://exchange-{system}
  resources:                      # the project list, read from the database (the same page
    - code: 3/130/012/0001        # wherever it runs: verification compares them)
      name: 发改委在办项目清单
      summary: 政府投资项目的编号、名称、办理状态和附件数
      format: service_api
      share_type: conditional
      share_condition: 仅限政务部门办理相关业务时查阅
      open_type: none
      update_cycle: daily
      interface: {{service: tomcat10, path: /xmsb/}}
      items:
        - {{name: 项目名称, type: text}}
cutover:
  max_downtime_minutes: 30
"""


def write_tomcat_estate(folder: Path, server: TomcatServer) -> Path:
    """The foreign tests' estate settings (tests/foreign/estate.py) with this system's
    manifest; the ssh key, the database password and the platform secret in ``secrets/``."""
    today = date.today().isoformat()
    (folder / "systems").mkdir(parents=True)
    (folder / "migrate.yaml").write_text(foreign_estate.MIGRATE_YAML.format(
        source_network=foreign_estate.SOURCE_NETWORK, today=today), encoding="utf-8")
    (folder / "systems" / f"{SYSTEM}.yaml").write_text(MANIFEST.format(
        system=SYSTEM, hostname=server.hostname, address=server.address, today=today,
        context=server.context_file, mariadb_settings=MARIADB_SETTINGS, war=server.war,
        driver=tomcat.DRIVER_LINK, drop_in=tomcat.DROP_IN, timer=tomcat.TIMER,
        cleanup=tomcat.CLEANUP), encoding="utf-8")
    vault = folder / "secrets"
    vault.mkdir(mode=0o700)
    foreign_estate._secret(vault / f"ssh-{SYSTEM}", server.access.key.read_text())
    foreign_estate._secret(vault / "db-xmsb", server.db_password_file.read_text())
    foreign_estate._secret(vault / f"exchange-{SYSTEM}", secrets.token_urlsafe(24) + "\n")
    return folder


@pytest.fixture
def moving(tomcat_server: TomcatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           run_cli) -> Iterator[Path]:
    foreign_estate.require_engine()
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("MIGRATE_SANDBOX_ROOT", str(tmp_path / "sandbox-root"))
    with foreign_estate.taken_down_after(write_tomcat_estate(tmp_path / "estate", tomcat_server),
                                         SYSTEM, run_cli) as estate:
        yield estate


def target_access(estate: Path, folder: Path) -> tuple[world.Access, str]:
    return foreign_estate.target_access(estate, SYSTEM, folder)


def sums(run) -> dict[str, str]:
    return foreign_estate.mariadb_sums(run, "xmsb")


# The uploads' folders and files with their owners and modes, each file's content digest.
UPLOADS = (f"stat -c '%n %U:%G %a' /srv/xmsb {tomcat.UPLOADS} && cd {tomcat.UPLOADS}"
           " && for f in *; do printf '%s %s ' \"$(stat -c '%n %U:%G %a' \"$f\")\""
           " \"$(sha256sum < \"$f\")\"; echo; done")
SHOW_USER = ("mariadb -N -B -r -e \"SHOW CREATE USER 'xmsb'@'{host}';"
             " SHOW GRANTS FOR 'xmsb'@'{host}'\"")
ALTER_ROW = "mariadb xmsb -e \"UPDATE projects SET status = '已撤回' WHERE code = 'XM2026-002'\""


def digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


def answering(address: str, timeout: float = 90.0) -> str:
    """The project list at /xmsb/ once it answers with the marker (Tomcat deploys the WAR
    after its service has started)."""
    tomcat.wait_answering(address, timeout)
    status, body = builder.get(f"http://{address}:{tomcat.PORT}/xmsb/", timeout=30)
    assert status == 200, body[:500]
    return body


def test_the_tomcat_application_moves_rolls_back_and_moves_again_with_migrate_run(
        moving: Path, tomcat_server: TomcatServer, run_cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    estate, server = moving, tomcat_server
    line = hostkeys.known_hosts_line(server.name, server.address, server.root)
    assert run_cli("trust", estate, "--accept", trust.fingerprint_of(line.split()[2])).code == 0
    page = answering(server.address)
    assert server.marker in page and tomcat.TITLE in page
    source_sums, uploads = sums(server.ssh), server.ssh(UPLOADS)
    assert set(source_sums) == {"xmsb.projects", "xmsb.attachments"}
    assert len(uploads.splitlines()) == 2 + tomcat.UPLOAD_FILES, uploads

    # 1. A row altered on the target once the cutover compared both sides: verification
    # fails and the system is rolled back, the source's Tomcat serving again.
    import migrate.stages.verify.run

    real = migrate.stages.verify.run.verify_system

    def altered_then_verified(*args, **kwargs):
        access, address = target_access(estate, tmp_path)
        access.check(address, ALTER_ROW)
        return real(*args, **kwargs)

    started = time.monotonic()
    with monkeypatch.context() as patched:  # only this run (the fixture's settings stay)
        patched.setattr(migrate.stages.verify.run, "verify_system", altered_then_verified)
        failed = run_cli("run", estate, "--yes", "--output", "json")
    first_s = time.monotonic() - started
    assert failed.code == 4, failed.stdout + failed.stderr
    (system,) = json.loads(failed.stdout)["systems"]
    assert system["rolled_back"] is True, system
    assert "data::database_equals_evidence[xmsb@" in system["error"]["message"], system
    target, address = target_access(estate, tmp_path)
    transfer = next(e for e in journal(estate) if e["stage"] == "transfer")
    assert transfer["outputs"]["mariadb_accounts_mapped"] == {
        server.hostname: {"xmsb": {server.address: address}}}, transfer["outputs"]
    assert ("rollback", "ok") in [(e["stage"], e["result"]) for e in journal(estate)]
    assert answering(server.address) == page
    assert server.ssh(f"systemctl is-active tomcat10 {TIMER}").split() == ["active"] * 2
    stopped = target.run(address, f"systemctl is-active tomcat10 {TIMER}").stdout.split()
    assert stopped == ["inactive"] * 2

    # 2. The move.
    started = time.monotonic()
    moved = run_cli("run", estate, "--yes", "--output", "json")
    second_s = time.monotonic() - started
    assert moved.code == 0, moved.stdout + moved.stderr
    on_target = functools.partial(target.check, address)
    assert sums(on_target) == sums(server.ssh) == source_sums
    assert on_target(UPLOADS) == uploads
    assert answering(address) == page  # the same projects, read from the target's database
    context = on_target(f"cat {server.context_file}; stat -c '%U:%G %a' {server.context_file}")
    assert f"jdbc:mariadb://{address}:3306/xmsb" in context and server.address not in context
    assert context.splitlines()[-1] == "root:tomcat 640"
    assert on_target("mariadb -N -B -e 'SELECT @@bind_address'").strip() == address
    # the account is the target's address's, with the source's hash and grants
    assert digest(on_target(SHOW_USER.format(host=address))) == digest(
        server.ssh(SHOW_USER.format(host=server.address)).replace(server.address, address))
    assert on_target("mariadb -N -B -e \"SELECT host FROM mysql.user WHERE user = 'xmsb'\""
                     ).split() == [address]
    assert on_target(f"systemctl is-active {TIMER}").strip() == "active"
    assert server.ssh(f"systemctl is-active tomcat10 {TIMER}; true").split() == ["inactive"] * 2

    # 3. Nothing left to do.
    started = time.monotonic()
    again = run_cli("run", estate, "--yes", "--output", "json")
    third_s = time.monotonic() - started
    assert again.code == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["changed_nothing"]
    assert sums(on_target) == source_sums
    with capsys.disabled():
        print(f"\nTomcat move: server ready in {server.setup_s:.1f} s "
              f"({'kept overlay' if server.prepared else 'built'}: {server.phases}); "
              f"runs {first_s:.1f} s (rolled back), {second_s:.1f} s, {third_s:.1f} s "
              "(no change)")
