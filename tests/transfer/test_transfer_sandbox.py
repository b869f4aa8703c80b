"""transfer, cutover and rollback of wjw-fybj on the sandbox: real source machines (sandbox up),
real target machines at the plan's addresses, Ansible through ansible-runner.

One world serves the module; the tests run in file order (faults first, while nothing has
been changed yet). The module's finalizer destroys the target machines and their bridge by
name and takes the sandbox down, whatever happened.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.adapters import ansible as runner
from migrate.core import state
from migrate.core.errors import GuardRefused, StageFailed
from migrate.rehearsal.legacy.seed import checksum_query
from migrate.rehearsal.sandbox import machines
from migrate.stages import move
from migrate.stages.move.secret_files import replication_account
from tests.transfer.world import (
    SYSTEM,
    World,
    on_source,
    on_target,
    sandbox_world,
    target_machine_name,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCALE = 16 * 1024  # bytes per declared GB: small data, same code paths
API_PATH = "/api/birth-certificates"
TABLES = ("birth_certificates", "legacy_records", "legacy_seed")
FETCH = ("python3 -c \"import sys, urllib.request; sys.stdout.buffer.write("
         "urllib.request.urlopen('http://127.0.0.1:8080{path}').read())\"")
TREE_MANIFEST = ("cd {root} && find . -type f -print0 | LC_ALL=C sort -z "
                 "| xargs -0r sha256sum")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with sandbox_world(tmp_path_factory, SCALE) as made:
        yield made


def known_hosts_of_last_run(world: World) -> Path:
    runs = sorted((state.state_dir(world.estate) / "runs").glob("*/known_hosts"))
    return runs[-1]


def fetch_api(world: World, *, source: bool) -> bytes:
    command = FETCH.format(path=API_PATH) + " | base64 -w0"
    result = (on_source(world, "web1", command) if source else
              on_target(world, "web", command, known_hosts_of_last_run(world)))
    assert result.returncode == 0, result.stderr
    return base64.b64decode(result.stdout)


def tree_manifest(world: World, *, source: bool) -> str:
    root = world.system["data"]["files"][0]["path"]
    command = TREE_MANIFEST.format(root=root)
    result = (on_source(world, "web1", command) if source else
              on_target(world, "web", command, known_hosts_of_last_run(world)))
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_sums(world: World, *, source: bool) -> dict[str, str]:
    sums = {}
    for table in TABLES:
        command = (f"runuser -u postgres -- psql -XAt -d fybj -c "
                   f"{json.dumps(checksum_query(table))}")
        result = (on_source(world, "db1", command) if source else
                  on_target(world, "db", command, known_hosts_of_last_run(world)))
        assert result.returncode == 0, result.stderr
        sums[table] = result.stdout.strip()
    return sums


def service_state(world: World, *, source: bool) -> str:
    command = "systemctl is-active fybj-web; systemctl is-enabled fybj-web; true"
    result = (on_source(world, "web1", command) if source else
              on_target(world, "web", command, known_hosts_of_last_run(world)))
    return " ".join(result.stdout.split())


def run(world: World, stage: str, plan: dict | None = None, targets: dict | None = None,
        progress: runner.ProgressCallback | None = None) -> move.StageResult:
    entry = getattr(move, stage)
    return entry(world.context(plan), SYSTEM, targets or world.targets, progress)


# ---------------------------------------------------------------- faults, before any change


def test_wrong_target_host_key_stops_before_any_change(world: World) -> None:
    wrong = copy.deepcopy(world.targets)
    wrong["web"]["host_key"] = world.targets["db"]["host_key"]
    with pytest.raises(StageFailed) as failed:
        run(world, "transfer", targets=wrong)
    message = failed.value.message
    # found by the key exchange before the stage's first play, both keys named
    assert message.startswith("host key of 1 target(s) CHANGED: wjw-fybj-web"), message
    assert "offered ssh-" in message and "pinned ssh-" in message, message
    runs = sorted((state.state_dir(world.estate) / "runs").iterdir())
    assert not (runs[-1] / "artifacts").exists()  # no play ran, not even the check
    keys = on_target(world, "db", "cat /root/.ssh/authorized_keys",
                     runs[-1] / "known_hosts")
    assert keys.returncode == 0, keys.stderr
    assert "migrate-wjw-fybj" not in keys.stdout  # prepare_target never ran
    last = list(state.journal_for(world.estate).entries())[-1]
    assert (last["stage"], last["result"]) == ("transfer", "failed")


def test_unreachable_target_stops_before_any_change(world: World) -> None:
    gone = copy.deepcopy(world.targets)
    address = world.targets["web"]["address"]
    gone["web"]["address"] = address.rsplit(".", 1)[0] + ".250"  # on the bridge, no machine
    with pytest.raises(StageFailed) as failed:
        run(world, "transfer", targets=gone)
    message = failed.value.message
    assert message.startswith("check_prerequisites failed on wjw-fybj-web")
    assert any(why in message.lower() for why in ("no route to host", "timed out",
                                                  "unreachable")), message
    assert service_state(world, source=True) == "active enabled"


def test_missing_source_path_fails_check_with_a_clear_message(world: World) -> None:
    plan = copy.deepcopy(world.plan)
    system = next(s for s in plan["systems"] if s["id"] == SYSTEM)
    system["data"]["files"][0]["path"] = "/srv/fybj/no-such-tree"
    with pytest.raises(StageFailed) as failed:
        run(world, "check_prerequisites", plan=plan)
    assert "source path /srv/fybj/no-such-tree does not exist" in failed.value.message
    assert "web1" in failed.value.message


def test_database_refusing_the_password_stops_before_any_change(world: World) -> None:
    manifest = world.estate.systems[SYSTEM]
    secret = state.secrets_dir(world.estate) / state.secret_name(
        manifest.workload.databases[0].password)
    right = secret.read_bytes()
    secret.write_text("not-the-password\n")
    try:
        with pytest.raises(StageFailed) as failed:
            run(world, "transfer")
    finally:
        secret.write_bytes(right)
    message = failed.value.message
    assert message.startswith("check_prerequisites failed on db1")
    assert "database fybj on db1 (" in message and "refused role fybj" in message
    assert "password authentication failed" in message
    assert "not-the-password" not in message
    assert service_state(world, source=True) == "active enabled"
    assert_target_untouched(world)


def test_full_target_disk_stops_before_any_change(world: World) -> None:
    root = world.system["data"]["files"][0]["path"]
    pid = machines.machine_init_pid(target_machine_name(SYSTEM, "web"))
    mount = ["nsenter", "-t", str(pid), "-m", "--"]
    subprocess.run([*mount, "mkdir", "-p", root], check=True)
    subprocess.run([*mount, "mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", root],
                   check=True)
    try:
        with pytest.raises(StageFailed) as failed:
            run(world, "transfer")
    finally:
        subprocess.run([*mount, "umount", root], check=True)
    message = failed.value.message
    assert message.startswith("check_prerequisites failed on wjw-fybj-web")
    assert f"{root} has 4194304 bytes free, needs" in message
    assert f"for {root} (data x 1.5" in message
    assert service_state(world, source=True) == "active enabled"
    assert_target_untouched(world)


def test_target_refusing_the_replication_tunnel_stops_before_any_change(world: World) -> None:
    """A target whose sshd would refuse the replication tunnel (no remote forwarding) stops a
    replicated move at check_prerequisites, named with the option and its value, and not
    the transfer at "Open the replication tunnel". sshd -T reads the files: no reload."""
    refusing = "/etc/ssh/sshd_config.d/00-test-refusing.conf"
    pid = machines.machine_init_pid(target_machine_name(SYSTEM, "db"))
    inside = ["nsenter", "-t", str(pid), "-m", "--"]
    subprocess.run([*inside, "tee", refusing], input="AllowTcpForwarding local\n", text=True,
                   check=True, capture_output=True)
    try:
        with pytest.raises(StageFailed) as failed:
            run(world, "transfer", plan=world.logical_plan())
    finally:
        subprocess.run([*inside, "rm", "-f", refusing], check=True)
    message = failed.value.message
    assert message.startswith("check_prerequisites failed on wjw-fybj-db"), message
    assert (f"system {SYSTEM}: the sshd of target wjw-fybj-db ({world.targets['db']['address']})"
            f" refuses the replication tunnel from db1 ({world.source_address('db1')}) for root:"
            " AllowTcpForwarding 'local' (needs yes, all or remote); hint: ") in message, message
    assert service_state(world, source=True) == "active enabled"
    assert on_source(world, "db1", TUNNEL_LEFT).stdout.strip() == ""
    assert_target_untouched(world)


def assert_target_untouched(world: World) -> None:
    keys = on_target(world, "web", "cat /root/.ssh/authorized_keys",
                     known_hosts_of_last_run(world))
    assert keys.returncode == 0, keys.stderr
    assert "migrate-wjw-fybj" not in keys.stdout  # prepare_target never ran


# ---------------------------------------------------------------- the move


def test_transfer_in_check_mode_shows_the_diff_and_changes_nothing(world: World) -> None:
    result = move.transfer(world.context(), SYSTEM, world.targets, check=True)
    assert result.changed > 0  # what a real run would change
    files = next(p for p in result.plays if p.stage == "transfer_files")
    would_send = "".join(files.records["files transferred"]["web1"].values())
    assert ">f+++++++++" in would_send
    assert_target_untouched(world)
    root = world.system["data"]["files"][0]["path"]
    listing = on_target(world, "web", f"ls -A {root} 2>/dev/null | wc -l",
                        known_hosts_of_last_run(world))
    assert listing.stdout.strip() == "0"
    last = list(state.journal_for(world.estate).entries())[-1]
    assert (last["stage"], last["result"]) == ("transfer", "check")


def test_check_prerequisites_passes_and_changes_nothing(world: World) -> None:
    seen: list[runner.Progress] = []
    result = run(world, "check_prerequisites", progress=seen.append)
    assert result.changed == 0
    assert result.plays[0].ok > 0
    assert {p.host for p in seen if p.status == "ok"} == {
        "web1", "db1", "wjw-fybj-web", "wjw-fybj-db"}
    assert ("Check free disk space for the data that moves here, clock, PostgreSQL and MariaDB"
            in {p.task for p in seen})
    assert seen[-1].ok == max(p.ok for p in seen) and all(p.failed == 0 for p in seen)


def test_transfer_copies_files_and_rows_while_the_source_serves(world: World) -> None:
    world.before = {
        "api": fetch_api(world, source=True),
        "files": tree_manifest(world, source=True),
        "tables": table_sums(world, source=True),
    }
    result = run(world, "transfer")
    assert result.changed > 0
    assert service_state(world, source=True) == "active enabled"
    files = result.outputs["files"]["web1"]
    root = world.system["data"]["files"][0]["path"].rstrip("/")
    source_paths = sorted(f"{root}/{line.split(maxsplit=1)[1].strip().removeprefix('./')}"
                          for line in world.before["files"].splitlines())
    assert files["sent"] == len(source_paths) and files["algorithm"] == "xxh128"
    sizes = on_source(world, "web1", f"find {root} -type f -printf '%s\\n'").stdout.split()
    assert files["bytes"] == sum(map(int, sizes)) > 0
    throughput = result.outputs["throughput"]
    assert throughput["bytes"] == files["bytes"] and throughput["seconds"] > 0
    database = result.outputs["databases"]["fybj"]
    assert database["equal"]
    assert {t.split(".")[1] for t in database["tables"]} == set(TABLES)
    sent = (result.run_dir / "artifacts" / "transfer_files" / "checksums" / "web1.xxh128")
    lines = sent.read_text().splitlines()
    assert all(len(line.split("  ", 1)[0]) == 32 for line in lines)
    assert sorted(line.split("  ", 1)[1] for line in lines) == source_paths


def test_second_transfer_changes_nothing(world: World) -> None:
    result = run(world, "transfer")
    assert result.changed == 0, [p.changed_tasks for p in result.plays]


def on_target_database(world: World, sql: str) -> None:
    command = f"runuser -u postgres -- psql -XAt -v ON_ERROR_STOP=1 -d fybj -c {shlex.quote(sql)}"
    result = on_target(world, "db", command, known_hosts_of_last_run(world))
    assert result.returncode == 0, result.stderr


def test_a_cutover_whose_tables_differ_names_them_and_rolls_back(world: World) -> None:
    """A table only the target has, outside schema public: the source was not written since
    its copy, so the catch-up does not copy again, and the comparison must catch it."""
    on_target_database(world, "CREATE SCHEMA app; CREATE TABLE app.sessions AS "
                              "SELECT generate_series(1, 3) AS id")
    journal = state.journal_for(world.estate)
    try:
        with pytest.raises(StageFailed) as failed:
            run(world, "cutover")
    finally:
        on_target_database(world, "DROP SCHEMA app CASCADE")
    assert failed.value.message.startswith("database fybj differs between db1 and ")
    assert '1 table differs: "app.sessions" source missing, target 3 rows, checksum ' \
        in failed.value.message
    entry = [e for e in journal.entries() if e["stage"] == "cutover"][-1]
    assert entry["result"] == "failed" and entry["outputs"]["rolled_back"]["result"] == "ok"
    database = entry["outputs"]["databases"]["fybj"]
    assert database["differing"] == ["app.sessions"]
    assert database["target_tables"]["app.sessions"]["rows"] == 3
    assert {t.split(".")[1] for t in database["tables"]} == set(TABLES)
    assert service_state(world, source=True) == "active enabled"
    assert fetch_api(world, source=True) == world.before["api"]


def test_cutover_moves_service_and_leaves_the_source_stopped_but_intact(world: World) -> None:
    before = world.before
    result = run(world, "cutover")
    assert 0 < result.outputs["downtime_s"] < result.outputs["cutover_play_s"]
    assert result.outputs["files"]["web1"]["equal"]
    assert result.outputs["databases"]["fybj"]["equal"]
    assert tree_manifest(world, source=False) == before["files"]
    assert table_sums(world, source=False) == before["tables"]
    assert fetch_api(world, source=False) == before["api"]
    assert service_state(world, source=True) == "inactive disabled"
    assert service_state(world, source=False) == "active enabled"
    assert tree_manifest(world, source=True) == before["files"]  # source intact
    assert table_sums(world, source=True) == before["tables"]


def test_second_cutover_changes_nothing(world: World) -> None:
    result = run(world, "cutover")
    assert result.changed == 0, [p.changed_tasks for p in result.plays]


def test_rollback_restores_service_on_the_source(world: World) -> None:
    before = world.before
    result = run(world, "rollback")
    assert result.changed > 0
    assert service_state(world, source=True) == "active enabled"
    assert service_state(world, source=False) == "inactive disabled"
    assert fetch_api(world, source=True) == before["api"]
    again = run(world, "rollback")
    assert again.changed == 0, [p.changed_tasks for p in again.plays]


def test_killed_transfer_resumes_and_the_data_matches(world: World, tmp_path: Path) -> None:
    """SIGKILL the whole transfer (controller, Ansible, ssh) while rsync runs, and the rsync
    processes on both machines with it (the remote ends outlive a killed controller); the
    next transfer finishes and the trees are equal."""
    root = world.system["data"]["files"][0]["path"]
    grown = on_source(world, "web1", (
        f"mkdir -p {root}/big && cd {root}/big && for i in $(seq 1 120); do "
        f"head -c 3M /dev/urandom > f$i.bin; done; chown -R --reference={root} {root}/big"))
    assert grown.returncode == 0, grown.stderr
    world.before["files"] = tree_manifest(world, source=True)
    command = [sys.executable, "-c", KILLABLE_TRANSFER, str(world.folder),
               json.dumps(world.targets)]
    moving = subprocess.Popen(command, start_new_session=True, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    known = known_hosts_of_last_run(world)
    count = f"ls {root}/big 2>/dev/null | wc -l"
    try:
        wait_until(lambda: int(on_target(world, "web", count, known).stdout.strip() or 0) >= 5,
                   120)
    finally:
        os.killpg(moving.pid, signal.SIGKILL)
        moving.wait(30)
        on_source(world, "web1", "pkill -KILL -x rsync; true")
        on_target(world, "web", "pkill -KILL -x rsync; true", known)
    landed = int(on_target(world, "web", count, known).stdout.strip() or 0)
    assert landed < 120, "the kill came after rsync had finished"
    result = run(world, "transfer")
    assert result.outputs["files"]["web1"]["sent"] >= 120 - landed
    assert tree_manifest(world, source=False) == world.before["files"]
    assert service_state(world, source=True) == "active enabled"


KILLABLE_TRANSFER = """
import json, sys
from migrate.stages import move
from migrate.orchestrate.pipeline import context_for_plan, context_of, make_plan, open_estate
estate = open_estate(sys.argv[1])
plan = make_plan(context_of(estate), write=False).plan
move.transfer(context_for_plan(estate, plan), "wjw-fybj", json.loads(sys.argv[2]))
"""


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


COPY_FIRST_ROW = (
    "DO $$ DECLARE cols text; BEGIN "
    "SELECT string_agg(quote_ident(column_name), ', ') INTO cols FROM information_schema.columns "
    "WHERE table_name = 'birth_certificates' AND column_name <> 'id'; "
    "EXECUTE format('INSERT INTO birth_certificates (%s) SELECT %s FROM birth_certificates "
    "ORDER BY id LIMIT 1', cols, cols); END $$;")


def sql(world: World, source: bool, query: str, database: str = "fybj") -> str:
    command = (f"runuser -u postgres -- psql -XAt -v ON_ERROR_STOP=1 -d {database} "
               f"-c {shlex.quote(query)}")
    result = (on_source(world, "db1", command) if source else
              on_target(world, "db", command, known_hosts_of_last_run(world)))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


TUNNEL = f"migrate-replication-tunnel-{SYSTEM}.service"
TUNNEL_LEFT = ("systemctl list-units --all --plain --no-legend 'migrate-replication-tunnel-*';"
               " ls /etc/systemd/system | grep migrate-replication-tunnel; true")
ROLE = replication_account(SYSTEM, "fybj")  # the fybj database's own replication role
WALSENDER_PEERS = ("SELECT string_agg(DISTINCT host(client_addr), ',') FROM pg_stat_replication"
                   f" WHERE usename = '{ROLE}'")
WALSENDER_ROLES = "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_replication"


def test_logical_replication_keeps_the_target_in_step_then_cuts_over(world: World) -> None:
    plan = world.logical_plan()
    result = run(world, "transfer", plan=plan)
    assert result.outputs["databases"]["fybj"]["equal"]
    assert sql(world, True, "SHOW wal_level", "postgres") == "logical"
    assert sql(world, False, "SELECT count(*) FROM pg_subscription") == "1"
    # Through the replication tunnel, not straight across the network: the subscription
    # connects to the target's own loopback (the source's ssh -R, its unit running there), and
    # the source's walsender serves a peer on the source's own loopback (ssh's end).
    conninfo = sql(world, False, "SELECT subconninfo FROM pg_subscription")
    assert "host='127.0.0.1' port='15432'" in conninfo, conninfo
    assert on_source(world, "db1", f"systemctl is-active {TUNNEL}").stdout.strip() == "active"
    # A dropped tunnel is noticed at both ends within a minute: its ssh's keepalive on the
    # source, sshd's for root from the source on the target (and for no one else).
    unit = on_source(world, "db1", f"systemctl show --property=ExecStart --value {TUNNEL}")
    assert "-o ServerAliveInterval=15 -o ServerAliveCountMax=3" in unit.stdout, unit.stdout
    alive = "sshd -T -C user=root,host={0},addr={0} | grep ^clientalive"
    for address, keepalive in ((world.source_address("db1"), ["10", "2"]),
                               ("192.0.2.1", ["0", "3"])):
        said = on_target(world, "db", alive.format(address), known_hosts_of_last_run(world))
        assert said.stdout.split()[1::2] == keepalive, (address, said)
    assert sql(world, True, WALSENDER_PEERS, "postgres") == "127.0.0.1"
    # as the database's own role, none shared: another database's never changes its password
    assert f"user='{ROLE}'" in conninfo, conninfo
    assert sql(world, True, WALSENDER_ROLES, "postgres") == ROLE
    assert sql(world, True, "SELECT count(*) FROM pg_roles WHERE rolname = 'migrate_replicator'",
               "postgres") == "0"
    again = run(world, "transfer", plan=plan)
    assert again.changed == 0, [p.changed_tasks for p in again.plays]

    sql(world, True, COPY_FIRST_ROW)  # written while the source serves
    count = "SELECT count(*) FROM birth_certificates"
    wait_until(lambda: sql(world, False, count) == sql(world, True, count), 30)

    cut = run(world, "cutover", plan=plan)
    assert cut.outputs["databases"]["fybj"]["equal"]
    assert service_state(world, source=False) == "active enabled"
    sequence = "SELECT last_value FROM birth_certificates_id_seq"
    assert sql(world, False, sequence) == sql(world, True, sequence)
    assert sql(world, False, "SELECT count(*) FROM pg_subscription") == "0"
    assert sql(world, True, "SELECT count(*) FROM pg_replication_slots", "postgres") == "0"
    assert on_source(world, "db1", TUNNEL_LEFT).stdout.strip() == ""  # the tunnel ended too
    second = run(world, "cutover", plan=plan)
    assert second.changed == 0, [p.changed_tasks for p in second.plays]
    run(world, "rollback", plan=plan)
    assert service_state(world, source=True) == "active enabled"


def test_journal_names_each_stage(world: World) -> None:
    entries = [e for e in state.journal_for(world.estate).entries() if e["system"] == SYSTEM]
    stages = [(e["stage"], e["result"]) for e in entries]
    for stage in ("check_prerequisites", "transfer", "cutover", "rollback"):
        assert (stage, "ok") in stages
    cutover = next(e for e in entries if e["stage"] == "cutover" and e["result"] == "ok")
    assert cutover["inputs"]["inventory"].startswith("sha256:")
    assert cutover["outputs"]["databases"]["fybj"]["equal"] is True


def test_no_secret_in_any_artifact_log_or_journal(world: World) -> None:
    key_file, _ = move.migration_key(state.state_dir(world.estate), SYSTEM)
    secrets = [*state.secret_values(world.estate), key_file.read_text().strip()]
    replication = sorted(key_file.parent.glob("*.replication"))
    assert replication, "the logical replication test made a password"
    secrets += [p.read_text().strip() for p in replication]
    secrets += [line for line in key_file.read_text().splitlines()
                if len(line) > 40 and "PRIVATE KEY" not in line]
    assert len(secrets) >= 4
    folder = state.state_dir(world.estate)
    searched = [p for p in folder.rglob("*") if p.is_file()
                and "migration-keys" not in p.parts and "sandbox" not in p.parts]
    assert state.journal_for(world.estate).path in searched
    assert any("job_events" in p.parts for p in searched)
    leaks = [str(p) for p in searched for s in secrets
             if s in p.read_text(encoding="utf-8", errors="replace")]
    assert leaks == []


def test_decommission_source_needs_an_explicit_request_then_removes_the_access(
        world: World) -> None:
    with pytest.raises(GuardRefused):
        move.decommission_source(world.context(), SYSTEM, world.targets)
    remembered = "ls -A /var/lib/migrate/ 2>&1; true"  # move.sh's writes of its last copy
    assert "writes-fybj" in on_source(world, "db1", remembered).stdout.split()
    result = move.decommission_source(world.context(world.logical_plan()), SYSTEM,
                                          world.targets, confirmed=True)
    assert result.changed > 0
    assert sql(world, True, "SELECT count(*) FROM pg_publication") == "0"
    assert sql(world, True, "SELECT count(*) FROM pg_namespace WHERE nspname = 'migrate'") == "0"
    hba = on_source(world, "db1", "cat \"$(runuser -u postgres -- psql -XAt -c 'SHOW hba_file')\"")
    assert "migrate_replicator" not in hba.stdout and ROLE not in hba.stdout
    assert sql(world, True, f"SELECT count(*) FROM pg_roles WHERE rolname = '{ROLE}'") == "0"
    known = known_hosts_of_last_run(world)
    for instance in ("web", "db"):
        keys = on_target(world, instance, "cat /root/.ssh/authorized_keys", known)
        assert keys.returncode == 0 and "migrate-wjw-fybj" not in keys.stdout
    # the replication tunnels' sshd settings went with the key; sshd answers after the reload
    settings = on_target(world, "db", "ls /etc/ssh/sshd_config.d/", known)
    assert settings.returncode == 0 and "migrate-replication-tunnel" not in settings.stdout
    left = on_source(world, "web1", "ls /root/.ssh/ /var/lib/migrate/ 2>&1; true").stdout
    assert "migrate-wjw-fybj" not in left and "cutover-wjw-fybj" not in left
    left = on_source(world, "db1", remembered).stdout.split()
    assert not [f for f in left if f.startswith(("writes-", "subscribed-"))], left
    assert service_state(world, source=True) == "inactive disabled"
    assert tree_manifest(world, source=True) == world.before["files"]  # data untouched
