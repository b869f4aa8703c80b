"""migrate run on the sandbox, end to end: the README's main job (the whole example estate,
wave after wave, systems of a wave side by side), status, a second run that repeats nothing,
and runs killed during provisioning, transfer and cutover that the next run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
MIGRATE = Path(sys.executable).parent / "migrate"


@pytest.fixture
def running_estate(sandbox_estate, run_cli):
    try:
        yield sandbox_estate
    finally:
        run_cli("destroy", sandbox_estate, "--yes")
        run_cli("sandbox", "down", sandbox_estate)


def journal(estate: Path) -> list[dict]:
    lines = (estate / ".migrate" / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


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
    estate: there must be none."""
    from migrate import pipeline
    from migrate.state import secret_values, secrets_dir

    loaded = pipeline.open_estate(estate)
    values = [v.encode() for v in secret_values(loaded)]
    assert values, "the sandbox made no secrets?"
    found = [f"printed output {n}" for n, text in enumerate(printed)
             for value in values if value in text.encode()]
    for path in estate.rglob("*"):
        if path.is_file() and not path.is_relative_to(secrets_dir(loaded)):
            data = path.read_bytes()
            found += [str(path) for value in values if value in data]
    return found


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


@pytest.mark.parametrize(("stage", "after_s"), [("provision", 4), ("transfer", 8),
                                                ("cutover", 6)])
def test_a_killed_run_is_completed_by_the_next(running_estate, run_cli, stage, after_s):
    """SIGKILL to the run and everything it started (its process group) while a stage is
    under way; the next run completes: one cutover, stacks without pending changes, a
    journal whose chain verifies."""
    estate = running_estate
    system = "wjw-fybj"
    process = subprocess.Popen([str(MIGRATE), "run", str(estate), "--system", system,
                                "--yes"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        seen = []
        for line in process.stderr:
            seen.append(line)
            if f"{system} {stage}: started" in line:
                break
        time.sleep(after_s)  # well into the stage
        assert process.poll() is None, "".join(seen)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    finished = [e for e in journal(estate) if e["stage"] == stage and e.get("system") == system]
    assert not finished, f"the kill came after {stage} had ended: {finished}"
    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    assert status["last_run"]["result"] == "interrupted or still running"

    again = run_cli("run", estate, "--system", system, "--yes", "--output", "json")
    summary = json.loads(again.stdout)
    report_timings(f"run after a kill during {stage}", summary)
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
