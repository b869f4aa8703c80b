"""Where a system stands, derived from synthetic journals (fast, no machines)."""

from __future__ import annotations

import json

from migrate.orchestrate.status import (
    last_run,
    position,
    progress_flags,
    stack_resources,
    standing_failure,
    system_states,
)

PLAN = {"systems": [{"id": "s", "wave": 1}, {"id": "t", "wave": 2}],
        "waves": [{"number": 1, "systems": ["s"]}, {"number": 2, "systems": ["t"]}]}
ROWS = [("s", "S", "dept", "migrate"), ("t", "T", "dept", "migrate"),
        ("z", "Z", "dept", "decommission")]


def entry(stage, result="ok", system="s", **outputs):
    return {"system": system, "stage": stage, "result": result, "outputs": outputs,
            "at": f"2026-11-25T10:00:{len(stage):02d}Z"}


def state(entries, system="s"):
    return {s.id: s for s in system_states(ROWS, PLAN, entries)}[system]


def test_a_fresh_system_is_planned_and_one_not_moving_says_so():
    states = {s.id: s for s in system_states(ROWS, PLAN, [])}
    assert states["s"].position == "planned" and states["s"].text() == "planned"
    assert states["s"].failure is None and not states["s"].done
    assert states["z"].position == "not_moving" and states["z"].wave is None
    assert states["z"].text() == "not moving (decommission)"


def test_positions_follow_the_stages_in_order():
    journal = []
    for stage, expected in (("provision", "provisioned"), ("transfer", "transferred"),
                            ("cutover", "cut_over"), ("verify", "verified")):
        journal.append(entry(stage, "changed" if stage == "provision" else "ok"))
        assert state(journal).position == expected
    assert state(journal).done and state(journal).text() == "verified"
    assert state(journal, "t").position == "planned"  # another system's entries do not count


def test_a_destroy_resets_everything_the_targets_held():
    journal = [entry("provision", "changed"), entry("transfer"), entry("cutover"),
               entry("destroy", "changed")]
    flags = progress_flags(journal, "s")
    assert not any(flags[f] for f in ("provisioned", "transferred", "cut_over", "verified"))
    assert state(journal).position == "planned" and not state(journal).done


def test_a_failed_transfer_stands_until_a_transfer_succeeds():
    journal = [entry("provision", "changed"), entry("transfer", "failed", error="rsync: boom")]
    now = state(journal)
    assert now.failure == {"stage": "transfer", "error": "rsync: boom",
                           "at": journal[-1]["at"], "rolled_back": False}
    assert now.position == "provisioned"
    assert now.text() == "failed at transfer (was provisioned)"
    journal.append(entry("check_prerequisites"))  # an earlier stage does not clear it
    assert state(journal).failure["stage"] == "transfer"
    journal.append(entry("transfer"))
    assert state(journal).failure is None and state(journal).position == "transferred"


def test_a_failed_cutover_that_rolled_back_by_itself():
    journal = [entry("provision", "changed"), entry("transfer"),
               entry("cutover", "failed", error="rows differ",
                     rolled_back={"result": "ok", "cause": "rows differ"})]
    now = state(journal)
    assert now.position == "rolled_back" and now.failure["rolled_back"]
    assert now.text() == "failed at cutover, rolled back"
    assert not now.done
    journal.append(entry("cutover"))
    again = state(journal)
    assert again.failure is None and again.position == "cut_over" and again.done


def test_a_failed_verification_then_a_rollback_entry():
    journal = [entry("transfer"), entry("cutover"), entry("verify", "failed", error="no /health"),
               entry("rollback")]
    now = state(journal)
    assert now.failure["stage"] == "verify" and now.failure["rolled_back"]
    assert now.position == "rolled_back" and not now.flags["cut_over"]


def test_a_failed_rollback_is_not_a_rollback():
    journal = [entry("transfer"), entry("cutover", "failed", error="x",
                                        rolled_back={"result": "failed", "error": "y"})]
    now = state(journal)
    assert not now.flags["rolled_back"] and now.text() == "failed at cutover (was transferred)"


def test_a_provisioning_failure_named_by_a_run_end_entry():
    journal = [{"system": None, "stage": "provision", "result": "failed",
                "details": {"error": "engine said no"}, "at": "x"},
               {"system": None, "stage": "run", "result": "failed", "at": "y",
                "outputs": {"phase": "end", "run_id": "r1", "systems": {
                    "s": {"failed_stage": "provision", "error": "engine said no"},
                    "t": {"failed_stage": None}}}}]
    assert standing_failure(journal, "s") == {"stage": "provision", "error": "engine said no",
                                              "at": "y", "rolled_back": False}
    assert standing_failure(journal, "t") is None
    journal.append(entry("provision", "unchanged"))
    assert standing_failure(journal, "s") is None


def test_a_later_stage_clears_an_earlier_failure_and_plan_entries_do_not():
    journal = [entry("provision", "failed", error="e"), entry("plan", system=None)]
    assert standing_failure(journal, "s")["stage"] == "provision"
    journal.append(entry("transfer"))
    assert standing_failure(journal, "s") is None


def test_position_prefers_a_rollback():
    assert position({"cut_over": True, "verified": True}) == "verified"
    assert position({"rolled_back": True, "transferred": True}) == "rolled_back"
    assert position({}) == "planned"


def test_last_run_tells_an_interrupted_run_from_a_finished_one():
    start = {"stage": "run", "result": "ok", "at": "a", "outputs": {"phase": "start",
                                                                     "run_id": "r1"}}
    assert last_run([]) is None
    assert last_run([start]) == {"run_id": "r1", "started": "a", "ended": None,
                                 "result": "interrupted or still running"}
    end = {"stage": "run", "result": "failed", "at": "b",
           "outputs": {"phase": "end", "run_id": "r1", "failed": ["s"]}}
    assert last_run([start, end]) == {"run_id": "r1", "started": "a", "ended": "b",
                                      "result": "failed", "failed": ["s"]}


def test_stack_resources_from_the_file_backend(tmp_path, monkeypatch):
    monkeypatch.delenv("MIGRATE_PULUMI_BACKEND_URL", raising=False)
    folder = tmp_path / "backend" / ".pulumi" / "stacks" / "migrate-sandbox"
    folder.mkdir(parents=True)
    (folder / "sys-s.json").write_text(json.dumps(
        {"checkpoint": {"latest": {"resources": [{}, {}, {}]}}}))
    (folder / "sys-t.json").write_text(json.dumps({"checkpoint": {"latest": {}}}))
    assert stack_resources(tmp_path, "sandbox", "sys-s") == 3
    assert stack_resources(tmp_path, "sandbox", "sys-t") == 0
    assert stack_resources(tmp_path, "sandbox", "sys-u") is None
    monkeypatch.setenv("MIGRATE_PULUMI_BACKEND_URL", "s3://bucket")
    assert stack_resources(tmp_path, "sandbox", "sys-s") is None
