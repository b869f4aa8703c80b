"""Faults during ``migrate run`` on the sandbox, one wave at a time: a target whose host key
changed, a target machine stopped in the middle of its transfer, and the exchange platform
stopped while a cut-over system is verified. The broken system fails cleanly (its source
keeps serving, or gets its service back), the others of its wave complete, and a later run
finishes what can be finished without ever trusting a changed key."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.run.test_run_sandbox import journal, report_timings, secrets_written

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
MIGRATE = Path(sys.executable).parent / "migrate"
WRONG_KEY = "sjj-tyrz"      # its target answers with a host key nobody recorded
STOPPED = "scj-qyxy"        # its target machine goes down while it transfers
COMPLETES = "wjw-fybj"      # nothing wrong with it
STOP_AFTER_S = 6            # after "transfer: started": in the middle of the stage's plays


@pytest.fixture
def running_estate(sandbox_estate, run_cli) -> Iterator[Path]:
    try:
        yield sandbox_estate
    finally:
        run_cli("destroy", sandbox_estate, "--yes")
        run_cli("sandbox", "down", sandbox_estate)


def ssh(estate: Path, address: str, user: str, key: Path, known_hosts: Path,
        command: str) -> subprocess.CompletedProcess[str]:
    from migrate.sandbox.network import assert_local_address

    assert_local_address(address)
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=10", f"{user}@{address}", command],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def loaded(estate: Path):
    from migrate.pipeline import open_estate

    return open_estate(estate)


def on_target(estate: Path, system: str, instance: str, command: str
              ) -> subprocess.CompletedProcess[str]:
    """As the operator, on a target, trusting the host key its provisioning recorded."""
    from migrate.pipeline import provisioned_targets
    from migrate.sandbox.estate import operator_key_path

    opened = loaded(estate)
    target = provisioned_targets(opened, system)[instance]
    known = estate / f".known-{system}-{instance}"
    known.write_text(f"{target['address']} {' '.join(target['host_key'].split()[:2])}\n")
    return ssh(estate, target["address"], "root", operator_key_path(opened), known, command)


def on_platform(estate: Path, command: str) -> None:
    from migrate.sandbox.estate import known_hosts_path, operator_key_path
    from migrate.sandbox.estate_plan import plan_sandbox

    opened = loaded(estate)
    done = ssh(estate, plan_sandbox(opened).platform_ip, "root", operator_key_path(opened),
               known_hosts_path(opened), command)
    assert done.returncode == 0, f"{command}: {done.stderr}"


def source_health(estate: Path, system: str) -> int:
    """HTTP status of the system's first service, asked on its source host."""
    from migrate.sandbox.estate import known_hosts_path

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


def start_run(estate: Path, *scope: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(MIGRATE), "run", str(estate), *scope, "--yes",
                             "--output", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_line(process: subprocess.Popen[str], needle: str, seen: list[str]) -> None:
    for line in process.stderr:
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"the run ended without {needle!r}:\n{''.join(seen)}")


def finish(process: subprocess.Popen[str], seen: list[str]) -> tuple[int, dict]:
    out, err = process.communicate(timeout=1200)
    seen.append(err)
    assert out.strip(), "".join(seen)
    return process.returncode, json.loads(out)


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
    from migrate.sandbox import machines

    estate = running_estate
    provisioned = run_cli("provision", estate, "--system", WRONG_KEY, "--yes")
    assert provisioned.code == 0, provisioned.stderr
    change_host_key(estate, WRONG_KEY, "web")

    process = start_run(estate, "--wave", "1")
    seen: list[str] = []
    try:
        wait_for_line(process, f"{STOPPED} transfer: started", seen)
        time.sleep(STOP_AFTER_S)
        for name in target_machines(estate, STOPPED):
            machines.stop_machine(name)
        code, summary = finish(process, seen)
    finally:
        if process.poll() is None:
            process.kill()
    report_timings("wave 1 with a changed host key and a stopped target", summary)
    systems = by_system(summary)
    assert code == 4, "".join(seen)
    assert sorted(summary["failed"]) == sorted([WRONG_KEY, STOPPED]), summary["failed"]
    assert systems[COMPLETES]["outcome"] == "done", systems[COMPLETES]
    wrong, stopped = systems[WRONG_KEY], systems[STOPPED]
    assert wrong["failed_stage"] == "transfer" and wrong["rolled_back"] is None, wrong
    assert "host key" in wrong["error"].lower(), wrong["error"]
    assert stopped["failed_stage"] == "transfer" and stopped["rolled_back"] is None, stopped
    for sid in (WRONG_KEY, STOPPED):
        assert source_health(estate, sid) == 200, sid  # the source never stopped serving
    entries = journal(estate)
    assert not [e for e in entries if e["stage"] == "cutover"
                and e["system"] in (WRONG_KEY, STOPPED)]
    assert "FAIL" not in (estate / "runbooks" / "evidence" / f"{COMPLETES}.md").read_text()

    again = run_cli("run", estate, "--wave", "1", "--yes", "--output", "json")
    second = json.loads(again.stdout)
    report_timings("wave 1 again", second)
    systems = by_system(second)
    assert again.code == 4, again.stderr
    assert second["failed"] == [WRONG_KEY], second["failed"]  # a changed key is never trusted
    assert "host key" in systems[WRONG_KEY]["error"].lower()
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
    process = start_run(estate, "--system", COMPLETES)
    seen: list[str] = []
    stopped = False
    try:
        wait_for_line(process, f"{COMPLETES} cutover: started", seen)
        since = len(journal(estate))
        deadline = time.monotonic() + 300
        while not endpoint_switched(estate, COMPLETES, since):
            assert process.poll() is None, "the run ended before verification"
            assert time.monotonic() < deadline, "no endpoint switch within 300 s"
            time.sleep(0.2)
        on_platform(estate, "systemctl stop exchange.service")
        stopped = True
        code, summary = finish(process, seen)
    finally:
        if process.poll() is None:
            process.kill()
        if stopped:
            on_platform(estate, "systemctl start exchange.service")
    report_timings("one system, the platform stopped during verification", summary)
    assert code == 4, "".join(seen)
    (system,) = summary["systems"]
    assert system["failed_stage"] in ("verify", "cutover"), system
    assert system["rolled_back"] is True, system
    assert "rolled back" in system["error"] and "exchange" in system["error"], system["error"]
    assert source_health(estate, COMPLETES) == 200
    web = on_target(estate, COMPLETES, "web", "systemctl is-active fybj-web; true")
    assert web.stdout.strip() == "inactive", web.stdout
    entries = journal(estate)
    assert ("rollback", "ok") in [(e["stage"], e["result"]) for e in entries
                                  if e["system"] == COMPLETES]

    from migrate.sandbox.estate_plan import plan_sandbox
    from migrate.sandbox.estate_platform import wait_platform_healthy

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
