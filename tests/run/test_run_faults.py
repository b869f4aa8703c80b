"""Faults during ``migrate run`` on the sandbox, one wave at a time: a target whose host key
changed, a target machine stopped in the middle of its transfer, and the exchange platform
stopped while a cut-over system is verified. The broken system fails cleanly (its source
keeps serving, or gets its service back), the others of its wave complete, and a later run
finishes what can be finished without ever trusting a changed key."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.run import events
from tests.run.events import journal
from tests.run.test_run_sandbox import report_timings, secrets_written

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
WRONG_KEY = "sjj-tyrz"      # its target answers with a host key nobody recorded
STOPPED = "scj-qyxy"        # its target machine goes down while it transfers
COMPLETES = "wjw-fybj"      # nothing wrong with it
DUPLICATE_OF_STOPPED = "fgw-xyxx"  # census.duplicates of STOPPED: merged, not moved
STOP_AT_PLAY = "transfer_files"  # the transfer's copy of the files: the middle of the stage


@pytest.fixture
def running_estate(sandbox_estate, run_cli) -> Iterator[Path]:
    """The example estate's first wave alone (the three systems these faults need, and the
    duplicate STOPPED's manifest names): the other systems' source hosts would boot and idle
    for nothing."""
    events.keep_only(sandbox_estate, WRONG_KEY, STOPPED, COMPLETES, DUPLICATE_OF_STOPPED)
    try:
        yield sandbox_estate
    finally:
        run_cli("destroy", sandbox_estate, "--yes", "--leave-source-traces")  # sources go next
        run_cli("sandbox", "down", sandbox_estate)


def ssh(estate: Path, address: str, user: str, key: Path, known_hosts: Path,
        command: str) -> subprocess.CompletedProcess[str]:
    from migrate.rehearsal.sandbox.network import assert_local_address

    assert_local_address(address)
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=10", f"{user}@{address}", command],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def loaded(estate: Path):
    from migrate.orchestrate.pipeline import open_estate

    return open_estate(estate)


def on_target(estate: Path, system: str, instance: str, command: str
              ) -> subprocess.CompletedProcess[str]:
    """As the operator, on a target, trusting the host key its provisioning recorded."""
    from migrate.orchestrate.pipeline import context_of, provisioned_targets
    from migrate.rehearsal.sandbox.estate import operator_key_path

    opened = loaded(estate)
    target = provisioned_targets(context_of(opened), system)[instance]
    known = estate / f".known-{system}-{instance}"
    known.write_text(f"{target['address']} {' '.join(target['host_key'].split()[:2])}\n")
    return ssh(estate, target["address"], "root", operator_key_path(opened), known, command)


def on_platform(estate: Path, command: str) -> None:
    from migrate.rehearsal.sandbox.estate import known_hosts_path, operator_key_path
    from migrate.rehearsal.sandbox.estate_plan import plan_sandbox

    opened = loaded(estate)
    done = ssh(estate, plan_sandbox(opened).platform_ip, "root", operator_key_path(opened),
               known_hosts_path(opened), command)
    assert done.returncode == 0, f"{command}: {done.stderr}"


def source_health(estate: Path, system: str) -> int:
    """HTTP status of the system's first service, asked on its source host."""
    from migrate.rehearsal.sandbox.estate import known_hosts_path

    opened = loaded(estate)
    manifest = opened.systems[system]
    service = next(s for s in manifest.workload.services if s.health)
    host = next(h for h in manifest.source.hosts if h.name == service.host)
    key = estate / opened.settings.secrets.dir / manifest.source.ssh.key.split("://", 1)[1]
    done = ssh(estate, host.address, manifest.source.ssh.user, key, known_hosts_path(opened),
               "python3 -c \"import urllib.request; print(urllib.request.urlopen("
               f"'http://127.0.0.1:{service.port}{service.health}', timeout=5).status)\"")
    return int(done.stdout.strip() or 0) if done.returncode == 0 else 0


def target_machines(estate: Path, system: str) -> list[str]:
    plan = json.loads((estate / ".migrate" / "plan.json").read_text())
    planned = next(s for s in plan["systems"] if s["id"] == system)
    return [i["resource_name"] for i in planned["instances"]]


def by_system(summary: dict) -> dict[str, dict]:
    return {s["system"]: s for s in summary["systems"]}


def change_host_key(estate: Path, system: str, instance: str) -> None:
    """The target's sshd gets new host keys, as a machine rebuilt or tampered with would."""
    done = on_target(estate, system, instance,
                     "rm -f /etc/ssh/ssh_host_*key* && ssh-keygen -A >/dev/null && "
                     "systemctl restart ssh")
    assert done.returncode == 0, done.stderr


def test_a_wave_with_a_changed_host_key_and_a_stopped_target(running_estate, run_cli):
    """Wave 1: one target's host key changed, one target machine stopped mid-transfer, one
    system sound. The sound one completes; the two fail at transfer, before any change to
    their sources, which keep serving. The next run brings the stopped machine back and
    completes its system; the changed key still stops the other, as it must."""
    from migrate.rehearsal.sandbox import machines

    estate = running_estate
    provisioned = run_cli("provision", estate, "--system", WRONG_KEY, "--yes")
    assert provisioned.code == 0, provisioned.stderr
    change_host_key(estate, WRONG_KEY, "web")

    run = events.WatchedRun(estate, "--wave", "1")
    try:
        run.wait_for(f"{STOPPED}'s {STOP_AT_PLAY} play",
                     lambda: bool(events.play_folders(estate, STOPPED, "transfer", STOP_AT_PLAY)))
        for name in target_machines(estate, STOPPED):
            machines.stop_machine(name)
        # the machine went down inside the transfer: the stage had not ended
        assert not events.ended(estate, "transfer", STOPPED), "stopped after the transfer"
        code, summary = run.finish_json()
    finally:
        run.stop()
    seen = run.lines
    report_timings("wave 1 with a changed host key and a stopped target", summary)
    systems = by_system(summary)
    assert code == 4, "".join(seen)
    assert sorted(summary["failed"]) == sorted([WRONG_KEY, STOPPED]), summary["failed"]
    assert systems[COMPLETES]["outcome"] == "done", systems[COMPLETES]
    wrong, stopped = systems[WRONG_KEY], systems[STOPPED]
    assert wrong["failed_stage"] == "transfer" and wrong["rolled_back"] is None, wrong
    assert "host key" in wrong["error"]["message"].lower(), wrong["error"]
    assert stopped["failed_stage"] == "transfer" and stopped["rolled_back"] is None, stopped
    for sid in (WRONG_KEY, STOPPED):
        assert source_health(estate, sid) == 200, sid  # the source never stopped serving
    entries = journal(estate)
    assert [e["result"] for e in entries if e["stage"] == "transfer"
            and e["system"] == STOPPED] == ["failed"]  # the stop landed in the transfer
    assert not [e for e in entries if e["stage"] == "cutover"
                and e["system"] in (WRONG_KEY, STOPPED)]
    assert "FAIL" not in (estate / "runbooks" / "evidence" / f"{COMPLETES}.md").read_text()

    again = run_cli("run", estate, "--wave", "1", "--yes", "--output", "json")
    second = json.loads(again.stdout)
    report_timings("wave 1 again", second)
    systems = by_system(second)
    assert again.code == 4, again.stderr
    assert second["failed"] == [WRONG_KEY], second["failed"]  # a changed key is never trusted
    assert "host key" in systems[WRONG_KEY]["error"]["message"].lower()
    assert systems[STOPPED]["outcome"] == "done", systems[STOPPED]  # its machine restarted
    assert systems[COMPLETES]["outcome"] == "nothing to do: no changes", systems[COMPLETES]
    assert source_health(estate, WRONG_KEY) == 200
    entries = journal(estate)
    assert sum(e["stage"] == "cutover" and e["system"] == STOPPED for e in entries) == 1
    assert sum(e["stage"] == "cutover" and e["system"] == COMPLETES for e in entries) == 1
    assert run_cli("audit", "verify", estate).code == 0
    assert not secrets_written(estate, "".join(seen), again.stdout, again.stderr)


def endpoint_switched(estate: Path, system: str, since: int) -> bool:
    """The cutover's switch of the endpoint to the targets is journaled: verification of
    the targets comes next (and its exchange suite runs last)."""
    for entry in journal(estate)[since:]:
        outputs = entry.get("outputs") or {}
        if (entry["stage"] == "register" and entry["system"] == system
                and (outputs.get("endpoint") or {}).get("side") == "target"):
            return True
    return False


def test_the_platform_stopped_during_verification_rolls_back(running_estate, run_cli):
    """The exchange platform goes down once the system is cut over and its endpoint
    switched, while verification runs: the system is rolled back, its source serves again
    and the run says so; with the platform back, the next run completes it."""
    estate = running_estate
    run = events.WatchedRun(estate, "--system", COMPLETES)
    stopped = False
    try:
        run.wait_for(f"{COMPLETES} cutover: started",
                     lambda: run.said(f"{COMPLETES} cutover: started"))
        since = len(journal(estate))
        run.wait_for("the endpoint's switch to the targets",
                     lambda: endpoint_switched(estate, COMPLETES, since), timeout=300)
        on_platform(estate, "systemctl stop exchange.service")
        stopped = True
        # stopped while the targets were being verified: cut over, verification not ended
        assert [e["result"] for e in events.ended(estate, "cutover", COMPLETES, since)] \
            == ["ok"]
        assert not events.ended(estate, "verify", COMPLETES, since), "verified before the stop"
        code, summary = run.finish_json()
    finally:
        run.stop()
        if stopped:
            on_platform(estate, "systemctl start exchange.service")
    seen = run.lines
    report_timings("one system, the platform stopped during verification", summary)
    assert code == 4, "".join(seen)
    (system,) = summary["systems"]
    assert system["failed_stage"] in ("verify", "cutover"), system
    assert system["rolled_back"] is True, system
    error = system["error"]["message"]
    assert "rolled back" in error and "exchange" in error, error
    assert source_health(estate, COMPLETES) == 200
    web = on_target(estate, COMPLETES, "web", "systemctl is-active fybj-web; true")
    assert web.stdout.strip() == "inactive", web.stdout
    entries = journal(estate)
    assert [e["result"] for e in events.ended(estate, "verify", COMPLETES, since)] \
        == ["failed"]  # the stop landed in the verification
    assert ("rollback", "ok") in [(e["stage"], e["result"]) for e in entries
                                  if e["system"] == COMPLETES]

    from migrate.rehearsal.sandbox.estate_plan import plan_sandbox
    from migrate.rehearsal.sandbox.estate_platform import wait_platform_healthy

    opened = loaded(estate)
    wait_platform_healthy(opened, plan_sandbox(opened).platform_ip)
    again = run_cli("run", estate, "--system", COMPLETES, "--yes", "--output", "json")
    second = json.loads(again.stdout)
    report_timings("the same system, the platform back", second)
    assert again.code == 0, again.stderr
    assert second["ok"], second
    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    stands = {s["id"]: s for s in status["systems"]}[COMPLETES]
    assert stands["flags"]["cut_over"] and stands["flags"]["verified"], stands
    assert run_cli("audit", "verify", estate).code == 0


def on_source(estate: Path, system: str, host_name: str, command: str) -> None:
    """As the system's own source access (its manifest's user and key), on a source host."""
    from migrate.rehearsal.sandbox.estate import known_hosts_path

    opened = loaded(estate)
    manifest = opened.systems[system]
    host = next(h for h in manifest.source.hosts if h.name == host_name)
    key = estate / opened.settings.secrets.dir / manifest.source.ssh.key.split("://", 1)[1]
    done = ssh(estate, host.address, manifest.source.ssh.user, key, known_hosts_path(opened),
               command)
    assert done.returncode == 0, f"{command}: {done.stderr}"


UNSTARTABLE = "/etc/systemd/system/fybj-web.service.d/zz-test-unstartable.conf"


def test_a_rollback_that_fails_is_reported_and_named(running_estate, run_cli):
    """Verification fails (the platform is stopped once the endpoint is switched) and the
    rollback cannot start the source's service again (it was made unstartable meanwhile):
    the run fails the system as NOT rolled back and says why, the journal holds the failed
    rollback, and 'migrate status' names where the system stands; once the source can start
    again, 'migrate rollback' gives it its service back."""
    estate = running_estate
    run = events.WatchedRun(estate, "--system", COMPLETES)
    stopped = broken = False
    try:
        run.wait_for(f"{COMPLETES} cutover: started",
                     lambda: run.said(f"{COMPLETES} cutover: started"))
        since = len(journal(estate))
        run.wait_for("the endpoint's switch to the targets",
                     lambda: endpoint_switched(estate, COMPLETES, since), timeout=300)
        on_platform(estate, "systemctl stop exchange.service")  # verification will fail
        stopped = True
        on_source(estate, COMPLETES, "web1",  # and the rollback will not start the source
                  f"mkdir -p {Path(UNSTARTABLE).parent} && printf '[Service]\\n"
                  f"ExecStartPre=/bin/false\\n' > {UNSTARTABLE} && systemctl daemon-reload")
        broken = True
        # both faults are in place while verification runs: it has not ended, nor a rollback
        assert not events.ended(estate, "verify", COMPLETES, since), "verified before the stop"
        assert not events.ended(estate, "rollback", COMPLETES, since)
        code, summary = run.finish_json()
    finally:
        run.stop()
        if stopped:
            on_platform(estate, "systemctl start exchange.service")
    report_timings("one system, verification and then its rollback failing", summary)
    assert code == 4, run.stderr
    (system,) = summary["systems"]
    assert summary["failed"] == [COMPLETES], summary
    assert system["failed_stage"] == "rollback" and system["rolled_back"] is False, system
    assert system["outcome"] == "failed at rollback, NOT rolled back", system
    error = system["error"]["message"]
    assert "the rollback failed too" in error, error
    assert "fybj-web" in error, error  # which service would not start
    assert [e["result"] for e in events.ended(estate, "verify", COMPLETES, since)] == ["failed"]
    rollbacks = events.ended(estate, "rollback", COMPLETES, since)
    assert [e["result"] for e in rollbacks] == ["failed"], rollbacks
    last_run = journal(estate)[-2:]  # the run's closing entry, then a plan entry at most
    closing = next(e for e in last_run if e["stage"] == "run")
    assert closing["result"] == "failed", closing
    assert closing["outputs"]["systems"][COMPLETES]["rolled_back"] is False, closing
    assert source_health(estate, COMPLETES) == 0  # nothing serves on the source

    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    stands = {s["id"]: s for s in status["systems"]}[COMPLETES]
    assert stands["failure"]["stage"] == "rollback", stands
    assert stands["text"].startswith("failed at rollback"), stands["text"]
    assert "rolled back" not in stands["text"], stands["text"]
    assert not stands["done"], stands

    assert broken
    on_source(estate, COMPLETES, "web1", f"rm {UNSTARTABLE} && systemctl daemon-reload")
    again = run_cli("rollback", estate, "--system", COMPLETES, "--output", "json")
    assert again.code == 0, again.stderr
    assert source_health(estate, COMPLETES) == 200
    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    stands = {s["id"]: s for s in status["systems"]}[COMPLETES]
    assert stands["position"] == "rolled_back" and "rolled back" in stands["text"], stands
    assert run_cli("audit", "verify", estate).code == 0


def test_the_platform_down_during_register_fails_that_stage(running_estate, run_cli):
    """The exchange platform is stopped while the system transfers (transfer never talks to
    it), so registration finds it down: the system fails at register with the platform's
    address and the refusal, before any cutover, its source serving; with the platform
    back the next run registers it and completes."""
    estate = running_estate
    run = events.WatchedRun(estate, "--system", COMPLETES)
    stopped = False
    try:
        run.wait_for(f"{COMPLETES} transfer: started",
                     lambda: run.said(f"{COMPLETES} transfer: started"))
        on_platform(estate, "systemctl stop exchange.service")
        stopped = True
        # down before the register stage began
        assert not run.said(f"{COMPLETES} register: started"), run.stderr
        assert not events.ended(estate, "register", COMPLETES)
        code, summary = run.finish_json()
    finally:
        run.stop()
        if stopped:
            on_platform(estate, "systemctl start exchange.service")
    report_timings("one system, the platform down during register", summary)
    assert code == 4, run.stderr
    (system,) = summary["systems"]
    assert system["failed_stage"] == "register" and system["rolled_back"] is None, system
    error = system["error"]["message"]
    assert "cannot reach exchange platform" in error, error
    stages = {s["stage"]: s["result"] for s in system["stages"]}
    assert stages["transfer"] == "changed" and stages["register"] == "failed", stages
    assert "cutover" not in stages, stages  # the run stopped this system at register
    assert f"{COMPLETES} register: failed" in run.stderr
    assert not events.ended(estate, "cutover", COMPLETES)
    assert source_health(estate, COMPLETES) == 200
    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    stands = {s["id"]: s for s in status["systems"]}[COMPLETES]
    assert stands["failure"]["stage"] == "register", stands
    assert stands["position"] == "transferred", stands

    from migrate.rehearsal.sandbox.estate_plan import plan_sandbox
    from migrate.rehearsal.sandbox.estate_platform import wait_platform_healthy

    opened = loaded(estate)
    wait_platform_healthy(opened, plan_sandbox(opened).platform_ip)
    again = run_cli("run", estate, "--system", COMPLETES, "--yes", "--output", "json")
    second = json.loads(again.stdout)
    report_timings("the same system, the platform back", second)
    assert again.code == 0, again.stderr
    stages = {s["stage"]: s["result"] for s in second["systems"][0]["stages"]}
    assert stages["register"] == "changed" and stages["cutover"] == "changed", stages
    assert run_cli("audit", "verify", estate).code == 0
