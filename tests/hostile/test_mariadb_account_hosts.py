"""move_mariadb.sh's account copy when an account's host part is a source host's address:
the address pairs (from the inventory) reach SQL only as escaped string literals (RENAME USER
on the target, the lookup on the source), and the statements compared after the copy are
the source's with exactly that account renamed, nothing else. Run here with the script's
functions and a fake ``mariadb`` client that records what it gets."""

from __future__ import annotations

from pathlib import Path

from tests.hostile.mariadb_script import run

HOSTILE = "1.2.3.4'; DROP USER root@localhost; -- \\' `$(touch /tmp/pwned)`"
ESCAPED = "'1.2.3.4\\'; DROP USER root@localhost; -- \\\\\\' `$(touch /tmp/pwned)`'"


def test_only_the_source_hosts_account_is_renamed_in_the_statements(tmp_path: Path) -> None:
    statements = ("CREATE USER `xmsb`@`192.168.177.11` IDENTIFIED BY PASSWORD '*AB12'\n"
                  "GRANT SELECT ON `xmsb`.* TO `xmsb`@`192.168.177.11`\n"
                  "GRANT USAGE ON *.* TO `xmsb`@`localhost`\n"
                  "GRANT USAGE ON *.* TO `other`@`192.168.177.11`\n")
    done, _ = run(tmp_path, 'map_accounts "$@"', "xmsb", "192.168.177.11", "10.177.0.21",
                  stdin=statements)
    assert done.returncode == 0, done.stderr
    assert done.stdout == statements.replace("`xmsb`@`192.168.177.11`", "`xmsb`@`10.177.0.21`")
    unmapped, _ = run(tmp_path, 'map_accounts "$1"', "xmsb", stdin=statements)
    assert unmapped.stdout == statements


def test_the_renames_on_the_target_are_escaped_literals(tmp_path: Path) -> None:
    done, sql = run(tmp_path, 'target_apply_users "$@"', "xmsb", HOSTILE, "10.177.0.21",
                    stdin="CREATE USER `xmsb`@`x` IDENTIFIED BY PASSWORD '*AB12'\n")
    assert done.returncode == 0, done.stderr
    assert f"RENAME USER 'xmsb'@{ESCAPED} TO 'xmsb'@'10.177.0.21';" in sql
    assert sql.count("DROP USER root") == 1  # inside the literal, nowhere else


def test_the_lookup_of_mapped_accounts_uses_literals_and_says_what_maps(tmp_path: Path) -> None:
    done, sql = run(tmp_path, 'mapped_hosts "$@"', "xmsb", HOSTILE, "10.177.0.21")
    assert done.returncode == 0, done.stderr
    assert f"WHERE user = 'xmsb' AND host = {ESCAPED}" in sql
    assert done.stdout == f"{HOSTILE} 10.177.0.21\n"
    none, _ = run(tmp_path, 'mapped_hosts "$@"', "xmsb", "192.168.177.11", "10.177.0.21",
                  answer="0")
    assert none.stdout == ""
