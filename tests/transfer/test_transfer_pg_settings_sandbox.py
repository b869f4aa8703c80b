"""transfer of wjw-fybj on the sandbox with the database host's /etc/postgresql/ in the copied
configuration (its conf.d/legacy.conf names another hba_file): the target's PostgreSQL keeps
migrate's settings (conf.d/migrate.conf, the instances admitted in pg_hba.conf), uses them
after a restart, and a second transfer changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migrate.stages import move
from tests.transfer.test_transfer_sandbox import SCALE, known_hosts_of_last_run
from tests.transfer.world import SYSTEM, World, on_target, sandbox_world

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

MAIN = "/etc/postgresql/15/main"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with sandbox_world(tmp_path_factory, SCALE,
                       copy_also="    - {host: db1, path: /etc/postgresql/}\n") as made:
        yield made


def on_db(world: World, command: str) -> str:
    result = on_target(world, "db", command, known_hosts_of_last_run(world))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_copied_postgresql_settings_keep_migrates_and_a_second_transfer_changes_nothing(
        world: World) -> None:
    first = move.transfer(world.context(), SYSTEM, world.targets)
    assert first.changed > 0
    assert "hba_file = '/etc/legacy/postgresql/pg_hba.conf'" in on_db(
        world, f"cat {MAIN}/conf.d/legacy.conf")  # the source's settings were copied
    assert "listen_addresses" in on_db(world, f"cat {MAIN}/conf.d/migrate.conf")
    admitted = {f"host    all  all  {i['address']}/32  scram-sha-256"
                for i in world.system["instances"]}
    assert admitted <= set(on_db(world, f"cat {MAIN}/pg_hba.conf").splitlines())

    second = move.transfer(world.context(), SYSTEM, world.targets)
    assert second.changed == 0, [p.changed_tasks for p in second.plays]

    on_db(world, "systemctl restart postgresql@15-main.service")
    assert on_db(world, "runuser -u postgres -- psql -XAt -c 'SHOW hba_file'").strip() == \
        f"{MAIN}/pg_hba.conf"
    rules = on_db(world, "runuser -u postgres -- psql -XAt -c "
                         "'SELECT address FROM pg_hba_file_rules WHERE address IS NOT NULL'")
    assert {i["address"] for i in world.system["instances"]} <= set(rules.split())
