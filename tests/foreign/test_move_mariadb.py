"""A department server on MariaDB (tests/foreign/mariadb_server.py: Debian's mariadb-server,
a database ``shop`` and its user ``shopapp``, a service reading it) moved into the sandbox
cloud with ``migrate run``, driven only by its manifest (``engine: mariadb``): mariadb-server
installed on the target from the cloud's mirror, the user copied with its password hash and
grants, the database (declared 3 GB: above dump_restore_max_gb) kept in step by binlog
replication: the target a replica of the source from a consistent dump's GTID position during
the transfer (a row written on the source then reaches it), connected through the replication
tunnel (the source's ssh to it; the sandbox's firewall opens no database port between them),
which the cutover catches up and ends (no replica on the target, no replication account and
no tunnel on the source), per-table rows and checksums compared.

One test, three runs: the first has a row altered on the target right before verification
(after the cutover's own comparison passed), so verification fails and the system is rolled
back to the source, which serves again; a transfer then makes the target a replica again, so
that the second run's transfer (the replica running and in step, the source's /etc/mysql/
copied again beside the target's own replica settings) changes nothing; the second run
completes the move (the source's service writes a row when it stops, so the cutover's
catch-up has a row to wait for) with every table equal on both sides and the application's
user logging in on the target with its original password; the third changes nothing; then
the source is decommissioned, the checksums its copies remembered removed with the migration
access. Teardown (tests/foreign/estate.taken_down_after) destroys the target and takes the
sandbox down, also when a check fails, each step checked; it rolls back only a cutover that
no decommission made final.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from migrate.core import state
from migrate.orchestrate import pipeline
from migrate.rehearsal.sandbox import hostkeys, mirror
from migrate.stages import trust
from migrate.stages.move.secret_files import replication_account
from tests.foreign import estate as wiki_estate
from tests.foreign import mariadb_server, world
from tests.foreign.mariadb_server import ShopServer
from tests.run.events import journal

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SYSTEM = "swj-shop"

MANIFEST = """schema_version: 1
id: {system}
name: 区商务局门店登记
department: {{code: swj, name: 区商务局}}
function: 辖区门店与商品登记（MariaDB）
classification: non_classified
protection_level: 2
census:
  usage_scope: department
  usage_frequency:
    monthly_active_users: 30
    last_used: {today}
  approval: {{department: 区商务局, date: 2018-05-01, document: 区商〔2018〕12号}}
  funding: fiscal
  network: egov_extranet
  maintenance: {{vendor: 局信息科, last_update: 2026-05-01, active: true}}
source:
  ssh: {{user: root, key: secret://ssh-{system}}}
  hosts:
    - {{name: shop01, address: {address}, roles: [web, db]}}
workload:
  services:
    - {{name: shop-web, host: shop01, unit: shop-web.service, port: 8080, health: /health}}
  databases:
    - {{host: shop01, engine: mariadb, name: shop, size_gb: 3, user: shopapp,
       password: secret://db-shop}}         # above dump_restore_max_gb: binlog_replication
  configuration:
    - {{host: shop01, path: /srv/shop/}}
    - {{host: shop01, path: /etc/shop/}}
    - {{host: shop01, path: /etc/mysql/}}   # the server's settings as its admin left them
  rewrites:                       # the source listens for its replicas; the target for its app
    - {{host: shop01, file: /etc/mysql/mariadb.conf.d/60-shop.cnf,
       old: "bind_address = 0.0.0.0", new: "bind_address = 127.0.0.1"}}
target:
  zone: egov_extranet
  instances:
    - {{name: shop, replaces: [shop01], vcpu: 2, memory_gb: 4, disk_gb: 40, image: debian-12,
       packages: [mariadb-server]}}
  flows:
    - {{from: ops, to: shop, port: 8080}}
    - {{from: exchange, to: shop, port: 8080}}
exchange:
  app_key: {system}
  app_secret: secret://exchange-{system}
  resources:                      # its item count, read from the database (the same answer
    - code: 3/150/011/0001        # wherever it runs: verification compares them)
      name: 区商务局登记商品数
      summary: 辖区门店登记的商品数量
      format: service_api
      share_type: conditional
      share_condition: 仅限政务部门办理相关业务时查阅
      open_type: none
      update_cycle: daily
      interface: {{service: shop-web, path: /health}}
      items:
        - {{name: 商品数, type: integer}}
cutover:
  max_downtime_minutes: 30
"""


def write_shop_estate(folder: Path, server: ShopServer) -> Path:
    """The foreign tests' estate settings (tests/foreign/estate.py) with this system's
    manifest; the ssh key, the user's password and the platform secret in ``secrets/``."""
    today = date.today().isoformat()
    (folder / "systems").mkdir(parents=True)
    (folder / "migrate.yaml").write_text(wiki_estate.MIGRATE_YAML.format(
        source_network=wiki_estate.SOURCE_NETWORK, today=today), encoding="utf-8")
    (folder / "systems" / f"{SYSTEM}.yaml").write_text(
        MANIFEST.format(system=SYSTEM, address=server.address, today=today), encoding="utf-8")
    vault = folder / "secrets"
    vault.mkdir(mode=0o700)
    wiki_estate._secret(vault / f"ssh-{SYSTEM}", server.access.key.read_text())
    wiki_estate._secret(vault / "db-shop", server.password_file.read_text())
    wiki_estate._secret(vault / f"exchange-{SYSTEM}", secrets.token_urlsafe(24) + "\n")
    return folder


@pytest.fixture
def shop_server(foreign_host: Path, foreign_net: world.Net, foreign_mirror: mirror.Mirror,
                foreign_root: Path, foreign_access: world.Access) -> Iterator[ShopServer]:
    with mariadb_server.shop_registry(foreign_net, foreign_mirror, foreign_root,
                                      foreign_access) as built:
        yield built


@pytest.fixture
def moving(shop_server: ShopServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           run_cli) -> Iterator[Path]:
    wiki_estate.require_engine()
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("MIGRATE_SANDBOX_ROOT", str(tmp_path / "sandbox-root"))
    with wiki_estate.taken_down_after(write_shop_estate(tmp_path / "estate", shop_server),
                                      SYSTEM, run_cli) as estate:
        yield estate


def target_access(estate: Path, folder: Path) -> tuple[world.Access, str]:
    return wiki_estate.target_access(estate, SYSTEM, folder)


def sums(run) -> dict[str, str]:
    return wiki_estate.mariadb_sums(run, "shop")


SHOW_USER = ("mariadb -N -B -r -e \"SHOW CREATE USER 'shopapp'@'localhost';"
             " SHOW GRANTS FOR 'shopapp'@'localhost'\"")
# As the application logs in, the password on stdin (MYSQL_PWD: never an argument).
AS_THE_APP = ("read -r MYSQL_PWD && export MYSQL_PWD && mariadb --no-defaults -N -B -u shopapp"
              " shop -e 'SELECT CURRENT_USER(), COUNT(*) FROM items'")
ALTER_ROW = "mariadb shop -e 'UPDATE items SET price = price + 1 WHERE id = 7'"
REMEMBERED = "/var/lib/migrate/mariadb-sums-shop"  # move_mariadb.sh's sums of the last copy


REPLICA = "mariadb -N -B -e 'SHOW SLAVE STATUS'"
ACCOUNT = replication_account(SYSTEM, "shop")  # the shop database's own replication account
REPLICATION_ACCOUNTS = ("mariadb -N -B -e \"SELECT COUNT(*) FROM mysql.user"
                        f" WHERE user IN ('{ACCOUNT}', 'migrate_replicator')\"")
WRITE_ROW = "mariadb shop -e \"INSERT INTO events (what) VALUES ('written while replicated')\""
COUNT_EVENTS = "mariadb -N -B shop -e 'SELECT COUNT(*) FROM events'"


def replica_then_cutover(estate: Path, server: ShopServer, folder: Path, write: bool,
                         seen: list[str]):
    """The cutover, once the target is seen to be a replica of the source: running, and (with
    ``write``) a row written on the source after the transfer applied there."""
    from migrate.stages import move

    real = move.cutover

    def cutover(*args, **kwargs):
        target, address = target_access(estate, folder)
        status = target.check(address, REPLICA.replace("-N -B", "-B --vertical"))
        assert "Slave_IO_Running: Yes" in status and "Slave_SQL_Running: Yes" in status, status
        through_the_tunnel(target, address, server, status)
        if write:
            server.ssh(WRITE_ROW)
            deadline = time.monotonic() + 30
            while target.check(address, COUNT_EVENTS) != server.ssh(COUNT_EVENTS):
                assert time.monotonic() < deadline, "the row written on the source never came"
                time.sleep(0.2)
        seen.append("replica" + (" in step" if write else ""))
        return real(*args, **kwargs)

    return cutover


TUNNEL = f"migrate-replication-tunnel-{SYSTEM}.service"
TUNNEL_PORT = 13306  # the first source host's binlog_replication port on its target
TUNNEL_LEFT = ("systemctl list-units --all --plain --no-legend 'migrate-replication-tunnel-*';"
               " ls /etc/systemd/system | grep migrate-replication-tunnel; true")
REPLICA_CONNECTIONS = ("mariadb -N -B -e \"SELECT SUBSTRING_INDEX(host, ':', 1)"
                       f" FROM information_schema.processlist WHERE user = '{ACCOUNT}'\"")


def through_the_tunnel(target: world.Access, address: str, server: ShopServer,
                       status: str) -> None:
    """The replica reaches the source's MariaDB only through the replication tunnel: it
    connects to the target's own loopback, where the source's ssh listens (sshd there), the
    source sees it come from its own loopback (ssh's end of the tunnel), and no connection
    from the target's address reaches the source's port 3306."""
    assert "Master_Host: 127.0.0.1" in status and f"Master_Port: {TUNNEL_PORT}" in status, status
    assert f"Master_User: {ACCOUNT}\n" in status, status  # the database's own account
    assert '"sshd"' in target.check(address, f"ss -Hltnp 'sport = :{TUNNEL_PORT}'")
    assert server.ssh(f"systemctl is-active {TUNNEL}").strip() == "active"
    assert set(server.ssh(REPLICA_CONNECTIONS).split()) <= {"localhost", "127.0.0.1"}
    assert server.ssh(REPLICA_CONNECTIONS).split(), "no replica connected"
    peers = server.ssh("ss -Htn state established '( sport = :3306 )'")
    assert f"{address}:" not in peers, peers


def no_replication_left(estate: Path, server: ShopServer, folder: Path) -> None:
    """After the cutover: the target is no replica, the source has no replication account,
    no replication tunnel (its unit gone, nothing listening on the target)."""
    target, address = target_access(estate, folder)
    assert target.check(address, REPLICA).strip() == ""
    assert server.ssh(REPLICATION_ACCOUNTS).strip() == "0"
    assert server.ssh(TUNNEL_LEFT).strip() == ""
    assert target.check(address, f"ss -Hltn 'sport = :{TUNNEL_PORT}'").strip() == ""


def replication_secret_leaks(estate: Path) -> list[str]:
    """Files of the estate's state (journal, run artifacts, Ansible's job events) holding the
    replication password or the hash the source stored: none but their own 0600 files."""
    folder = state.state_dir(pipeline.open_estate(estate))
    keys = folder / "migration-keys"
    secrets_made = [p.read_text().strip() for p in (*keys.glob("*.replication"),
                                                     *keys.glob("*.verifier"))]
    assert len(secrets_made) == 2, secrets_made  # shop's password and its hash
    searched = [p for p in folder.rglob("*") if p.is_file() and keys not in p.parents
                and "sandbox" not in p.parts]
    assert any("job_events" in p.parts for p in searched)
    return [str(p) for p in searched for secret in secrets_made
            if secret in p.read_text(encoding="utf-8", errors="replace")]


def digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


def test_a_mariadb_system_moves_rolls_back_and_moves_again_with_migrate_run(
        moving: Path, shop_server: ShopServer, run_cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    estate, server = moving, shop_server
    line = hostkeys.known_hosts_line(server.name, server.address, server.root)
    assert run_cli("trust", estate, "--accept", trust.fingerprint_of(line.split()[2])).code == 0
    source_sums = sums(server.ssh)
    assert source_sums["shop.items"].startswith(f"{mariadb_server.ITEMS} ")
    assert set(source_sums) == {"shop.items", "shop.orders", "shop.events"}

    # 1. The target a replica during the transfer (a row written on the source reaches it),
    # caught up and no replica any more after the cutover; then a row altered on the target
    # once the cutover compared both sides: verification fails and the system is rolled back,
    # the source serving again.
    import migrate.stages.move
    import migrate.stages.verify.run

    real = migrate.stages.verify.run.verify_system

    def altered_then_verified(*args, **kwargs):
        access, address = target_access(estate, tmp_path)
        access.check(address, ALTER_ROW)
        return real(*args, **kwargs)

    seen: list[str] = []
    started = time.monotonic()
    with monkeypatch.context() as patched:  # only this run (the fixture's settings stay)
        patched.setattr(migrate.stages.verify.run, "verify_system", altered_then_verified)
        patched.setattr(migrate.stages.move, "cutover",
                        replica_then_cutover(estate, server, tmp_path, True, seen))
        failed = run_cli("run", estate, "--yes", "--output", "json")
    first_s = time.monotonic() - started
    assert failed.code == 4, failed.stdout + failed.stderr
    (system,) = json.loads(failed.stdout)["systems"]
    assert system["rolled_back"] is True, system
    assert "data::database_equals_evidence[shop@" in system["error"]["message"], system
    cutover = next(e for e in reversed(journal(estate)) if e["stage"] == "cutover")
    compared = cutover["outputs"]["databases"]["shop"]
    assert compared["equal"] and compared["differing"] == [], compared
    assert compared["tables"]["shop.items"]["rows"] == mariadb_server.ITEMS
    assert seen == ["replica in step"]
    transfer = next(e for e in reversed(journal(estate)) if e["stage"] == "transfer")
    assert {transfer["outputs"]["databases"]["shop"]["method"],
            compared["method"]} == {"binlog_replication"}
    no_replication_left(estate, server, tmp_path)
    assert ("rollback", "ok") in [(e["stage"], e["result"]) for e in journal(estate)]
    assert server.ssh("systemctl is-active shop-web").strip() == "active"
    assert mariadb_server.health(server.address)[0] == 200
    target, address = target_access(estate, tmp_path)
    assert target.run(address, "systemctl is-active shop-web").stdout.strip() == "inactive"

    # 2. A transfer seeds the replica anew; the run's transfer after it changes nothing (the
    # copy of /etc/mysql/ leaves the target's replica settings, so they are not written
    # again nor MariaDB restarted). The move: the freeze's stop writes a row on the source
    # after the transfer, which the replica applies before the cutover ends it; every table
    # equal on both sides, the user's hash and grants.
    started = time.monotonic()
    reseeded = run_cli("transfer", estate, "--yes", "--output", "json")
    transfer_s = time.monotonic() - started
    assert reseeded.code == 0, reseeded.stdout + reseeded.stderr
    events_before = int(server.ssh("mariadb -N -B shop -e 'SELECT COUNT(*) FROM events'"))
    started = time.monotonic()
    with monkeypatch.context() as patched:
        patched.setattr(migrate.stages.move, "cutover",
                        replica_then_cutover(estate, server, tmp_path, False, seen))
        moved = run_cli("run", estate, "--yes", "--output", "json")
    second_s = time.monotonic() - started
    assert moved.code == 0, moved.stdout + moved.stderr
    (system,) = json.loads(moved.stdout)["systems"]
    transferred = next(s for s in system["stages"] if s["stage"] == "transfer")
    changed = next(e for e in reversed(journal(estate)) if e["stage"] == "transfer")
    assert transferred["result"] == "unchanged", \
        {play: p["changed_tasks"] for play, p in changed["outputs"]["plays"].items()}
    assert seen == ["replica in step", "replica"]
    no_replication_left(estate, server, tmp_path)
    assert replication_secret_leaks(estate) == []
    after = sums(server.ssh)
    assert int(after["shop.events"].split()[0]) == events_before + 1  # the freeze's stop
    assert sums(lambda command, stdin: target.check(address, command, stdin)) == after
    assert digest(target.check(address, SHOW_USER)) == digest(server.ssh(SHOW_USER))
    password = server.password_file.read_text()
    assert target.check(address, AS_THE_APP, password).split() == \
        ["shopapp@localhost", str(mariadb_server.ITEMS)]
    status, body = mariadb_server.health(address)
    assert (status, body.strip()) == (200, f"items {mariadb_server.ITEMS}")
    assert server.ssh("systemctl is-active shop-web; true").strip() == "inactive"

    # 3. Nothing left to do.
    started = time.monotonic()
    again = run_cli("run", estate, "--yes", "--output", "json")
    third_s = time.monotonic() - started
    assert again.code == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["changed_nothing"]
    assert sums(lambda command, stdin: target.check(address, command, stdin)) == after

    # 4. Decommissioned: what the copies remembered on the source goes with the access.
    assert server.ssh(f"ls {REMEMBERED}").strip() == REMEMBERED
    started = time.monotonic()
    decommissioned = run_cli("decommission", estate, "--yes", "--output", "json")
    fourth_s = time.monotonic() - started
    assert decommissioned.code == 0, decommissioned.stdout + decommissioned.stderr
    left = server.ssh("ls -A /var/lib/migrate").split()
    assert not [f for f in left if f.startswith(("mariadb-sums-", "cutover-"))], left
    with capsys.disabled():
        print(f"\nMariaDB move: server ready in {server.setup_s:.1f} s "
              f"({'kept overlay' if server.prepared else 'built'}: {server.phases}); "
              f"runs {first_s:.1f} s (rolled back), transfer {transfer_s:.1f} s, "
              f"runs {second_s:.1f} s, {third_s:.1f} s (no change); "
              f"decommission {fourth_s:.1f} s")
