"""check_prerequisites' probes, run here as the plays run them on a host (python3 -c TEXT SPEC)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

FILES = Path(__file__).resolve().parents[2] / "playbooks/roles/check_prerequisites/files"


def probe(name: str, spec: dict, stdin: str = "") -> dict:
    text = (FILES / name).read_text()
    done = subprocess.run([sys.executable, "-c", text, json.dumps(spec)], input=stdin,
                          capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def test_the_source_probe_names_every_problem_at_once(tmp_path: Path) -> None:
    tree = tmp_path / "data"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.bin").write_bytes(b"x" * 5000)
    folder = tmp_path / "conf.d"
    folder.mkdir()
    found = probe("probe_source.py", {
        "where": "web1 (192.0.2.1)",
        "trees": [str(tree), str(tmp_path / "gone")],
        "configuration": [str(folder), str(tmp_path / "app.ini")],
        "rewrites": [str(folder)],
        "databases": []})
    assert found["problems"] == [
        f"source path {tmp_path / 'gone'} does not exist (or is not a directory) on web1 "
        "(192.0.2.1)",
        f"configuration path {folder} does not exist as a regular file (a rewrite needs one) "
        "on web1 (192.0.2.1)",
        f"configuration path {tmp_path / 'app.ini'} does not exist on web1 (192.0.2.1)",
    ]
    path, size = found["needs"][0].rsplit("=", 1)
    assert path == str(tree) and int(size) >= 5000
    assert found["pg_major"] == 0
    assert abs(found["clock"] - int(time.time())) <= 5


def test_the_source_probe_wants_one_password_per_database(tmp_path: Path) -> None:
    spec = {"where": "db1 (192.0.2.2)", "trees": [], "configuration": [], "rewrites": [],
            "databases": [{"name": "a", "user": "a"}, {"name": "b", "user": "b"}]}
    done = subprocess.run(
        [sys.executable, "-c", (FILES / "probe_source.py").read_text(), json.dumps(spec)],
        input="only-one\n", capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 1
    assert "2 passwords expected on stdin, 1 given" in done.stderr
    assert "only-one" not in done.stderr + done.stdout


def test_the_target_probe_sums_what_lands_on_each_filesystem(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    fits = probe("probe_target.py", {"factor": 1.5, "margin": 1024,
                                     "needs": [f"{tmp_path}/a/b=1000", f"{tmp_path}/c=2000"]})
    assert fits["problems"] == []
    [fs] = fits["filesystems"]
    assert fs["needed"] == 5524 and fs["free"] > 0
    short = probe("probe_target.py", {"factor": 1.5, "margin": 0,  # 1.5 x all that is free
                                      "needs": [f"{tmp_path}/not/yet/there={free}"]})
    [problem] = short["problems"]
    assert problem.startswith(f"{fs['mount']} has ")
    assert f"for {tmp_path}/not/yet/there (data x 1.5 + 0 bytes margin)" in problem
    assert isinstance(short["pg_majors"], list)


FAKE_MARIADB = """#!/bin/sh
# a MariaDB client that records how it was called and answers as a server holding "o'k"
printf '%s\\n' "ARGS $*" "PWD ${MYSQL_PWD:-}" >> "$LOG"
sql="$(cat)"
printf 'SQL %s\\n' "$sql" >> "$LOG"
case "$sql" in
    *VERSION*) echo 10.11.6-MariaDB ;;
    *"'o\\\\'k'"*) printf 'here\\n4096\\n' ;;
    *schemata*) printf 'missing\\n0\\n' ;;
esac
case "$*" in *"--user bad"*) echo "Access denied for user 'bad'@'localhost'" >&2; exit 1 ;; esac
"""


def test_the_source_probe_reads_mariadb_with_names_quoted_and_passwords_in_the_environment(
        tmp_path: Path) -> None:
    client = tmp_path / "bin" / "mariadb"
    client.parent.mkdir()
    client.write_text(FAKE_MARIADB)
    client.chmod(0o755)
    log = tmp_path / "calls.log"
    spec = {"where": "db1 (192.0.2.3)", "trees": [], "configuration": [], "rewrites": [],
            "databases": [{"name": "o'k", "user": "shopapp", "engine": "mariadb"},
                          {"name": "gone", "user": "bad", "engine": "mariadb"}]}
    done = subprocess.run(
        [sys.executable, "-c", (FILES / "probe_source.py").read_text(), json.dumps(spec)],
        input="s3cret-one\ns3cret-two\n", capture_output=True, text=True, check=True,
        timeout=60, env={**os.environ, "PATH": f"{client.parent}:{os.environ['PATH']}",
                         "LOG": str(log)})
    found = json.loads(done.stdout)
    assert found["needs"] == ["/var/lib/mysql=4096"]
    assert found["pg_major"] == 0  # no PostgreSQL database: PostgreSQL is not asked
    assert found["problems"] == [
        "database gone on db1 (192.0.2.3) cannot be read: it does not exist",
        "database gone on db1 (192.0.2.3) refused user bad with the manifest's password: "
        "Access denied for user 'bad'@'localhost'; the application could not log in either: "
        "fix the password secret before moving"]
    calls = log.read_text()
    assert "schema_name = 'o\\'k'" in calls  # a literal, its quote escaped
    assert "PWD s3cret-one" in calls and "PWD s3cret-two" in calls
    assert not [line for line in calls.splitlines()
                if line.startswith("ARGS") and "s3cret" in line]


def test_the_source_probe_names_a_host_without_mariadb(tmp_path: Path) -> None:
    spec = {"where": "db1 (192.0.2.3)", "trees": [], "configuration": [], "rewrites": [],
            "databases": [{"name": "shop", "user": "shopapp", "engine": "mariadb"}]}
    done = subprocess.run(
        [sys.executable, "-c", (FILES / "probe_source.py").read_text(), json.dumps(spec)],
        input="pw\n", capture_output=True, text=True, check=True, timeout=60,
        env={**os.environ, "PATH": str(tmp_path)})
    assert json.loads(done.stdout)["problems"] == [
        "MariaDB on db1 (192.0.2.3) does not answer: mariadb is not installed"]


def test_the_source_probe_reports_the_mariadb_servers_major_and_minor(tmp_path: Path) -> None:
    client = tmp_path / "bin" / "mariadb"
    client.parent.mkdir()
    client.write_text(FAKE_MARIADB)
    client.chmod(0o755)
    spec = {"where": "db1 (192.0.2.3)", "trees": [], "configuration": [], "rewrites": [],
            "databases": [{"name": "o'k", "user": "shopapp", "engine": "mariadb"}]}
    done = subprocess.run(
        [sys.executable, "-c", (FILES / "probe_source.py").read_text(), json.dumps(spec)],
        input="pw\n", capture_output=True, text=True, check=True, timeout=60,
        env={**os.environ, "PATH": f"{client.parent}:{os.environ['PATH']}",
             "LOG": str(tmp_path / "calls.log")})
    found = json.loads(done.stdout)
    assert found["mariadb_version"] == [10, 11]  # "10.11.6-MariaDB", not 10.1 nor 10.6
    assert found["problems"] == []
    assert probe("probe_source.py", {"where": "web1", "trees": [], "configuration": [],
                                     "rewrites": [], "databases": []})["mariadb_version"] == []


def fake_server(folder: Path, answer: str) -> dict:
    """An environment whose PATH holds a mariadbd answering --version with ``answer``."""
    server = folder / "mariadbd"
    folder.mkdir(exist_ok=True)
    server.write_text(f"#!/bin/sh\necho '{answer}'\n")
    server.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}


def target_probe(spec: dict, env: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", (FILES / "probe_target.py").read_text(), json.dumps(spec)],
        capture_output=True, text=True, check=True, timeout=60, env=env)
    return json.loads(done.stdout)


def test_the_target_probe_reads_the_mariadb_servers_major_and_minor(tmp_path: Path) -> None:
    """Only read: the play compares it with the sources' (tests/unit/
    test_prepare_target_mariadb.py), as prepare_target compares one it installed."""
    env = fake_server(tmp_path / "bin", "/usr/sbin/mariadbd  Ver 10.6.18-MariaDB-0ubuntu0 "
                                        "for debian-linux-gnu on x86_64 (Ubuntu 22.04)")
    spec = {"factor": 1, "margin": 0, "needs": []}
    older = target_probe({**spec, "mariadb_need": [10, 11]}, env)
    assert older["mariadb_version"] == [10, 6] and older["problems"] == []
    # no MariaDB database moving here: the server is not asked
    assert target_probe({**spec, "mariadb_need": []}, env)["mariadb_version"] == []
    newer = fake_server(tmp_path / "bin", "mariadbd  Ver 11.4.2-MariaDB for Linux on x86_64")
    assert target_probe({**spec, "mariadb_need": [10, 11]}, newer)["mariadb_version"] == [11, 4]
