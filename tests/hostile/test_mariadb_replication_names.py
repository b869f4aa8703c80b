"""move_mariadb.sh's binlog replication reads database names, the replication tunnel's port
and the replication secrets as data: a name is escaped into the replication filter (one
holding "," or "." refused: the filter cannot say it), a port must be a number, the hash the
source stores must look like one (its account at 127.0.0.1, where the tunnel ends), and the
password reaches the target's SQL on stdin, never its command line. The replication account
is the one the transfer computed for the system's database (no other name reaches SQL, from
the plays or from what the host remembers), and each move drops its own only: an earlier
version's shared account goes with the last database remembered as replicated by it. Run here
with the script's functions and a fake ``mariadb`` client that records what it gets."""

from __future__ import annotations

import subprocess
from pathlib import Path

from migrate.stages.move.secret_files import replication_account
from tests.hostile import mariadb_script

HOSTILE = "x'; DROP DATABASE mysql; -- \\' `$(touch /tmp/pwned)` %_"
ACCOUNT = replication_account("swj-shop", "shop")
OTHER = replication_account("swj-mall", "mall")  # another system's, on the same source host


def run(tmp_path: Path, call: str, *args: str, stdin: str = ""
        ) -> tuple[subprocess.CompletedProcess, str]:
    """The script's functions against a client that finds nothing (answers 0)."""
    return mariadb_script.run(tmp_path, call, *args, stdin=stdin, answer="0")


def test_a_hostile_name_is_escaped_into_the_replication_filter(tmp_path: Path) -> None:
    done, _ = run(tmp_path, 'wild_tables "$1" shop_db', HOSTILE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("x'; DROP DATABASE mysql; -- \\\\' `$(touch /tmp/pwned)` \\%\\_.%,"
                           "shop\\_db.%")


def test_a_name_the_filter_cannot_say_is_refused(tmp_path: Path) -> None:
    for name in ("a,b", "a.b", ""):
        done, _ = run(tmp_path, 'wild_tables "$1"', name)
        assert done.returncode == 1 and "replication filter" in done.stderr, name


def test_the_source_stores_only_a_mysql_native_password_hash(tmp_path: Path) -> None:
    done, sql = run(tmp_path, 'target=192.0.2.7; replicator_account "$1"', ACCOUNT,
                    stdin="'; DROP USER root; --\n")
    assert done.returncode == 1 and "not a mysql_native_password hash" in done.stderr
    assert sql == ""
    digest = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    done, sql = run(tmp_path, 'target=192.0.2.7; replicator_account "$1"', ACCOUNT,
                    stdin=digest + "\n")
    assert done.returncode == 0, done.stderr
    assert "SET SESSION sql_log_bin = 0;" in sql  # never in the binlog a replica reads
    # the replica comes through the replication tunnel, from this host's own loopback, as
    # the system's database's own account
    assert (f"CREATE OR REPLACE USER '{ACCOUNT}'@'127.0.0.1' IDENTIFIED BY PASSWORD "
            f"'{digest}';") in sql
    assert f"GRANT REPLICATION SLAVE ON *.* TO '{ACCOUNT}'@'127.0.0.1';" in sql
    assert "migrate_replicator" not in sql  # the shared account is nobody's to change now


def test_an_account_name_that_is_not_migrate_s_reaches_no_sql(tmp_path: Path) -> None:
    digest = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    for account in (HOSTILE, "migrate_replicator", "root", "", ACCOUNT + "0"):
        for call in ('replicator_account "$1"', 'unreplicate "$1" shop',
                     'replicate 13306 "$1" shop'):
            done, sql = run(tmp_path, f"target=192.0.2.7; {call}", account,
                            stdin=f"pw\n{digest}\n")
            assert done.returncode == 2, (call, account, done.stderr)
            assert "not a replication account" in done.stderr, (call, account)
            assert sql == "", (call, account)


def remembered(tmp_path: Path, **accounts: str) -> Path:
    """This host's memory of which account replicates each database ("" for an earlier
    version's: the shared account)."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    for db, account in accounts.items():
        (state / f"mariadb-replicated-{db}").write_text(account + "\n" if account else "")
    return state


def dropped(tmp_path: Path, state: Path, account: str, *dbs: str
            ) -> tuple[subprocess.CompletedProcess, str]:
    """unreplicate (rollback, decommission) against a client that finds every account."""
    return mariadb_script.run(tmp_path, 'STATE="$1"; target=192.0.2.7; shift; unreplicate "$@"',
                              str(state), account, *dbs, answer="1")


def test_a_move_drops_its_own_account_only(tmp_path: Path) -> None:
    state = remembered(tmp_path, shop=ACCOUNT, mall=OTHER)
    done, sql = dropped(tmp_path, state, ACCOUNT, "shop")
    assert done.returncode == 0, done.stderr
    assert "changed" in done.stdout.split()
    assert ("DROP USER IF EXISTS "
            f"'{ACCOUNT}'@'127.0.0.1', 'migrate_replicator'@'192.0.2.7';") in sql
    assert OTHER not in sql and "'migrate_replicator'@'127.0.0.1'" not in sql
    assert sorted(p.name for p in state.iterdir()) == ["mariadb-replicated-mall"]


def test_an_earlier_version_s_shared_account_goes_with_its_last_database(
        tmp_path: Path) -> None:
    # two moves an earlier version made replicas of this host, as the one shared account
    state = remembered(tmp_path, shop="", mall="")
    done, sql = dropped(tmp_path, state, ACCOUNT, "shop")
    assert done.returncode == 0, done.stderr
    assert "'migrate_replicator'@'127.0.0.1'" not in sql  # the mall's replica still uses it
    assert f"'{ACCOUNT}'@'127.0.0.1'" in sql
    done, sql = dropped(tmp_path, state, OTHER, "mall")
    assert done.returncode == 0, done.stderr
    assert ("DROP USER IF EXISTS "
            f"'{OTHER}'@'127.0.0.1', 'migrate_replicator'@'127.0.0.1', "
            "'migrate_replicator'@'192.0.2.7';") in sql
    assert list(state.iterdir()) == []


def test_a_remembered_account_that_is_not_migrate_s_reaches_no_sql(tmp_path: Path) -> None:
    state = remembered(tmp_path, shop=HOSTILE.replace("\n", " "))
    done, sql = dropped(tmp_path, state, ACCOUNT, "shop")
    assert done.returncode == 2 and "not a replication account" in done.stderr
    assert "DROP" not in sql


def test_the_replica_connects_to_the_tunnel_s_port_only(tmp_path: Path) -> None:
    for port in ("3306; DROP USER root", "", "-1", "x"):
        done, sql = run(tmp_path, 'target=192.0.2.7; replicate "$@"', port, ACCOUNT, "shop",
                        stdin="pw\n*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19\n")
        assert done.returncode == 2 and "not a port number" in done.stderr, port
        assert sql == "", port


def test_the_password_and_the_source_reach_the_target_s_sql_as_literals(
        tmp_path: Path) -> None:
    password = "pw-' \\ $(touch /tmp/pwned)"
    done, sql = run(tmp_path, 'target_start_replica "$1" "$2" 3306 "$3"', "192.0.2.1'; --",
                    "shop.%", ACCOUNT, stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    assert "MASTER_HOST = '192.0.2.1\\'; --'" in sql
    assert f"MASTER_USER = '{ACCOUNT}'," in sql
    assert "MASTER_PASSWORD = 'pw-\\' \\\\ $(touch /tmp/pwned)'" in sql
    assert "SET GLOBAL replicate_wild_do_table = 'shop.%';" in sql
