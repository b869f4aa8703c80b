"""Names and secrets from a source host against the playbooks' database scripts
(copy_roles.sh, move.sh), on two throwaway PostgreSQL clusters on this host: a "source" and
a "target". ``ssh`` to the target is a stand-in that runs the remote command here against the
target cluster; ``runuser`` is a stand-in that records its arguments, so every argument list
the scripts hand to psql, pg_dump or ssh can be searched for a secret. Both clusters log every
statement (log_statement = all), so their logs can be searched too.

A name that would run SQL of its own runs ``COPY ... TO PROGRAM 'touch pwned'``: the file
would appear in the data folder of the cluster that ran it. Needs root and Debian's
postgresql (initdb, pg_ctl; scripts/setup-host.sh installs it). The subscription reaches the
source cluster's port as it would the replication tunnel's on a target (127.0.0.1:PORT); the
subscription tests write the passfile where a target keeps it (/var/lib/postgresql/migrate/)
and remove it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate.adapters.access import CommandResult, Login, SourceSession
from migrate.rehearsal.legacy.units import scram_verifier
from migrate.stages.discovery import probes
from migrate.stages.move import compare_tables, parse_table_sums
from migrate.stages.move.secret_files import replication_account

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
COPY_ROLES = ROOT / "playbooks/roles/prepare_target/files/copy_roles.sh"
MOVE = ROOT / "playbooks/files/move.sh"

def newest_pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else None


PG_BIN = newest_pg_bin() or Path("/usr/lib/postgresql/15/bin")
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
PASSFILES = Path("/var/lib/postgresql/migrate")
STATE = Path("/var/lib/migrate")
# Each closes the quoting it is pasted into, then runs a command as postgres.
HOSTILE_ROLE = "x$c$); COPY (SELECT 1) TO PROGRAM 'touch pwned'; --"
HOSTILE_DB = "d'; COPY (SELECT 1) TO PROGRAM 'touch pwned'; --"

SSH_SHIM = """#!/bin/bash
# ssh to the target: the remote command runs here, against the target cluster
if [ "$1" = -l ]; then shift 2; fi
shift
printf '%s\\0' "$*" >> "$ARGV_LOG"
export PGHOST="$TARGET_PGHOST" PGPORT="$TARGET_PGPORT"
exec bash -c "$*"
"""
RUNUSER_SHIM = f"""#!/bin/bash
printf '%s\\0' "$*" >> "$ARGV_LOG"
exec {RUNUSER} "$@"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Cluster:
    base: Path
    port: int

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def env(self) -> dict[str, str]:
        return {"PGHOST": str(self.base), "PGPORT": str(self.port)}

    def run(self, *argv: str, stdin: str = "", check: bool = True) -> str:
        done = subprocess.run([RUNUSER, "-u", "postgres", "--", *argv], input=stdin,
                              env={**os.environ, **self.env()}, capture_output=True,
                              text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{argv}: {done.stderr}")
        return done.stdout

    def sql(self, text: str, db: str = "postgres", **variables: str) -> str:
        options = [f"--variable={k}={v}" for k, v in variables.items()]
        return self.run("psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, *options,
                        stdin=text).strip()

    def start(self) -> None:
        self.run(str(PG_BIN / "initdb"), "-D", str(self.data), "-E", "UTF8", "--locale=C",
                 "--auth-local=peer", "--auth-host=scram-sha-256")
        options = (f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.base} -c wal_level=logical "
                   "-c log_statement=all")
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                 "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                     "stop", check=False)


@dataclass
class Hosts:
    source: Cluster
    target: Cluster
    shims: Path

    @property
    def argv_log(self) -> Path:
        return self.shims / "argv.log"

    def script(self, script: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        env = {**os.environ, **self.source.env(),
               "PATH": f"{self.shims}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               "MIGRATE_SSH": str(self.shims / "ssh"), "ARGV_LOG": str(self.argv_log),
               "TARGET_PGHOST": str(self.target.base), "TARGET_PGPORT": str(self.target.port),
               "MIGRATE_SYNC_TIMEOUT_S": "60"}
        return subprocess.run(["bash", str(script), *args], input=stdin, env=env,
                              capture_output=True, text=True, timeout=180, check=False)

    def canaries(self) -> list[Path]:
        return [c.data / "pwned" for c in (self.source, self.target) if (c.data / "pwned").exists()]

    def seen(self, secret: str) -> list[str]:
        """Where a secret shows: the argument lists handed on, and both servers' logs."""
        places = {"argv": self.argv_log, "source log": self.source.log,
                  "target log": self.target.log}
        return [name for name, path in places.items()
                if path.exists() and secret in path.read_text(errors="replace")]


def make_cluster(port: int | None = None) -> Cluster:
    base = Path(tempfile.mkdtemp(prefix="hostile-pg-"))
    shutil.chown(base, "postgres")
    base.chmod(0o700)
    cluster = Cluster(base, port or free_port())
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("the scripts switch to postgres with runuser: run as root")
    if not (PG_BIN / "initdb").is_file():
        pytest.skip(f"{PG_BIN}/initdb not found: install Debian's postgresql "
                    "(scripts/setup-host.sh)")
    shims = Path(tempfile.mkdtemp(prefix="hostile-shims-"))
    for name, text in (("ssh", SSH_SHIM), ("runuser", RUNUSER_SHIM)):
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    made: list[Cluster] = []
    left = [folder for folder in (PASSFILES, STATE) if not folder.exists()]
    try:
        made.append(make_cluster())
        made.append(make_cluster())
        yield Hosts(made[0], made[1], shims)
    finally:
        for cluster in made:
            cluster.stop()
            shutil.rmtree(cluster.base, ignore_errors=True)
        shutil.rmtree(shims, ignore_errors=True)
        for folder in left:  # made by the scripts here, as on a host; others may use it now
            with contextlib.suppress(OSError):
                folder.rmdir()


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def make_role(cluster: Cluster, name: str, password: str, *extra: str) -> None:
    cluster.sql(f"SELECT format('CREATE ROLE %I LOGIN PASSWORD %L {' '.join(extra)}', "
                ":'name', :'password') \\gexec", name=name, password=password)


def make_database(cluster: Cluster, name: str, owner: str = "postgres") -> None:
    cluster.sql("SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'owner') \\gexec",
                name=name, owner=owner)
    cluster.sql("CREATE TABLE items (id integer PRIMARY KEY, label text)", db=dbname(name))


def dbname(name: str) -> str:
    return "dbname='" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def roles(cluster: Cluster, names: list[str]) -> dict[str, list]:
    """Each role's verifier and whether it logs in, by name (JSON: a name may hold a newline)."""
    out = cluster.sql("SELECT coalesce(jsonb_object_agg(rolname, jsonb_build_array("
                      "rolpassword, rolcanlogin)), '{}') FROM pg_authid "
                      "WHERE rolname = ANY (string_to_array(:'names', chr(1)))",
                      names=chr(1).join(names))
    return json.loads(out)


# ---------------------------------------------------------------- copy_roles.sh


def test_a_hostile_role_name_runs_nothing_and_the_role_is_copied(hosts: Hosts) -> None:
    app, db, multiline = unique("app"), unique("db"), unique("two") + "\nlines"
    make_role(hosts.source, app, "app-password-0123456789")
    make_role(hosts.source, HOSTILE_ROLE, "hostile-password-0123456789")
    make_role(hosts.source, multiline, "multi-password-0123456789", f"IN ROLE {app}")
    make_database(hosts.source, db, owner=app)
    hosts.source.sql("SELECT format('GRANT SELECT ON items TO %I', :'name') \\gexec",
                     db=dbname(db), name=HOSTILE_ROLE)

    done = hosts.script(COPY_ROLES, db, app, "127.0.0.1")

    assert hosts.canaries() == [], "a role name ran COPY ... TO PROGRAM"
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["changed"]
    names = [app, HOSTILE_ROLE, multiline]
    copied = roles(hosts.target, names)
    assert set(copied) == set(names)
    assert copied == roles(hosts.source, names)
    member = ("SELECT count(*) FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid "
              "JOIN pg_roles m ON m.oid = a.member WHERE g.rolname = :'g' AND m.rolname = :'m'")
    assert hosts.target.sql(member, g=app, m=multiline) == "1"
    verifier = roles(hosts.source, [HOSTILE_ROLE])[HOSTILE_ROLE][0]
    assert hosts.seen(verifier) == []
    again = hosts.script(COPY_ROLES, db, app, "127.0.0.1")
    assert (again.returncode, again.stdout.split()) == (0, ["unchanged"]), again.stderr


def test_a_comma_in_a_role_name_drags_no_superuser_along(hosts: Hosts) -> None:
    app, db, comma = unique("app"), unique("db"), unique("c") + ",postgres"
    make_role(hosts.source, app, "app-password-0123456789")
    make_role(hosts.source, comma, "comma-password-0123456789", f"IN ROLE {app}")
    make_database(hosts.source, db, owner=app)
    hosts.target.sql("ALTER ROLE postgres PASSWORD 'target-superuser-0123456789'")
    before = roles(hosts.target, ["postgres"])

    done = hosts.script(COPY_ROLES, db, app, "127.0.0.1")

    assert done.returncode == 0, done.stderr
    assert roles(hosts.target, ["postgres"]) == before
    assert roles(hosts.target, [comma]) == roles(hosts.source, [comma])


# ---------------------------------------------------------------- move.sh, logical replication


def publication(cluster: Cluster, db: str) -> str:
    return cluster.sql("SELECT count(*) FROM pg_publication WHERE pubname = :'p'",
                       db=dbname(db), p=f"migrate_{db}")


LEGACY = "migrate_replicator"  # the role every database of a host shared in earlier versions


def role_of(db: str, system: str = "hostile-sys") -> str:
    """The replication role the transfer gives a system's database (secret_files)."""
    return replication_account(system, db)


def replicator(cluster: Cluster, role: str = LEGACY) -> str:
    return cluster.sql("SELECT count(*) FROM pg_roles WHERE rolname = :'r'", r=role)


def publish(hosts: Hosts, db: str, password: str, role: str | None = None
            ) -> subprocess.CompletedProcess:
    verifier = scram_verifier(password, secrets.token_bytes(16))
    return hosts.script(MOVE, "publish", db, "127.0.0.1", role or role_of(db),
                        stdin=verifier + "\n")


def published_by_hand(cluster: Cluster, db: str, role: str, password: str = "") -> None:
    """What publish leaves, made here: the role (LEGACY: an earlier version's, with its
    pg_hba line for db) and the publication."""
    cluster.sql("SELECT format('CREATE ROLE %I LOGIN REPLICATION', :'r') WHERE NOT EXISTS ("
                "SELECT FROM pg_roles WHERE rolname = :'r') \\gexec", r=role)
    if password:
        cluster.sql("SELECT format('ALTER ROLE %I PASSWORD %L', :'r', :'v') \\gexec", r=role,
                    v=scram_verifier(password, secrets.token_bytes(16)))
    cluster.sql("SELECT format('GRANT pg_read_all_data TO %I', :'r') \\gexec", r=role)
    cluster.sql("SELECT format('CREATE PUBLICATION %I FOR ALL TABLES', :'p') \\gexec",
                db=dbname(db), p=f"migrate_{db}")
    if role == LEGACY:
        with (cluster.data / "pg_hba.conf").open("a") as hba:
            hba.write(f'host    "{db}"  {LEGACY}  127.0.0.1/32  scram-sha-256\n')
        cluster.sql("SELECT pg_reload_conf()")


def logs_in(cluster: Cluster, role: str, password: str, db: str) -> bool:
    """Whether ROLE logs in to db over 127.0.0.1 (where the tunnel ends) with password."""
    conninfo = f"host=127.0.0.1 port={cluster.port} user={role} {dbname(db)}"
    done = subprocess.run([RUNUSER, "-u", "postgres", "--", "psql", "-XAtw", "-d", conninfo,
                           "-c", "SELECT current_user"], capture_output=True, text=True,
                          env={**os.environ, "PGPASSWORD": password, "PGPASSFILE": "/dev/null"},
                          timeout=60, check=False)
    return done.returncode == 0 and done.stdout.strip() == role


def test_unpublish_pastes_no_database_name_into_sql(hosts: Hosts) -> None:
    make_database(hosts.source, HOSTILE_DB)
    published_by_hand(hosts.source, HOSTILE_DB, role_of(HOSTILE_DB))

    done = hosts.script(MOVE, "unpublish", HOSTILE_DB, "127.0.0.1", role_of(HOSTILE_DB))

    assert hosts.canaries() == [], "a database name ran COPY ... TO PROGRAM"
    assert done.returncode == 0, done.stderr
    assert publication(hosts.source, HOSTILE_DB) == "0"
    assert replicator(hosts.source, role_of(HOSTILE_DB)) == "0"


def test_a_role_name_that_is_not_migrate_s_reaches_no_sql(hosts: Hosts) -> None:
    db = unique("named")
    make_database(hosts.source, db)
    for mode, args in (("publish", [db, "127.0.0.1"]), ("unpublish", [db, "127.0.0.1"]),
                       ("subscribe", [db, "127.0.0.1", "5432"])):
        for role in (HOSTILE_ROLE, LEGACY, "postgres", ""):
            done = hosts.script(MOVE, mode, *args, role, stdin="SCRAM-SHA-256$x\n")
            assert done.returncode == 2 and "not a replication role" in done.stderr, (mode, role)
    assert hosts.canaries() == []
    assert publication(hosts.source, db) == "0"


def test_publish_takes_the_verifier_on_stdin_and_logs_it_nowhere(hosts: Hosts) -> None:
    db = unique("pub")
    make_database(hosts.source, db)
    verifier = scram_verifier("replication-0123456789", secrets.token_bytes(16))

    done = hosts.script(MOVE, "publish", db, "127.0.0.1", role_of(db), stdin=verifier + "\n")

    assert done.returncode == 0, done.stderr
    assert "changed" in done.stdout.split("\n")
    assert hosts.source.sql("SELECT rolpassword FROM pg_authid "
                            "WHERE rolname = :'r' AND rolreplication", r=role_of(db)) == verifier
    assert publication(hosts.source, db) == "1"
    assert hosts.seen(verifier) == []
    again = hosts.script(MOVE, "publish", db, "127.0.0.1", role_of(db), stdin=verifier + "\n")
    assert (again.returncode, again.stdout) == (0, ""), again.stderr
    hba = (hosts.source.data / "pg_hba.conf").read_text()
    assert f'host    "{db}"  {role_of(db)}  127.0.0.1/32  scram-sha-256' in hba
    assert hosts.script(MOVE, "unpublish", db, "127.0.0.1", role_of(db)).returncode == 0


def test_each_database_replicates_as_its_own_role_with_its_own_password(hosts: Hosts) -> None:
    # two databases of one system, and a third system's, on one source host
    first, second, third = unique("one"), unique("two"), unique("three")
    made = {first: role_of(first), second: role_of(second), third: role_of(third, "other-sys")}
    passwords = {db: f"replication-{secrets.token_hex(12)}" for db in made}
    for db in made:
        make_database(hosts.source, db)
    assert publish(hosts, first, passwords[first], made[first]).returncode == 0
    verifier = roles(hosts.source, [made[first]])[made[first]][0]

    for db in (second, third):
        done = publish(hosts, db, passwords[db], made[db])
        assert done.returncode == 0, done.stderr

    assert len(set(made.values())) == 3
    assert roles(hosts.source, [made[first]])[made[first]][0] == verifier  # untouched
    for db, role in made.items():
        assert logs_in(hosts.source, role, passwords[db], db), role
        assert not logs_in(hosts.source, role, passwords[second if db != second else first], db)
    hba = (hosts.source.data / "pg_hba.conf").read_text()
    assert LEGACY not in hba

    # each unpublish removes its own role and line, nobody else's
    done = hosts.script(MOVE, "unpublish", first, "127.0.0.1", made[first])
    assert (done.returncode, done.stdout.split()) == (0, ["changed"]), done.stderr
    assert replicator(hosts.source, made[first]) == "0"
    assert logs_in(hosts.source, made[second], passwords[second], second)
    assert logs_in(hosts.source, made[third], passwords[third], third)
    for db in (second, third):
        assert hosts.script(MOVE, "unpublish", db, "127.0.0.1", made[db]).returncode == 0
    assert [replicator(hosts.source, role) for role in made.values()] == ["0", "0", "0"]
    hba = (hosts.source.data / "pg_hba.conf").read_text()
    assert not [role for role in made.values() if role in hba]


def test_an_earlier_version_s_shared_role_goes_with_its_last_database(hosts: Hosts) -> None:
    first, second = unique("one"), unique("two")
    for db in (first, second):
        make_database(hosts.source, db)
        published_by_hand(hosts.source, db, LEGACY)

    assert hosts.script(MOVE, "unpublish", first, "127.0.0.1", role_of(first)).returncode == 0
    assert replicator(hosts.source) == "1"  # the other database still replicates as it
    done = hosts.script(MOVE, "unpublish", second, "127.0.0.1", role_of(second))

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["changed"]
    assert replicator(hosts.source) == "0"
    hba = (hosts.source.data / "pg_hba.conf").read_text()
    assert LEGACY not in hba


def wait_for(condition, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


@pytest.fixture
def remembered() -> Iterator[list[str]]:
    """Databases whose state the scripts keep on this host (subscribe, unsubscribe)."""
    names: list[str] = []
    yield names
    for name in names:
        for path in (STATE / f"subscribed-{name}", STATE / f"writes-{name}",
                     PASSFILES / f"replication-{name}.pgpass"):
            path.unlink(missing_ok=True)


def test_a_failed_subscription_leaves_the_password_nowhere(
        hosts: Hosts, remembered: list[str]) -> None:
    db, password = unique("failing"), f"replication-{secrets.token_hex(12)}"
    remembered.append(db)
    make_database(hosts.source, db)
    published_by_hand(hosts.source, db, role_of(db))
    nothing = free_port()

    # Nothing listens on that port (no tunnel): CREATE SUBSCRIPTION fails on the target.
    done = hosts.script(MOVE, "subscribe", db, "127.0.0.1", str(nothing), role_of(db),
                        stdin=password + "\n")

    assert done.returncode != 0
    assert hosts.target.sql("SELECT count(*) FROM pg_subscription") == "0"
    assert hosts.seen(password) == []
    assert password not in done.stderr + done.stdout
    assert not (PASSFILES / f"replication-{db}.pgpass").exists()
    assert hosts.script(MOVE, "unpublish", db, "127.0.0.1", role_of(db)).returncode == 0


def test_the_subscription_reads_its_password_from_a_passfile_removed_at_the_end(
        hosts: Hosts, remembered: list[str]) -> None:
    db, password = unique("streams"), f"replication-{secrets.token_hex(12)}"
    remembered.append(db)
    make_database(hosts.source, db)
    hosts.source.sql("INSERT INTO items VALUES (1, 'before')", db=dbname(db))
    assert publish(hosts, db, password).returncode == 0

    port = str(hosts.source.port)  # where the replication tunnel would end on the target
    done = hosts.script(MOVE, "subscribe", db, "127.0.0.1", port, role_of(db),
                        stdin=password + "\n")

    assert done.returncode == 0, done.stderr
    passfile = PASSFILES / f"replication-{db}.pgpass"
    info = passfile.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, pwd.getpwnam("postgres").pw_uid)
    assert hosts.target.sql("SELECT label FROM items", db=dbname(db)) == "before"
    conninfo = hosts.target.sql("SELECT subconninfo FROM pg_subscription WHERE subname = :'s'",
                                s=f"migrate_{db}")
    assert "passfile=" in conninfo and password not in conninfo
    assert f"host='127.0.0.1' port='{port}'" in conninfo
    assert f"user='{role_of(db)}'" in conninfo
    assert hosts.seen(password) == []

    # A subscription of an earlier version (straight to the source's address) is pointed at
    # the tunnel by the next transfer, nothing copied again.
    hosts.target.sql("SELECT format('ALTER SUBSCRIPTION %I CONNECTION %L', :'s', :'c') \\gexec",
                     db=dbname(db), s=f"migrate_{db}",
                     c=conninfo.replace("host='127.0.0.1'", "host='localhost'"))
    hosts.source.sql("INSERT INTO items VALUES (2, 'while pointed elsewhere')", db=dbname(db))
    again = hosts.script(MOVE, "subscribe", db, "127.0.0.1", port, role_of(db),
                         stdin=password + "\n")
    assert (again.returncode, again.stdout.split()) == (0, ["changed"]), again.stderr
    assert hosts.target.sql("SELECT subconninfo FROM pg_subscription WHERE subname = :'s'",
                            s=f"migrate_{db}") == conninfo
    wait_for(lambda: hosts.target.sql("SELECT count(*) FROM items", db=dbname(db)) == "2")
    third = hosts.script(MOVE, "subscribe", db, "127.0.0.1", port, role_of(db),
                         stdin=password + "\n")
    assert (third.returncode, third.stdout.split()) == (0, ["unchanged"]), third.stderr

    ended = hosts.script(MOVE, "unsubscribe", "127.0.0.1", db)

    assert ended.returncode == 0, ended.stderr
    assert not passfile.exists()
    assert hosts.target.sql("SELECT count(*) FROM pg_subscription") == "0"
    assert hosts.script(MOVE, "unpublish", db, "127.0.0.1", role_of(db)).returncode == 0
    assert replicator(hosts.source, role_of(db)) == "0"


def test_an_earlier_version_s_subscription_is_pointed_at_the_database_s_own_role(
        hosts: Hosts, remembered: list[str]) -> None:
    db, password = unique("shared"), f"replication-{secrets.token_hex(12)}"
    remembered.append(db)
    make_database(hosts.source, db)
    make_database(hosts.target, db)
    hosts.source.sql("INSERT INTO items VALUES (1, 'before')", db=dbname(db))
    # as an earlier version left it: the shared role, its line, its passfile, its subscription
    published_by_hand(hosts.source, db, LEGACY, password)
    passfile = PASSFILES / f"replication-{db}.pgpass"
    PASSFILES.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(PASSFILES, "postgres", "postgres")
    passfile.write_text(f"*:*:*:{LEGACY}:{password}\n")
    passfile.chmod(0o600)
    shutil.chown(passfile, "postgres", "postgres")
    port = str(hosts.source.port)
    old = (f"host='127.0.0.1' port='{port}' dbname='{db}' user='{LEGACY}' "
           f"passfile='{passfile}'")
    hosts.target.sql("SELECT format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I', "
                     ":'s', :'c', :'s') \\gexec", db=dbname(db), s=f"migrate_{db}", c=old)
    wait_for(lambda: hosts.target.sql("SELECT count(*) FROM items", db=dbname(db)) == "1")
    (STATE / f"subscribed-{db}").touch()

    assert publish(hosts, db, password).returncode == 0
    again = hosts.script(MOVE, "subscribe", db, "127.0.0.1", port, role_of(db),
                         stdin=password + "\n")

    assert (again.returncode, again.stdout.split()) == (0, ["changed"]), again.stderr
    conninfo = hosts.target.sql("SELECT subconninfo FROM pg_subscription WHERE subname = :'s'",
                                s=f"migrate_{db}")
    assert f"user='{role_of(db)}'" in conninfo, conninfo
    assert passfile.read_text() == f"*:*:*:{role_of(db)}:{password}\n"
    hosts.source.sql("INSERT INTO items VALUES (2, 'as its own role')", db=dbname(db))
    wait_for(lambda: hosts.target.sql("SELECT count(*) FROM items", db=dbname(db)) == "2")
    walsenders = "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_replication"
    wait_for(lambda: hosts.source.sql(walsenders) == role_of(db))
    assert replicator(hosts.source) == "0"  # no other database replicated as it
    assert LEGACY not in (hosts.source.data / "pg_hba.conf").read_text()
    assert hosts.seen(password) == []

    assert hosts.script(MOVE, "unsubscribe", "127.0.0.1", db).returncode == 0
    assert hosts.script(MOVE, "unpublish", db, "127.0.0.1", role_of(db)).returncode == 0
    assert replicator(hosts.source, role_of(db)) == "0"


# ---------------------------------------------------------------- per-table sums (move.sh sums)

HOSTILE_TABLE = "t\"; COPY (SELECT 1) TO PROGRAM 'touch pwned'; --"


def sums_on(hosts: Hosts, cluster: Cluster, db: str) -> dict[str, dict]:
    """``move.sh sums DB`` against ``cluster``, parsed as the cutover parses it."""
    env = {**os.environ, **cluster.env(), "ARGV_LOG": str(hosts.argv_log),
           "PATH": f"{hosts.shims}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    done = subprocess.run(["bash", str(MOVE), "sums", db], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return parse_table_sums(done.stdout)


def test_sums_name_every_table_of_every_schema_and_the_one_that_differs(hosts: Hosts) -> None:
    db = unique("sums") + " x'y"
    for cluster in (hosts.source, hosts.target):
        make_database(cluster, db)
        cluster.sql("SELECT format('CREATE SCHEMA app; CREATE TABLE app.sessions (id int); "
                    "CREATE TABLE app.%I (id int); CREATE TABLE app.\"my table\" (id int); "
                    "INSERT INTO app.sessions SELECT generate_series(1, 5); "
                    "INSERT INTO app.%I VALUES (1); INSERT INTO items VALUES (1, ''a'')', "
                    ":'hostile', :'hostile') \\gexec", db=dbname(db), hostile=HOSTILE_TABLE)
    hosts.target.sql("UPDATE app.sessions SET id = 9 WHERE id = 1", db=dbname(db))

    here, there = sums_on(hosts, hosts.source, db), sums_on(hosts, hosts.target, db)

    assert hosts.canaries() == [], "a table name ran COPY ... TO PROGRAM"
    assert set(here) == {"public.items", "app.sessions", f"app.{HOSTILE_TABLE}",
                         "app.my table"}
    assert here["app.sessions"]["rows"] == 5 and here["app.my table"]["rows"] == 0
    assert here[f"app.{HOSTILE_TABLE}"]["rows"] == 1
    assert compare_tables(here, there, set())["differing"] == ["app.sessions"]
    assert compare_tables(here, there, {"app.sessions"})["equal"] is True


# ---------------------------------------------------------------- discovery's watch of writes


class LocalSession(SourceSession):
    """A root session on a source host whose commands run here, against ``cluster``."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(Login("127.0.0.1", "root", None), client=None)  # type: ignore[arg-type]
        self.cluster = cluster

    def run(self, command: str, timeout: float = 120) -> CommandResult:
        done = subprocess.run(["bash", "-c", command], env={**os.environ, **self.cluster.env()},
                              capture_output=True, text=True, timeout=timeout, check=False)
        return CommandResult(done.returncode, done.stdout, done.stderr)


def test_discovery_proposes_the_tables_written_while_it_watches(hosts: Hosts) -> None:
    db = unique("watched") + " x'y"
    make_database(hosts.source, db)
    hosts.source.sql("SELECT format('CREATE SCHEMA app; CREATE TABLE app.sessions (id int); "
                     "CREATE TABLE app.%I (id int); CREATE TABLE app.users (id int); "
                     "INSERT INTO app.users VALUES (1)', :'hostile') \\gexec",
                     db=dbname(db), hostile=HOSTILE_TABLE)
    found: list[dict | None] = []
    watching = threading.Thread(target=lambda: found.append(
        probes.probe_postgresql(LocalSession(hosts.source), watch_s=2)))
    watching.start()
    while watching.is_alive():  # each psql exits, so its statistics are flushed at once
        hosts.source.sql("SELECT format('INSERT INTO app.sessions VALUES (1); "
                         "INSERT INTO app.%I VALUES (2)', :'hostile') \\gexec",
                         db=dbname(db), hostile=HOSTILE_TABLE)
        time.sleep(0.2)
    watching.join()

    assert hosts.canaries() == [], "a table name ran COPY ... TO PROGRAM"
    [server] = found
    assert server is not None
    database = next(d for d in server["databases"] if d["name"] == db)
    assert database["watched_s"] == 2
    written = [t["table"] for t in database["written_while_watched"]]
    assert written == sorted(["app.sessions", f"app.{HOSTILE_TABLE}"])  # not app.users


def test_discovery_watches_nothing_when_told_so(hosts: Hosts) -> None:
    db = unique("unwatched")
    make_database(hosts.source, db)
    started = time.monotonic()
    server = probes.probe_postgresql(LocalSession(hosts.source), watch_s=0)
    assert server is not None and time.monotonic() - started < probes.WATCH_S
    database = next(d for d in server["databases"] if d["name"] == db)
    assert "watched_s" not in database and "written_while_watched" not in database
