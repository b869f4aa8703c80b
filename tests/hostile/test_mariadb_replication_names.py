"""move_mariadb.sh's binlog replication reads database names, the replication tunnel's port
and the replication secrets as data: a name is escaped into the replication filter (one
holding "," or "." refused: the filter cannot say it), a port must be a number, the hash the
source stores must look like one (its account at 127.0.0.1, where the tunnel ends), and the
password reaches the target's SQL on stdin, never its command line. Run here with the
script's functions and a fake ``mariadb`` client that records what it gets."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.hostile import mariadb_script

HOSTILE = "x'; DROP DATABASE mysql; -- \\' `$(touch /tmp/pwned)` %_"


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
    done, sql = run(tmp_path, 'target=192.0.2.7; replicator_account',
                    stdin="'; DROP USER root; --\n")
    assert done.returncode == 1 and "not a mysql_native_password hash" in done.stderr
    assert sql == ""
    digest = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    done, sql = run(tmp_path, 'target=192.0.2.7; replicator_account', stdin=digest + "\n")
    assert done.returncode == 0, done.stderr
    assert "SET SESSION sql_log_bin = 0;" in sql  # never in the binlog a replica reads
    # the replica comes through the replication tunnel, from this host's own loopback; the
    # account an earlier version made for the target's address goes
    assert (f"CREATE OR REPLACE USER 'migrate_replicator'@'127.0.0.1' IDENTIFIED BY PASSWORD "
            f"'{digest}';") in sql
    assert "DROP USER IF EXISTS 'migrate_replicator'@'192.0.2.7';" in sql
    assert "GRANT REPLICATION SLAVE ON *.* TO 'migrate_replicator'@'127.0.0.1';" in sql


def test_the_replica_connects_to_the_tunnel_s_port_only(tmp_path: Path) -> None:
    for port in ("3306; DROP USER root", "", "-1", "x"):
        done, sql = run(tmp_path, 'target=192.0.2.7; replicate "$@"', port, "shop",
                        stdin="pw\n*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19\n")
        assert done.returncode == 2 and "not a port number" in done.stderr, port
        assert sql == "", port


def test_the_password_and_the_source_reach_the_target_s_sql_as_literals(
        tmp_path: Path) -> None:
    password = "pw-' \\ $(touch /tmp/pwned)"
    done, sql = run(tmp_path, 'target_start_replica "$1" "$2" 3306', "192.0.2.1'; --",
                    "shop.%", stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    assert "MASTER_HOST = '192.0.2.1\\'; --'" in sql
    assert "MASTER_PASSWORD = 'pw-\\' \\\\ $(touch /tmp/pwned)'" in sql
    assert "SET GLOBAL replicate_wild_do_table = 'shop.%';" in sql
