"""migrate run on the sandbox, end to end: the README's main job (the whole example estate,
wave after wave, systems of a wave side by side), status, a second run that repeats nothing,
and a system's runs killed during provisioning, transfer and cutover, each continued by the
next."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.run import events, secret_scan
from tests.run.events import journal

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture
def running_estate(sandbox_estate, run_cli):
    try:
        yield sandbox_estate
    finally:
        run_cli("destroy", sandbox_estate, "--yes", "--leave-source-traces")  # sources go next
        run_cli("sandbox", "down", sandbox_estate)


def count(entries: list[dict], stage: str, system: str) -> int:
    return sum(1 for e in entries if e["stage"] == stage and e["system"] == system)


def report_timings(name: str, summary: dict) -> None:
    """Per-stage seconds, for the record (MIGRATE_RUN_TIMINGS names a JSON Lines file)."""
    target = os.environ.get("MIGRATE_RUN_TIMINGS")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"test": name, "seconds": summary["seconds"],
                                     "waves": summary["waves"],
                                     "stages": summary["stage_seconds"],
                                     "systems": {s["system"]: s["stages"]
                                                 for s in summary["systems"]}}) + "\n")


def secrets_written(estate: Path, *printed: str) -> list[str]:
    """Files the run wrote (state, journal, runs and their artifacts, reports, runbooks),
    and what it printed (``printed``: its stdout and stderr), that hold a secret value of the
    estate, or a line of one (``secret_scan``): there must be none."""
    from migrate.core.state import secret_values, secrets_dir
    from migrate.orchestrate import pipeline

    loaded = pipeline.open_estate(estate)
    values = secret_values(loaded)
    assert values, "the sandbox made no secrets?"
    files = [path for path in estate.rglob("*")
             if path.is_file() and not path.is_relative_to(secrets_dir(loaded))]
    return secret_scan.leaks(values, files, printed)


def test_the_main_job_moves_the_whole_example_estate_then_changes_nothing(running_estate,
                                                                         run_cli):
    """The README's main job, 'migrate run examples/estate --yes', on a copy: every system
    the census migrates moves, wave after wave (a wave's systems side by side), verified,
    with the runbooks and the report; a second run changes nothing and says so."""
    estate = running_estate
    started = time.monotonic()
    first = run_cli("run", estate, "--yes", "--output", "json")
    wall = time.monotonic() - started
    summary = json.loads(first.stdout)
    report_timings(f"the whole example estate ({wall:.0f} s)", summary)
    print(f"migrate run of the whole example estate: {wall:.1f} s; per stage: "
          f"{ {k: v['seconds'] for k, v in summary['stage_seconds'].items()} }")
    assert first.code == 0, first.stderr
    assert summary["ok"] and not summary["changed_nothing"]
    plan = json.loads((estate / ".migrate" / "plan.json").read_text())
    waves = {w["number"]: w["systems"] for w in plan["waves"]}
    moving = [sid for systems in waves.values() for sid in systems]
    assert [w["number"] for w in summary["waves"]] == sorted(waves)
    first_wave = summary["waves"][0]
    assert first_wave["workers"] == min(len(waves[1]), max(2, os.cpu_count() or 2))
    assert summary["files"]["runbooks"] and summary["files"]["report"]
    assert "[wave 1] wjw-fybj transfer: started" in first.stderr
    assert "data: info: moved" in first.stderr and "(100%)" in first.stderr

    assert not secrets_written(estate, first.stdout, first.stderr)

    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    stands = {s["id"]: s for s in status["systems"]}
    for sid in moving:
        flags = stands[sid]["flags"]
        assert flags["cut_over"] and flags["verified"] and stands[sid]["failure"] is None, \
            stands[sid]
        assert stands[sid]["stacks"][f"sys-{sid}"], stands[sid]  # resources in the stack
        evidence = (estate / "runbooks" / "evidence" / f"{sid}.md").read_text()
        assert "pass 通过" in evidence and "FAIL 未通过" not in evidence, sid
        assert "exchange" in evidence and "data" in evidence, sid
    report = json.loads(next(Path(p) for p in summary["files"]["report"]
                             if str(p).endswith(".json")).read_text())
    assert report["figures"]["connectivity"]["connected"] == len(moving), report["figures"]

    started = time.monotonic()
    second = run_cli("run", estate, "--yes", "--output", "json")
    again = json.loads(second.stdout)
    report_timings(f"second run of the whole estate ({time.monotonic() - started:.0f} s)",
                   again)
    assert second.code == 0, second.stderr
    assert again["changed_nothing"], again
    for system in again["systems"]:
        stages = {s["stage"]: s for s in system["stages"]}
        assert stages["transfer"]["result"] == stages["cutover"]["result"] == "skipped"
        assert "no changes" in stages["provision"]["detail"], stages["provision"]
    entries = journal(estate)
    for sid in moving:
        assert count(entries, "cutover", sid) == 1
    assert run_cli("audit", "verify", estate).code == 0


def kill_point(estate: Path, system: str, stage: str) -> tuple[str, Callable[[], bool]]:
    """The event the kill waits for, well inside ``stage`` of ``system``."""
    from migrate.stages.move import FREEZE_TASK

    if stage == "provision":  # the engine is updating the system's own stack
        return (f"an update of stack sys-{system}",
                lambda: bool(events.stack_locks(estate, f"sys-{system}")))
    if stage == "transfer":  # the copy of the files, between preparation and the database
        return ("its transfer_files play",
                lambda: bool(events.play_folders(estate, system, "transfer", "transfer_files")))
    # the cutover play has frozen (or is freezing) the source: the riskiest moment
    return ("the freeze of its source",
            lambda: events.task_started(estate, system, "cutover", "cutover", FREEZE_TASK))


def assert_stage_unfinished(estate: Path, system: str, stage: str) -> None:
    """After the kill: the stage never ended, and the step it was killed in neither."""
    finished = events.ended(estate, stage, system)
    assert not finished, f"the kill came after {stage} had ended: {finished}"
    if stage == "provision":  # a killed engine leaves its stack's lock behind
        assert events.stack_locks(estate, f"sys-{system}"), "no update of the stack was running"
    else:
        play = "transfer_files" if stage == "transfer" else "cutover"
        assert events.play_folders(estate, system, stage, play), f"no {play} play was running"
        assert not events.play_ended(estate, system, stage, play), f"{play} had ended"


@pytest.fixture
def one_system_estate(running_estate: Path) -> Path:
    """The example estate with KILLED's manifest alone: the sandbox boots its two source hosts,
    not the other systems' fifteen, which a killed run of one system never touches."""
    return events.keep_only(running_estate, KILLED)


KILLED = "wjw-fybj"
KILLED_STAGES = ("provision", "transfer", "cutover")


def test_runs_killed_in_each_stage_are_each_continued_by_the_next(one_system_estate, run_cli):
    """SIGKILL to the run and everything it started (its process group) once the stage is
    observably under way (the system's stack update, its transfer_files play, its source's
    freeze), one stage after the other: each kill lands in a stage proven unfinished, and the
    next run continues past it (the stage before ended in that run, the previous run named
    as unfinished) until it is killed in turn. The last run completes: one cutover, stacks
    without pending changes, a journal whose chain verifies."""
    estate, system = one_system_estate, KILLED
    for number, stage in enumerate(KILLED_STAGES):
        what, under_way = kill_point(estate, system, stage)
        run = events.WatchedRun(estate, "--system", system, output_json=False)
        try:
            run.wait_for(what, under_way)
            run.kill()
        finally:
            run.stop()
        assert run.process.returncode == -signal.SIGKILL
        assert run.said(f"{system} {stage}: started"), run.stderr
        assert_stage_unfinished(estate, system, stage)
        if number:
            assert run.said("did not finish: continuing"), run.stderr
            assert events.ended(estate, KILLED_STAGES[number - 1], system), stage
        status = json.loads(run_cli("status", estate, "--output", "json").stdout)
        assert status["last_run"]["result"] == "interrupted or still running"

    again = run_cli("run", estate, "--system", system, "--yes", "--output", "json")
    summary = json.loads(again.stdout)
    report_timings("run after kills during provision, transfer and cutover", summary)
    assert again.code == 0, again.stderr
    assert "did not finish: continuing" in " ".join(summary["warnings"])
    stages = {s["stage"]: s["result"] for s in summary["systems"][0]["stages"]}
    assert stages["cutover"] == "changed", stages
    entries = journal(estate)
    assert count(entries, "cutover", system) == 1
    assert run_cli("audit", "verify", estate).code == 0
    assert not secrets_written(estate)
    preview = run_cli("preview", estate, "--system", system, "--output", "json")
    assert preview.code == 0 and not json.loads(preview.stdout)["changed"], preview.stdout
