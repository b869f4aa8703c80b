"""prepare_target refuses a target whose MariaDB, installed by the instance's packages, is
older than the newest source's moving to it (check_prerequisites compares only a server
installed before): the plays' filters (playbooks/filter_plugins/mariadb_version.py, the one
comparison both use), and the checks' own expressions, from roles/prepare_target/tasks/
mariadb.yml and roles/check_prerequisites/tasks/target.yml, run by ansible-runner. And the
replica settings prepare_target writes on a MariaDB target survive the copy of the source's
/etc/mysql/ (the copy task's own rsync command, replayed here between two folders)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "playbooks/roles/prepare_target"
FILTERS = ROLE.parents[1] / "filter_plugins"
TARGET_SAYS = ("/usr/sbin/mariadbd  Ver {} for debian-linux-gnu on x86_64 "
               "(Debian 12)")


def filters():
    spec = importlib.util.spec_from_file_location("mariadb_version",
                                                  FILTERS / "mariadb_version.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_versions_read_from_what_the_server_says() -> None:
    version = filters().migrate_mariadb_version
    assert version(TARGET_SAYS.format("10.11.11-MariaDB-0+deb12u1")) == [10, 11]
    assert version("10.5.23-MariaDB-0+deb11u1-log") == [10, 5]  # SELECT VERSION()
    assert version("mysqld: unknown option") == [] and version("") == []


def test_the_newest_source_counts_and_an_older_target_is_named_with_both_versions() -> None:
    too_old = filters().migrate_mariadb_too_old
    assert too_old("swj-shop-shop", [10, 5], [[10, 3], [10, 11], []]) == (
        "swj-shop-shop has MariaDB 10.5, the source runs 10.11 (a dump of a newer server may "
        "use what an older one lacks)")
    assert too_old("swj-shop-shop", [10, 11], [[10, 11], [10, 5]]) == ""
    assert too_old("swj-shop-shop", [11, 4], [[10, 11]]) == ""
    assert too_old("swj-shop-shop", [10, 5], [[], []]) == ""  # no MariaDB source
    assert too_old("swj-shop-shop", [10, 9], [[10, 10]]).startswith(
        "swj-shop-shop has MariaDB 10.9, the source runs 10.10")  # not compared as text
    assert "of no version it names" in too_old("swj-shop-shop", [], [[10, 11]])


def check_task() -> dict:
    tasks = yaml.safe_load((ROLE / "tasks/mariadb.yml").read_text())
    [task] = [t for t in tasks if "prepare_target_mariadb_problem" in t.get("vars", {})]
    assert task["ansible.builtin.assert"]["that"] == "prepare_target_mariadb_problem | length == 0"
    return task


def checking_play(target: str) -> dict:
    """The check task of mariadb.yml on the target, which says ``target`` as its version."""
    return {"name": "Check the target", "hosts": "target", "gather_facts": False,
            "tasks": [{"ansible.builtin.set_fact": {"prepare_target_mariadbd_version": {
                "stdout": TARGET_SAYS.format(target)}}}, check_task()]}


def run_plays(tmp_path: Path, plays: list[dict], inventory: dict,
              path: str = "") -> tuple[str, str]:
    """The plays run here by ansible-runner on local connections (``path`` before PATH):
    the runner's status and the plays' output."""
    import os
    import sys

    import ansible_runner

    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays))
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "private").mkdir()
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
             "ansible_become": False}
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path / "private"), playbook=str(tmp_path / "play.yml"),
        inventory=str(tmp_path / "inventory.yml"), extravars=local, quiet=True,
        suppress_env_files=True, project_dir=str(tmp_path),
        envvars={"PATH": f"{path}{Path(sys.executable).parent}:{os.environ['PATH']}",
                 "ANSIBLE_HOME": str(tmp_path / "ansible"),
                 "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
                 "ANSIBLE_FILTER_PLUGINS": str(FILTERS)})
    with runner.stdout as output:
        return runner.status, output.read()


@pytest.mark.slow
@pytest.mark.parametrize(("target", "expected"), [
    ("10.5.23-MariaDB-0+deb11u1", "swj-shop-shop has MariaDB 10.5, the source runs 10.11 (a "
                                  "dump of a newer server may use what an older one lacks)"),
    ("10.11.11-MariaDB-0+deb12u1", "")])
def test_the_play_compares_the_target_with_the_sources_moving_to_it(
        tmp_path: Path, target: str, expected: str) -> None:
    sources = {  # web01 has no MariaDB; other01's newer one moves elsewhere
        "shop01": {"moves_to": "shop", "prepare_target_mariadb_version": [10, 11]},
        "web01": {"moves_to": "shop"},
        "other01": {"moves_to": "other", "prepare_target_mariadb_version": [11, 4]}}
    status, text = run_plays(tmp_path, [checking_play(target)], {"all": {"children": {
        "source": {"hosts": sources},
        "target": {"hosts": {"swj-shop-shop": {"instance": "shop"}}}}}})
    assert status == ("failed" if expected else "successful"), text
    assert expected in text


PLAYBOOKS = ROLE.parents[1]
INVENTORY = {"all": {"children": {
    "source": {"hosts": {"shop01": {"moves_to": "shop", "mariadb_databases": [{"name": "shop"}]},
                         "web01": {"moves_to": "shop", "mariadb_databases": []}}},
    "target": {"hosts": {"swj-shop-shop": {"instance": "shop"}}}}}}


@pytest.mark.slow
@pytest.mark.parametrize(("target", "refused"), [("10.5.23-MariaDB-0+deb11u1", True),
                                                 ("10.11.6-MariaDB-0+deb12u1", False)])
def test_the_sources_version_read_by_the_play_reaches_its_targets_check(
        tmp_path: Path, target: str, refused: bool) -> None:
    """prepare_target.yml's first play, run here by ansible-runner (a fake ``mariadb`` says
    the source's version), then the check task of mariadb.yml on the target, which says its
    own; the source without MariaDB is not asked."""
    fake = tmp_path / "bin" / "mariadb"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"$*\" >> \"$0.calls\"\necho 10.11.6-MariaDB-0+deb12u1\n")
    fake.chmod(0o755)
    [reading] = [p for p in yaml.safe_load((PLAYBOOKS / "prepare_target.yml").read_text())
                 if p["hosts"] == "source" and "MariaDB versions" in p["name"]]
    status, text = run_plays(tmp_path, [reading, checking_play(target)], INVENTORY,
                             path=f"{fake.parent}:")
    assert (tmp_path / "bin" / "mariadb.calls").read_text().splitlines() == [
        "--batch --skip-column-names --execute SELECT VERSION()"]  # shop01 only
    if refused:
        assert status == "failed", text
        assert ("swj-shop-shop has MariaDB 10.5, the source runs 10.11 (a dump of a newer "
                "server may use what an older one lacks)") in text
    else:
        assert status == "successful", text


def verdict_play(target: list[int]) -> dict:
    """check_prerequisites' verdict task on the target, whose probe read MariaDB ``target``
    ([] when it is not installed yet)."""
    tasks = yaml.safe_load((PLAYBOOKS / "roles/check_prerequisites/tasks/target.yml").read_text())
    [verdict] = [t for t in tasks if "ansible.builtin.assert" in t]
    found = {"clock": int(time.time()), "pg_majors": [], "mariadb_version": target,
             "filesystems": [], "problems": []}
    return {"name": "Check the target", "hosts": "target", "gather_facts": False,
            "tasks": [{"ansible.builtin.set_fact": {"check_prerequisites_probe": {
                "stdout": json.dumps(found)}}}, verdict]}


@pytest.mark.slow
@pytest.mark.parametrize(("target", "expected"), [
    ([10, 5], "swj-shop-shop has MariaDB 10.5, the source runs 10.11 (a dump of a newer server "
              "may use what an older one lacks)"),
    ([11, 4], ""),
    ([], "")])  # not installed yet: prepare_target compares the one it installs
def test_check_prerequisites_compares_an_installed_mariadb_with_the_same_filter(
        tmp_path: Path, target: list[int], expected: str) -> None:
    sources = {  # web01 has no MariaDB; other01's newer one moves elsewhere
        "shop01": {"moves_to": "shop", "check_prerequisites_pg_major": 0,
                   "check_prerequisites_mariadb_version": [10, 11]},
        "web01": {"moves_to": "shop", "check_prerequisites_pg_major": 0,
                  "check_prerequisites_mariadb_version": []},
        "other01": {"moves_to": "other", "check_prerequisites_pg_major": 0,
                    "check_prerequisites_mariadb_version": [11, 8]}}
    status, text = run_plays(tmp_path, [verdict_play(target)], {"all": {"children": {
        "source": {"hosts": sources},
        "target": {"hosts": {"swj-shop-shop": {
            "instance": "shop", "databases": [], "migrate_clock_skew_max_s": 30}}}}}})
    assert status == ("failed" if expected else "successful"), text
    assert expected in text


def copy_play() -> dict:
    """The configuration copy of roles/prepare_target/tasks/source.yml (no unit files)."""
    tasks = yaml.safe_load((ROLE / "tasks/source.yml").read_text())
    [copy] = [t for t in tasks if t["name"].startswith("Copy the configuration")]
    return {"name": "Copy", "hosts": "source", "gather_facts": False,
            "tasks": [{"ansible.builtin.set_fact": {"prepare_target_units": {"results": []}}},
                      copy]}


@pytest.mark.slow
def test_the_copied_mysql_settings_leave_the_targets_replica_settings(tmp_path: Path) -> None:
    """The copy's rsync command as the play makes it (a fake rsync records it), run between a
    source and a target folder: the source's files sent, the target's stale ones deleted,
    its replica settings (prepare_target's, not the source's) kept."""
    fake = tmp_path / "bin" / "rsync"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$0.args"\n')
    fake.chmod(0o755)
    settings = yaml.safe_load((PLAYBOOKS / "group_vars/all.yml").read_text())
    replica = settings["migrate_mariadb_replica_settings"]
    status, text = run_plays(tmp_path, [copy_play()], {"all": {
        "vars": {"migrate_mariadb_replica_settings": replica, "migrate_ssh": "ssh",
                 "migrate_postgresql_settings": settings["migrate_postgresql_settings"]},
        "children": {"source": {"hosts": {"shop01": {
            "target_address": "192.0.2.5", "configuration": ["/etc/mysql/"],
            "rewrites": [], "services": []}}}}}}, path=f"{fake.parent}:")
    assert status == "successful", text
    argv = (tmp_path / "bin" / "rsync.args").read_text().split("\0")[:-1]
    cut = argv.index("--")
    assert argv[cut + 1:] == ["/etc/mysql/", "root@192.0.2.5:/"]
    options = argv[:cut]
    del options[options.index("-e"):options.index("-e") + 2]  # the ssh to the target
    source, target = tmp_path / "source", tmp_path / "target"
    for folder in (source, target):
        (folder / "etc/mysql/mariadb.conf.d").mkdir(parents=True)
    (source / "etc/mysql/mariadb.conf.d/60-shop.cnf").write_text("[mariadbd]\nlog_bin = on\n")
    (target / "etc/mysql/mariadb.conf.d/50-gone.cnf").write_text("[mariadbd]\n")
    (target / replica.lstrip("/")).write_text("[mariadbd]\nserver_id = 5\n")
    subprocess.run(["rsync", *options, "--", "./etc/mysql/", f"{target}/"], cwd=source,
                   check=True, capture_output=True, timeout=60)
    assert sorted(p.name for p in (target / "etc/mysql/mariadb.conf.d").iterdir()) == \
        sorted(["60-shop.cnf", Path(replica).name])
