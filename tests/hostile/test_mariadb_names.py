"""move_mariadb.sh reads a database or user name as data: in SQL it is a string literal with
its backslashes and quotes escaped (never pasted as SQL), in the target's shell one quoted
word. Run here with its functions and a fake ``mariadb`` client that records what it gets."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "playbooks/files/move_mariadb.sh"
HOSTILE = "x'; DROP DATABASE mysql; -- \\' `$(touch /tmp/pwned)`"

FAKE_CLIENT = """#!/bin/sh
cat >> "$LOG"
echo 1
"""


def functions() -> str:
    text = SCRIPT.read_text()
    return text[:text.index('\nmode="${1:-}"')]


def run(tmp_path: Path, call: str, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    client = tmp_path / "bin" / "mariadb"
    client.parent.mkdir(exist_ok=True)
    client.write_text(FAKE_CLIENT)
    client.chmod(0o755)
    log = tmp_path / "sql.log"
    log.write_text("")
    done = subprocess.run(["bash", "-c", functions() + "\n" + call, "test", *args],
                          capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": f"{client.parent}:/usr/bin:/bin", "LOG": str(log)})
    return done, log.read_text()


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
