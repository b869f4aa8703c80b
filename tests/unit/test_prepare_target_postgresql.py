"""The settings prepare_target writes on a PostgreSQL target (conf.d/migrate.conf, the system's
instances admitted in pg_hba.conf) survive a copy of the source's /etc/postgresql/, and a
second copy changes nothing: the copy task's own rsync command, replayed between two folders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.test_prepare_target_mariadb import PLAYBOOKS, copy_play, run_plays

ADMITTED = "host    all  all  192.0.2.5/32  scram-sha-256\n"  # target.yml's line
MIGRATE_CONF = "# Managed by migrate (prepare_target).\nlisten_addresses = '*'\n"


def rsync_options(tmp_path: Path, configuration: list[str]) -> list[str]:
    """The copy's rsync options as the play makes them (a fake rsync records them), without
    the ssh to the target; the paths it sends checked."""
    fake = tmp_path / "bin" / "rsync"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$0.args"\n')
    fake.chmod(0o755)
    settings = yaml.safe_load((PLAYBOOKS / "group_vars/all.yml").read_text())
    status, text = run_plays(tmp_path, [copy_play()], {"all": {
        "vars": {name: settings[name] for name in (
                     "migrate_mariadb_replica_settings", "migrate_postgresql_settings")
                 if name in settings} | {"migrate_ssh": "ssh"},
        "children": {"source": {"hosts": {"db01": {
            "target_address": "192.0.2.5", "configuration": configuration,
            "rewrites": [], "services": []}}}}}}, path=f"{fake.parent}:")
    assert status == "successful", text
    argv = (tmp_path / "bin" / "rsync.args").read_text().split("\0")[:-1]
    cut = argv.index("--")
    assert argv[cut + 1:] == [*configuration, "root@192.0.2.5:/"]
    options = argv[:cut]
    del options[options.index("-e"):options.index("-e") + 2]
    return options


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.slow
@pytest.mark.parametrize("configuration", [
    ["/etc/postgresql/"],
    ["/etc/postgresql/15/main/"],
    ["/etc/postgresql/15/main/conf.d/", "/etc/postgresql/15/main/pg_hba.conf"]])
def test_the_copied_postgresql_settings_leave_the_targets_own(
        tmp_path: Path, configuration: list[str]) -> None:
    options = rsync_options(tmp_path, configuration)
    main = "etc/postgresql/15/main"
    source, target = tmp_path / "source", tmp_path / "target"
    write(source, {f"{main}/postgresql.conf": "shared_buffers = 1GB\ninclude_dir = 'conf.d'\n",
                   f"{main}/pg_hba.conf": "local   all  all  peer\n"
                                          "host    all  all  10.0.0.7/32  md5\n",
                   f"{main}/conf.d/50-tuning.conf": "work_mem = 64MB\n"})
    write(target, {f"{main}/postgresql.conf": "include_dir = 'conf.d'\n",
                   f"{main}/pg_hba.conf": "local   all  all  peer\n" + ADMITTED,
                   f"{main}/conf.d/migrate.conf": MIGRATE_CONF,
                   f"{main}/conf.d/40-stale.conf": "work_mem = 4MB\n"})

    def copy() -> str:
        return subprocess.run(
            ["rsync", *options, "--", *("." + path for path in configuration), f"{target}/"],
            cwd=source, check=True, capture_output=True, text=True, timeout=60).stdout

    copy()
    assert sorted(p.name for p in (target / main / "conf.d").iterdir()) == [
        "50-tuning.conf", "migrate.conf"]
    assert (target / main / "conf.d/migrate.conf").read_text() == MIGRATE_CONF
    assert (target / main / "pg_hba.conf").read_text() == "local   all  all  peer\n" + ADMITTED
    assert copy() == ""  # the second transfer's copy: no change
