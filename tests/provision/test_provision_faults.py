"""Provisioning faults: missing passphrase, unusable backend, an engine killed mid-update."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migrate.adapters.engine import find_engine
from migrate.adapters.processes import all_pids, cmdline, environ_value
from tests.conftest import edit

MIGRATE = str(Path(sys.executable).parent / "migrate")


def engine_processes(pulumi_home: str) -> list[int]:
    """The processes of an engine run with this PULUMI_HOME (the engine, its plugins)."""
    return [pid for pid in all_pids() if environ_value(pid, "PULUMI_HOME") == pulumi_home]


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def as_openstack(estate: Path) -> None:
    edit(estate / "migrate.yaml", "target: sandbox ", "target: openstack ")


def test_missing_passphrase_is_a_clear_environment_error(run_cli, estate, monkeypatch):
    as_openstack(estate)
    monkeypatch.delenv("MIGRATE_PULUMI_PASSPHRASE_FILE", raising=False)
    result = run_cli("preview", estate, "--system", "rsj-sbcx")
    assert result.code == 3, result.stderr
    assert "no passphrase for the stacks' secrets" in result.stderr
    assert "MIGRATE_PULUMI_PASSPHRASE_FILE" in result.stderr
    assert not (estate / ".migrate" / "backend").exists()


def test_unusable_backend_names_the_stack_and_what_the_engine_said(run_cli, estate,
                                                                   monkeypatch, tmp_path):
    if find_engine() is None:
        pytest.skip("the Pulumi engine is not built: run 'make engine'")
    as_openstack(estate)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a test passphrase\n")
    passphrase.chmod(0o600)
    monkeypatch.setenv("MIGRATE_PULUMI_PASSPHRASE_FILE", str(passphrase))
    monkeypatch.setenv("MIGRATE_PULUMI_BACKEND_URL", "file:///proc/migrate-no-such-backend")
    result = run_cli("preview", estate, "--system", "rsj-sbcx")
    assert result.code == 4, result.stderr
    assert "stack net-rsj-egov_extranet failed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_killed_provision_continues_from_the_state(sandbox_estate, tmp_path, run_cli):
    from migrate.rehearsal.sandbox import list_machines

    estate, root = sandbox_estate, tmp_path / "sandbox-root"
    command = [MIGRATE, "provision", str(estate), "--system", "rsj-sbcx", "--yes"]
    try:
        with subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              text=True, start_new_session=True) as process:
            deadline = time.monotonic() + 180
            assert process.stderr is not None
            for line in process.stderr:
                if "sys-rsj-sbcx: create" in line or time.monotonic() > deadline:
                    break
            os.killpg(process.pid, signal.SIGKILL)  # the CLI and the engine
            process.wait(timeout=30)
        # the engine's plugins run in process groups of their own: none may outlive it
        home = str(estate / ".migrate" / "pulumi-home")
        assert wait_until(lambda: not engine_processes(home), 15), \
            [cmdline(pid) for pid in engine_processes(home)]

        again = run_cli("provision", estate, "--system", "rsj-sbcx", "--yes", "--output", "json")
        assert again.code == 0, again.stderr
        instances = json.loads(again.stdout)["stacks"][-1]["outputs"]["instances"]
        assert set(instances) == {"web", "db"}
        machines = [m for m in list_machines(root) if m.status == "running"]
        assert "unlocking: the engine that held the lock is gone" in again.stderr
        assert sorted(m.address.split("/")[0] for m in machines) == sorted(
            i["address"] for i in instances.values()), "no duplicate or missing machine"
        third = run_cli("provision", estate, "--system", "rsj-sbcx", "--yes", "--output", "json")
        assert json.loads(third.stdout)["changed"] is False
        assert run_cli("audit", "verify", estate).code == 0
    finally:
        run_cli("destroy", estate, "--system", "rsj-sbcx", "--yes")
