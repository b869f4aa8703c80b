"""transfer, cutover and rollback of wjw-fybj on the sandbox: real source machines (sandbox up),
real target machines at the plan's addresses, Ansible through ansible-runner.

One world serves the module; the tests run in file order (faults first, while nothing has
been changed yet). The module's finalizer destroys the target machines and their bridge by
name and takes the sandbox down, whatever happened.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate import runner, state, transfer
from migrate.errors import EnvironmentNotReady, GuardRefused, StageFailed
from migrate.legacy.seed import checksum_query
from migrate.pipeline import open_estate
from migrate.sandbox.host import require_host
from tests.transfer.world import (
    SYSTEM,
    World,
    bring_up,
    copy_estate,
    on_source,
    on_target,
    tear_down,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SCALE = 16 * 1024  # bytes per declared GB: small data, same code paths
API_PATH = "/api/birth-certificates"
TABLES = ("birth_certificates", "legacy_records", "legacy_seed")
FETCH = ("python3 -c \"import sys, urllib.request; sys.stdout.buffer.write("
         "urllib.request.urlopen('http://127.0.0.1:8080{path}').read())\"")
TREE_MANIFEST = ("cd {root} && find . -type f -print0 | LC_ALL=C sort -z "
                 "| xargs -0r sha256sum")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    try:
        require_host()
    except EnvironmentNotReady as error:
        print(f"skipping the transfer sandbox tests: {error.message}")
        pytest.skip(f"transfer sandbox tests need root and the sandbox tools: {error.message}")
    root = tmp_path_factory.mktemp("sandbox-root")
    folder = copy_estate(tmp_path_factory.mktemp("transfer") / "estate")
    made: World | None = None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIGRATE_SANDBOX_ROOT", str(root))
        patch.delenv("MIGRATE_STATE_DIR", raising=False)
        estate = open_estate(folder)
        try:
            made = bring_up(folder, SCALE)
            yield made
        finally:
            tear_down(made, estate)


def known_hosts_of_last_run(world: World) -> Path:
    runs = sorted((state.state_dir(world.estate) / "runs").glob("*/known_hosts"))
    return runs[-1]


def fetch_api(world: World, *, source: bool) -> bytes:
    command = FETCH.format(path=API_PATH) + " | base64 -w0"
    result = (on_source(world, "web1", command) if source else
              on_target(world, "web", command, known_hosts_of_last_run(world)))
    assert result.returncode == 0, result.stderr
    return base64.b64decode(result.stdout)


def tree_manifest(world: World, *, source: bool) -> str:
    root = world.system["data"]["files"][0]["path"]
    command = TREE_MANIFEST.format(root=root)
    result = (on_source(world, "web1", command) if source else
              on_target(world, "web", command, known_hosts_of_last_run(world)))
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_sums(world: World, *, source: bool) -> dict[str, str]:
    sums = {}
    for table in TABLES:
        command = (f"runuser -u postgres -- psql -XAt -d fybj -c "
                   f"{json.dumps(checksum_query(table))}")
        result = (on_source(world, "db1", command) if source else
                  on_target(world, "db", command, known_hosts_of_last_run(world)))
        assert result.returncode == 0, result.stderr
        sums[table] = result.stdout.strip()
    return sums


def service_state(world: World, *, source: bool) -> str:
    command = "systemctl is-active fybj-web; systemctl is-enabled fybj-web; true"
    result = (on_source(world, "web1", command) if source else
              on_target(world, "web", command, known_hosts_of_last_run(world)))
    return " ".join(result.stdout.split())


def run(world: World, stage: str, plan: dict | None = None, targets: dict | None = None,
        progress: runner.ProgressCallback | None = None) -> transfer.StageResult:
    entry = getattr(transfer, stage)
    return entry(world.estate, plan or world.plan, SYSTEM, targets or world.targets, progress)


# ---------------------------------------------------------------- faults, before any change


def test_wrong_target_host_key_stops_before_any_change(world: World) -> None:
    wrong = copy.deepcopy(world.targets)
    wrong["web"]["host_key"] = world.targets["db"]["host_key"]
    with pytest.raises(StageFailed) as failed:
        run(world, "transfer", targets=wrong)
    message = failed.value.message
    assert message.startswith("check_prerequisites failed on wjw-fybj-web")
    assert "Host key verification failed" in message
    runs = sorted((state.state_dir(world.estate) / "runs").iterdir())
    assert [p.name for p in (runs[-1] / "artifacts").iterdir()] == ["check_prerequisites"]
    keys = on_target(world, "db", "cat /root/.ssh/authorized_keys",
                     runs[-1] / "known_hosts")
    assert keys.returncode == 0, keys.stderr
    assert "migrate-wjw-fybj" not in keys.stdout  # prepare_target never ran
    last = list(state.journal_for(world.estate).entries())[-1]
    assert (last["stage"], last["result"]) == ("transfer", "failed")


def test_missing_source_path_fails_check_with_a_clear_message(world: World) -> None:
    plan = copy.deepcopy(world.plan)
    system = next(s for s in plan["systems"] if s["id"] == SYSTEM)
    system["data"]["files"][0]["path"] = "/srv/fybj/no-such-tree"
    with pytest.raises(StageFailed) as failed:
        run(world, "check_prerequisites", plan=plan)
    assert "source path /srv/fybj/no-such-tree does not exist" in failed.value.message
    assert "web1" in failed.value.message


# ---------------------------------------------------------------- the move


def test_check_prerequisites_passes_and_changes_nothing(world: World) -> None:
    seen: list[runner.Progress] = []
    result = run(world, "check_prerequisites", progress=seen.append)
    assert result.changed == 0
    assert result.plays[0].ok > 0
    assert {p.host for p in seen if p.status == "ok"} == {
        "web1", "db1", "wjw-fybj-web", "wjw-fybj-db"}
    assert "Check free disk space for the data that moves here" in {p.task for p in seen}
    assert seen[-1].ok == max(p.ok for p in seen) and all(p.failed == 0 for p in seen)


def test_transfer_copies_files_and_rows_while_the_source_serves(world: World) -> None:
    world.before = {
        "api": fetch_api(world, source=True),
        "files": tree_manifest(world, source=True),
        "tables": table_sums(world, source=True),
    }
    result = run(world, "transfer")
    assert result.changed > 0
    assert service_state(world, source=True) == "active enabled"
    files = result.outputs["files"]["web1"]
    assert files["equal"] and files["files"] == len(world.before["files"].splitlines())
    database = result.outputs["databases"]["fybj"]
    assert database["equal"]
    assert {t.split(".")[1] for t in database["tables"]} == set(TABLES)
    manifests = result.run_dir / "artifacts" / "transfer_files" / "manifests"
    source_side = (manifests / "web1.sha256").read_text()
    assert source_side and source_side == (manifests / "wjw-fybj-web.sha256").read_text()


def test_second_transfer_changes_nothing(world: World) -> None:
    result = run(world, "transfer")
    assert result.changed == 0, [p.changed_tasks for p in result.plays]


def test_cutover_moves_service_and_leaves_the_source_stopped_but_intact(world: World) -> None:
    before = world.before
    result = run(world, "cutover")
    assert result.outputs["files"]["web1"]["equal"]
    assert result.outputs["databases"]["fybj"]["equal"]
    assert tree_manifest(world, source=False) == before["files"]
    assert table_sums(world, source=False) == before["tables"]
    assert fetch_api(world, source=False) == before["api"]
    assert service_state(world, source=True) == "inactive disabled"
    assert service_state(world, source=False) == "active enabled"
    assert tree_manifest(world, source=True) == before["files"]  # source intact
    assert table_sums(world, source=True) == before["tables"]


def test_second_cutover_changes_nothing(world: World) -> None:
    result = run(world, "cutover")
    assert result.changed == 0, [p.changed_tasks for p in result.plays]


def test_rollback_restores_service_on_the_source(world: World) -> None:
    before = world.before
    result = run(world, "rollback")
    assert result.changed > 0
    assert service_state(world, source=True) == "active enabled"
    assert service_state(world, source=False) == "inactive disabled"
    assert fetch_api(world, source=True) == before["api"]
    again = run(world, "rollback")
    assert again.changed == 0, [p.changed_tasks for p in again.plays]


def test_journal_names_each_stage(world: World) -> None:
    entries = [e for e in state.journal_for(world.estate).entries() if e["system"] == SYSTEM]
    stages = [(e["stage"], e["result"]) for e in entries]
    for stage in ("check_prerequisites", "transfer", "cutover", "rollback"):
        assert (stage, "ok") in stages
    cutover = next(e for e in entries if e["stage"] == "cutover" and e["result"] == "ok")
    assert cutover["inputs"]["inventory"].startswith("sha256:")
    assert cutover["outputs"]["databases"]["fybj"]["equal"] is True


def test_no_secret_in_any_artifact_log_or_journal(world: World) -> None:
    key_file, _ = transfer.migration_key(world.estate, SYSTEM)
    secrets = [*state.secret_values(world.estate), key_file.read_text().strip()]
    secrets += [line for line in key_file.read_text().splitlines()
                if len(line) > 40 and "PRIVATE KEY" not in line]
    assert len(secrets) >= 4
    folder = state.state_dir(world.estate)
    searched = [p for p in folder.rglob("*") if p.is_file()
                and "migration-keys" not in p.parts and "sandbox" not in p.parts]
    assert state.journal_for(world.estate).path in searched
    assert any("job_events" in p.parts for p in searched)
    leaks = [str(p) for p in searched for s in secrets
             if s in p.read_text(encoding="utf-8", errors="replace")]
    assert leaks == []


def test_decommission_source_needs_an_explicit_request_then_removes_the_access(
        world: World) -> None:
    with pytest.raises(GuardRefused):
        transfer.decommission_source(world.estate, world.plan, SYSTEM, world.targets)
    result = transfer.decommission_source(world.estate, world.plan, SYSTEM, world.targets,
                                          confirmed=True)
    assert result.changed > 0
    known = known_hosts_of_last_run(world)
    for instance in ("web", "db"):
        keys = on_target(world, instance, "cat /root/.ssh/authorized_keys", known)
        assert keys.returncode == 0 and "migrate-wjw-fybj" not in keys.stdout
    left = on_source(world, "web1", "ls /root/.ssh/ /var/lib/migrate/ 2>&1; true").stdout
    assert "migrate-wjw-fybj" not in left and "cutover-wjw-fybj" not in left
    assert service_state(world, source=True) == "inactive disabled"
    assert tree_manifest(world, source=True) == world.before["files"]  # data untouched
