"""move_mariadb.sh reads a database or user name as data: in SQL it is a string literal with
its backslashes and quotes escaped (never pasted as SQL), in the target's shell one quoted
word. Run here with its functions and a fake ``mariadb`` client that records what it gets."""

from __future__ import annotations

from pathlib import Path

from tests.hostile.mariadb_script import run

HOSTILE = "x'; DROP DATABASE mysql; -- \\' `$(touch /tmp/pwned)`"


def test_a_hostile_database_name_is_one_escaped_literal(tmp_path: Path) -> None:
    _, sql = run(tmp_path, 'db_sums "$1"', HOSTILE)
    escaped = "'x\\'; DROP DATABASE mysql; -- \\\\\\' `$(touch /tmp/pwned)`'"
    assert f"schema_name = {escaped}" in sql
    assert f"table_schema = {escaped}" in sql
    assert sql.count("DROP DATABASE") == 2  # inside the two literals, nowhere else


def test_a_hostile_user_name_is_one_escaped_literal(tmp_path: Path) -> None:
    _, sql = run(tmp_path, 'user_statements "$1"', HOSTILE)
    assert "WHERE user = 'x\\'; DROP DATABASE mysql; -- \\\\\\' `$(touch /tmp/pwned)`'" in sql


def test_a_name_reaches_the_target_s_shell_as_one_word(tmp_path: Path) -> None:
    # the "ssh" prints the command the target's shell would run, which runs it here
    done, _ = run(tmp_path, 'MIGRATE_SSH="ssh_fake"; ssh_fake() { shift; bash -c "$1"; }; '
                            'target=t; on_target_run literal "$1"', HOSTILE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "'x\\'; DROP DATABASE mysql; -- \\\\\\' `$(touch /tmp/pwned)`'"


def test_a_database_name_like_an_option_is_never_dumped(tmp_path: Path) -> None:
    done, _ = run(tmp_path, 'dump_restore "$1"', "--all-databases")
    assert done.returncode == 1
    assert "starts with '-'" in done.stderr
