"""prepare_target refuses a target whose MariaDB, installed by the instance's packages, is
older than the newest source's moving to it (check_prerequisites compares only a server
installed before): the role's filters, and the check's own expression from
roles/prepare_target/tasks/mariadb.yml run by ansible-runner."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "playbooks/roles/prepare_target"
TARGET_SAYS = ("/usr/sbin/mariadbd  Ver {} for debian-linux-gnu on x86_64 "
               "(Debian 12)")


def filters():
    spec = importlib.util.spec_from_file_location("mariadb_version",
                                                  ROLE / "filter_plugins/mariadb_version.py")
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
                 "ANSIBLE_FILTER_PLUGINS": str(ROLE / "filter_plugins")})
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
