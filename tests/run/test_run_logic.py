"""migrate run with the stages faked (each journals what the real one would): order, waves,
parallelism, failure isolation, resume and the summary. Fast; the sandbox test is
test_run_sandbox.py."""

from __future__ import annotations

import fcntl
import json
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from migrate.core.errors import HostKeyChanged, StageFailed, StageFailure
from migrate.core.state import journal_for
from migrate.orchestrate import pipeline
from migrate.orchestrate import run as runs
from migrate.stages.provision import StackResult

WAVES = {1: ["scj-qyxy", "sjj-tyrz", "wjw-fybj"], 2: ["rsj-sbcx", "zrj-bdcdj"], 3: ["mzj-shjz"]}


@dataclass
class Fakes:
    calls: list
    fail: dict  # (system, stage) -> "rolled back" | "not rolled back" | "once"
    delay: float = 0.0
    unverified: bool = False  # cutovers that end before their verification (a kill)
    running: int = 0
    most: int = 0


@pytest.fixture
def fakes(monkeypatch):
    state = Fakes([], {})
    lock = threading.Lock()

    def sandbox_up(estate, progress=None, scale=None):
        state.calls.append(("sandbox", None))
        return SimpleNamespace(changed=False)

    def run_stacks(context, operation, system_ids=None, progress=None):
        journal = context.journal
        results = []
        for sid in system_ids:
            state.calls.append((operation, sid))
            done = any(e["stage"] == "provision" and e["system"] == sid
                       for e in journal.entries())
            changes = {"same": 3} if done or operation == "preview" else {"create": 3}
            results.append(StackResult(f"sys-{sid}", operation, changes))
            if operation == "provision":
                journal.append("provision", system=sid, outputs={"changes": changes},
                               result="changed" if "create" in changes else "unchanged")
        return pipeline.ProvisionOutcome(operation, results)

    def move(context, stage, system_ids=None, progress=None, confirmed=False):
        (sid,) = system_ids
        with lock:
            state.calls.append((stage, sid))
            state.running += 1
            state.most = max(state.most, state.running)
        try:
            time.sleep(state.delay)
            journal = context.journal
            how = state.fail.get((sid, stage))
            if how == "once":
                del state.fail[(sid, stage)]
            if how:
                outputs = {"error": f"{stage} broke"}
                if how != "not rolled back":
                    outputs["rolled_back"] = {"result": "ok"}
                journal.append(stage, system=sid, result="failed", outputs=outputs)
                if how == "raise":  # as a stage function does, before move gathered them
                    raise StageFailed(f"{stage} broke")
                return [pipeline.FailedResult(StageFailure(
                    sid, stage, "StageFailed", f"{stage} broke", None, StageFailed.exit_code))]
            journal.append(stage, system=sid, outputs={"changed": 2})
            if stage == "cutover" and not state.unverified:  # the real one verifies too
                journal.append("verify", system=sid, outputs={"counts": {"passed": 9}})
            outputs = {"throughput": {"bytes": 3 * 2**20, "seconds": 1.5, "mib_per_s": 2.0}} \
                if stage == "transfer" else {}
            return [{"system": sid, "changed": 2, "result": "ok", "outputs": outputs}]
        finally:
            with lock:
                state.running -= 1

    def verify_systems(context, system_ids=None, progress=None, parallel=None):
        (sid,) = system_ids
        state.calls.append(("verify", sid))
        if state.fail.get((sid, "verify")):
            context.journal.append("verify", system=sid, result="failed",
                                   outputs={"error": "3 checks failed"})
            return [pipeline.verification_result({
                "system": sid, "result": "failed", "error": "3 checks failed",
                "hint": "see there"})]
        context.journal.append("verify", system=sid, outputs={"counts": {"passed": 9}})
        return [{"system": sid, "result": "ok", "counts": {"passed": 9}}]

    def check_source_host_keys(context, system_ids):
        state.calls.append(("source_keys", None))
        if state.fail.get((None, "source_keys")):
            raise HostKeyChanged("1 source host key(s) CHANGED and not replaced: web1", "see")
        return len(system_ids)

    def register_systems(context, system_ids=None, progress=None):
        (sid,) = system_ids
        state.calls.append(("register", sid))
        context.journal.append("register", system=sid, result="unchanged")
        return [{"system": sid, "changed": False, "linked": 1, "resources": [{}]}]

    from migrate.rehearsal.sandbox import estate as sandbox_estate

    monkeypatch.setattr(sandbox_estate, "sandbox_up", sandbox_up)
    monkeypatch.setattr(pipeline, "run_stacks", run_stacks)
    monkeypatch.setattr(pipeline, "move", move)
    monkeypatch.setattr(pipeline, "register_systems", register_systems)
    monkeypatch.setattr(pipeline, "verify_systems", verify_systems)
    monkeypatch.setattr(pipeline, "check_source_host_keys", check_source_host_keys)
    return state


def run_json(run_cli, estate, *args):
    result = run_cli("run", estate, "--yes", "--output", "json", *args)
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def stages_of(fakes, sid):
    return [stage for stage, system in fakes.calls if system == sid]


def test_a_changed_source_host_key_stops_the_run_before_anything_moves(estate, run_cli,
                                                                       fakes):
    fakes.fail[(None, "source_keys")] = "raise"
    result, _ = run_json(run_cli, estate)
    assert result.code != 0 and "CHANGED" in result.stdout
    assert [stage for stage, _ in fakes.calls] == ["sandbox", "source_keys"]


def test_the_whole_estate_wave_after_wave(estate, run_cli, fakes):
    result, summary = run_json(run_cli, estate)
    assert result.code == 0, result.stderr
    assert summary["ok"] and summary["failed"] == [] and not summary["changed_nothing"]
    assert [w["number"] for w in summary["waves"]] == [1, 2, 3]
    assert fakes.calls[0] == ("sandbox", None)
    for sid in (s for systems in WAVES.values() for s in systems):
        mine = stages_of(fakes, sid)
        assert mine == ["provision", "transfer", "register", "cutover"], (sid, mine)
    # wave 2 starts after every system of wave 1 is done
    first_of_two = fakes.calls.index(("provision", "rsj-sbcx"))
    assert all(fakes.calls.index(("cutover", s)) < first_of_two for s in WAVES[1])
    assert {k for k in summary["stage_seconds"]} >= {"plan", "census", "sandbox", "provision",
                                                     "transfer", "cutover", "runbook", "report"}
    assert summary["files"]["runbooks"] and summary["files"]["report"]
    lines = result.stderr.splitlines()
    assert "[wave 1] wjw-fybj transfer: started" in lines
    assert any(line.startswith("[wave 1] wjw-fybj transfer: changed (") and
               line.endswith("2 changed tasks; 3.0 MiB sent in 1.5 s (2.0 MiB/s)")
               for line in lines), lines
    # the data moved, by the manifests' declared sizes, climbs to all of it
    moved = [line for line in lines if line.startswith("data: info: moved ")]
    assert len(moved) == 6, moved
    total = sum(runs.declared_gb(s) for s in json.loads(
        (estate / ".migrate" / "plan.json").read_text())["systems"])
    assert moved[-1] == f"data: info: moved {total:.1f} of {total:.1f} GB declared (100%)"
    entries = [e for e in journal_for(pipeline.open_estate(estate)).entries()
               if e["stage"] == "run"]
    assert [e["outputs"]["phase"] for e in entries] == ["start", "end"]
    assert entries[1]["result"] == "ok" and entries[1]["outputs"]["completed"]
    assert run_cli("audit", "verify", estate).code == 0


def test_systems_of_a_wave_move_at_once(estate, run_cli, fakes):
    fakes.delay = 0.3
    started = time.monotonic()
    result, summary = run_json(run_cli, estate, "--wave", "1", "--workers", "3")
    assert result.code == 0, result.stderr
    assert fakes.most == 3
    assert summary["waves"][0]["workers"] == 3
    assert time.monotonic() - started < 3 * 2 * 0.3  # not one after the other


def test_the_worker_bound_fits_the_machine(monkeypatch):
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 2)
    assert runs.worker_bound(8) == 2 and runs.worker_bound(1) == 1
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 16)
    assert runs.worker_bound(8) == 8


def test_one_failing_system_does_not_stop_its_wave(estate, run_cli, fakes):
    fakes.fail[("sjj-tyrz", "cutover")] = "rolled back"
    result, summary = run_json(run_cli, estate)
    assert result.code == 4
    assert summary["failed"] == ["sjj-tyrz"]
    assert summary["blocked"] == {"rsj-sbcx": ["sjj-tyrz"], "zrj-bdcdj": ["sjj-tyrz"],
                                  "mzj-shjz": ["rsj-sbcx"]}  # what depends on it waits
    systems = {s["system"]: s for s in summary["systems"]}
    assert systems["sjj-tyrz"]["outcome"] == "failed at cutover, rolled back"
    assert systems["sjj-tyrz"]["error"]["message"] == "cutover broke"
    assert systems["scj-qyxy"]["outcome"] == systems["wjw-fybj"]["outcome"] == "done"
    assert systems["rsj-sbcx"]["outcome"] == \
        "not started: depends on sjj-tyrz, not moved yet"
    assert not [c for c in fakes.calls if c[1] == "rsj-sbcx"]
    assert summary["files"]["report"]  # runbooks and report are written all the same
    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    mine = {s["id"]: s for s in status["systems"]}
    assert mine["sjj-tyrz"]["text"] == "failed at cutover, rolled back"
    assert mine["wjw-fybj"]["text"] == "verified" and mine["rsj-sbcx"]["text"] == "planned"
    assert status["last_run"]["result"] == "failed"
    assert status["last_run"]["failed"] == ["sjj-tyrz"]


@pytest.mark.parametrize("how", ["not rolled back", "raise"])
def test_a_table_run_that_fails_exits_4_and_names_the_failure(estate, run_cli, fakes, how):
    fakes.fail[("wjw-fybj", "transfer")] = how
    result = run_cli("run", estate, "--wave", "1", "--yes")
    assert result.code == 4
    assert "1 of 3 systems failed (wjw-fybj: failed at transfer: transfer broke)" in \
        result.stderr.replace("\n", " ")
    assert "wjw-fybj transfer: failed" in result.stderr


def test_a_rerun_continues_and_repeats_nothing_that_is_done(estate, run_cli, fakes):
    fakes.fail[("sjj-tyrz", "cutover")] = "once"
    first, _ = run_json(run_cli, estate, "--wave", "1")
    assert first.code == 4
    fakes.calls.clear()
    second, _ = run_json(run_cli, estate, "--wave", "1")
    assert second.code == 0, second.stderr
    assert stages_of(fakes, "sjj-tyrz") == ["provision", "transfer", "register", "cutover"]
    for sid in ("scj-qyxy", "wjw-fybj"):  # done: only a preview and the idempotent register
        assert stages_of(fakes, sid) == ["preview", "register"], sid
    fakes.calls.clear()
    third = run_cli("run", estate, "--wave", "1", "--yes")
    assert third.code == 0, third.stderr
    assert {stage for stage, _ in fakes.calls} == {"sandbox", "preview", "register"}
    assert "no changes: every chosen system was already where it should be" in third.stdout
    assert "journal says: verified" in third.stderr


def test_a_failed_provisioning_fails_the_systems_it_was_for(estate, run_cli, fakes,
                                                           monkeypatch):
    def broken(context, operation, system_ids=None, progress=None):
        raise StageFailed("stack sys-scj-qyxy: engine said no")

    monkeypatch.setattr(pipeline, "run_stacks", broken)
    result, summary = run_json(run_cli, estate, "--wave", "1")
    assert result.code == 4
    assert sorted(summary["failed"]) == sorted(WAVES[1])
    assert {s["outcome"] for s in summary["systems"]} == {"failed at provision"}
    assert not [c for c in fakes.calls if c[0] in ("transfer", "cutover")]
    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    wjw = next(s for s in status["systems"] if s["id"] == "wjw-fybj")
    assert wjw["failure"]["stage"] == "provision"


def test_a_failure_holds_back_only_what_depends_on_it(estate, run_cli, fakes):
    fakes.fail[("wjw-fybj", "transfer")] = "not rolled back"  # nothing depends on it
    result, summary = run_json(run_cli, estate)
    assert result.code == 4 and summary["failed"] == ["wjw-fybj"] and not summary["blocked"]
    assert [w["number"] for w in summary["waves"]] == [1, 2, 3]
    assert stages_of(fakes, "mzj-shjz") == ["provision", "transfer", "register", "cutover"]


def test_scope_by_system_and_wave(estate, run_cli, fakes):
    result, summary = run_json(run_cli, estate, "--system", "rsj-sbcx")
    assert result.code == 4 and summary["blocked"] == {"rsj-sbcx": ["sjj-tyrz"]}
    assert run_json(run_cli, estate, "--system", "sjj-tyrz")[0].code == 0
    result, summary = run_json(run_cli, estate, "--system", "rsj-sbcx")
    assert result.code == 0, result.stderr
    assert [s["system"] for s in summary["systems"]] == ["rsj-sbcx"]
    refused = run_cli("run", estate, "--system", "rsj-ldjc", "--yes")  # decommissioned
    assert refused.code == 2 and "not planned to move: rsj-ldjc" in refused.stderr
    assert run_cli("run", estate, "--wave", "9", "--yes").code == 2
    nothing = run_cli("run", estate, "--wave", "1", "--system", "rsj-sbcx", "--yes")
    assert nothing.code == 2 and "nothing to run" in nothing.stderr


def test_refused_without_yes_off_a_terminal(estate, run_cli, fakes):
    result = run_cli("run", estate)
    assert result.code == 2 and "Refusing without --yes" in result.stderr
    assert fakes.calls == []


def test_one_run_at_a_time(estate, run_cli, fakes):
    lock = estate / ".migrate" / runs.LOCK_NAME
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run_cli("run", estate, "--yes")
    assert result.code == 3 and "another 'migrate run' of this estate" in result.stderr
    assert fakes.calls == []


def test_status_prints_a_table_off_a_terminal_too(estate, run_cli, fakes):
    assert run_json(run_cli, estate, "--wave", "1")[0].code == 0
    result = run_cli("status", estate)
    assert result.code == 0
    rows = [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in result.stdout.splitlines() if line.startswith("│")]
    lines = {row[0]: row for row in rows}
    assert lines["wjw-fybj"][1:4] == ["migrate", "1", "verified"]
    assert lines["rsj-ldjc"][3] == "not moving (decommission)"
    assert "3 planned, 3 verified" in result.stdout


def test_a_cutover_never_verified_is_verified_and_rolled_back_when_that_fails(
        estate, run_cli, fakes):
    fakes.unverified = True  # as if each run was killed between cutover and verification
    assert run_json(run_cli, estate, "--wave", "1")[0].code == 0
    fakes.calls.clear()
    fakes.fail[("wjw-fybj", "verify")] = "failed"
    result, summary = run_json(run_cli, estate, "--wave", "1")
    assert result.code == 4
    assert stages_of(fakes, "wjw-fybj") == ["preview", "register", "verify", "rollback"]
    assert stages_of(fakes, "scj-qyxy") == ["preview", "register", "verify"]
    wjw = next(s for s in summary["systems"] if s["system"] == "wjw-fybj")
    assert wjw["outcome"] == "failed at verify, rolled back"
    assert "rolled back: the source stays authoritative" in wjw["error"]["message"]
    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    stands = {s["id"]: s["text"] for s in status["systems"]}
    assert stands["wjw-fybj"] == "failed at verify, rolled back"
    assert stands["scj-qyxy"] == "verified"


def test_the_live_display_shows_each_system_and_keeps_the_stage_lines():
    import io

    from rich.console import Console

    from migrate.cli.progress import LinePrinter, LiveDisplay, display_for
    from migrate.orchestrate.run import RunEvent

    sink = io.StringIO()
    console = Console(file=sink, force_terminal=True, width=140)
    assert isinstance(display_for(console), LiveDisplay)
    assert isinstance(display_for(Console(file=io.StringIO())), LinePrinter)
    with LiveDisplay(console) as live:
        live(RunEvent("sandbox", "started"))
        live(RunEvent("transfer", "started", 1, "wjw-fybj"))
        live(RunEvent("transfer", "task", 1, "wjw-fybj", detail="src: copy files [ok]"))
        live(RunEvent("cutover", "started", 1, "scj-qyxy"))
        table = Console(file=io.StringIO(), width=140, record=True)
        table.print(live.render())
        text = table.export_text()
        assert "wjw-fybj" in text and "src: copy files [ok]" in text and "running" in text
        live(RunEvent("data", "info", detail="moved 19.5 of 58.5 GB declared (33%)"))
        table = Console(file=io.StringIO(), width=140, record=True)
        table.print(live.render())
        assert "data moved 19.5 of 58.5 GB declared (33%)" in table.export_text()
        live(RunEvent("transfer", "changed", 1, "wjw-fybj", 12.3, "26 changed tasks"))
    assert "[wave 1] wjw-fybj transfer: changed (12.3 s): 26 changed tasks" in sink.getvalue()


def test_choose_scope_keeps_wave_order_and_refuses_what_is_not_planned():
    from migrate.core.errors import InvalidInput

    plan = {"waves": [{"number": n, "systems": s} for n, s in WAVES.items()]}
    assert runs.choose_scope(plan, None, None) == list(WAVES.items())
    assert runs.choose_scope(plan, None, ["mzj-shjz", "wjw-fybj"]) == [
        (1, ["wjw-fybj"]), (3, ["mzj-shjz"])]
    assert runs.choose_scope(plan, 2, None) == [(2, WAVES[2])]
    for wave, systems, message in ((None, ["nope"], "not planned to move: nope"),
                                   (7, None, "the plan has no wave 7"),
                                   (1, ["mzj-shjz"], "nothing to run")):
        with pytest.raises(InvalidInput, match=message):
            runs.choose_scope(plan, wave, systems)
    with pytest.raises(InvalidInput, match="moves no system"):
        runs.choose_scope({"waves": []}, None, None)
