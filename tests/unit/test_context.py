"""One context per command (issue 18): the plan computed and the journal opened once, however
many stages the command calls; and one failure record from where a stage's error is caught to
the run summary and the command's own error, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate.core import state
from migrate.core.errors import EXIT_INVALID_INPUT, GuardRefused, StageFailed, StageFailure
from migrate.orchestrate import pipeline
from migrate.orchestrate import run as runs

SYSTEM = "wjw-fybj"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often a journal is opened and a plan built, whoever does it."""
    counts = {"journal": 0, "plan": 0}
    journal, build_plan = state.Journal, pipeline.build_plan

    def open_journal(*args, **kwargs):
        counts["journal"] += 1
        return journal(*args, **kwargs)

    def plan(*args, **kwargs):
        counts["plan"] += 1
        return build_plan(*args, **kwargs)

    monkeypatch.setattr(state, "Journal", open_journal)
    monkeypatch.setattr(pipeline, "build_plan", plan)
    return counts


@pytest.mark.parametrize(("command", "plans"), [
    (("census",), 0), (("plan",), 1), (("runbook",), 1), (("report",), 1)])
def test_a_command_opens_the_journal_once_and_plans_at_most_once(
        estate: Path, run_cli, opened: dict[str, int], command: tuple[str, ...],
        plans: int) -> None:
    assert run_cli("plan", estate).code == 0  # the reviewed plan the stages work to
    opened.update(journal=0, plan=0)
    result = run_cli(*command, estate, "-o", "json")
    assert result.code == 0, result.stderr
    assert opened == {"journal": 1, "plan": plans}


def test_the_context_makes_each_part_once_and_only_when_asked(
        estate: Path, opened: dict[str, int]) -> None:
    context = pipeline.open_context(estate)
    assert opened == {"journal": 0, "plan": 0}  # a command that never needs them
    assert context.planned is context.planned and context.journal is context.journal
    assert context.target is context.target
    assert context.plan_path == context.state_dir / "plan.json"
    assert opened == {"journal": 1, "plan": 1}


def refused(_system_id: str) -> dict:
    raise GuardRefused("refusing to connect to 192.0.2.7", hint="keep it on this host")


def test_a_caught_error_is_one_record_up_to_the_command_s_error() -> None:
    (result,) = pipeline.for_each_system([SYSTEM], refused, stage="transfer")
    failure = result.failure
    assert (failure.system, failure.stage, failure.kind) == (SYSTEM, "transfer", "GuardRefused")
    assert (failure.message, failure.hint, failure.exit_code) == (
        "refusing to connect to 192.0.2.7", "keep it on this host", EXIT_INVALID_INPUT)
    assert {k: v for k, v in result.items() if k != "duration_s"} == {
        "system": SYSTEM, "result": "failed", "error": failure.message, "hint": failure.hint,
        "exit_code": EXIT_INVALID_INPUT}
    with pytest.raises(StageFailed) as raised:
        pipeline.raise_for_failures("transfer", [result])
    assert raised.value.failure is failure
    assert raised.value.message == f"transfer of {SYSTEM}: refusing to connect to 192.0.2.7"
    assert (raised.value.hint, raised.value.exit_code) == (failure.hint, EXIT_INVALID_INPUT)


def test_a_failed_verification_carries_a_record_and_prints_as_before() -> None:
    document = {"system": SYSTEM, "result": "failed", "error": "2 checks failed",
                "hint": "see result.json", "checks": [], "duration_s": 3.5}
    result = pipeline.verification_result(dict(document))
    assert result == document
    assert result.failure == StageFailure(SYSTEM, "verify", "StageFailed", "2 checks failed",
                                          "see result.json", StageFailed.exit_code, 3.5)


def runner(estate: Path, monkeypatch: pytest.MonkeyPatch, results: list[dict]
           ) -> runs.Runner:
    monkeypatch.setattr(pipeline, "move", lambda *_args, **_kwargs: results)
    return runs.Runner(pipeline.open_context(estate), str(estate), None, None)


def test_the_run_summary_holds_the_record_the_stage_s_error_made(
        estate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (failed,) = pipeline.for_each_system([SYSTEM], refused, stage="cutover")
    run = runs.SystemRun(SYSTEM, 1)
    assert runner(estate, monkeypatch, [failed]).run_stage(1, run, "cutover") is False
    assert run.failure is failed.failure
    assert (run.failed_stage, run.error) == ("cutover", failed.failure.message)
    assert run.as_dict()["stages"][-1]["detail"] == failed.failure.message
    assert "failure" not in run.as_dict()  # the summary's JSON is as it was


def test_a_stage_that_raises_in_a_run_is_recorded_with_its_hint_and_exit_code(
        estate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def register(*_args, **_kwargs):
        raise StageFailed("the platform said 503", hint="try again later")

    monkeypatch.setattr(pipeline, "register_systems", register)
    run = runs.SystemRun(SYSTEM, 1)
    assert runner(estate, monkeypatch, []).run_stage(1, run, "register") is False
    assert run.failure == StageFailure(SYSTEM, "register", "StageFailed",
                                       "the platform said 503", "try again later",
                                       StageFailed.exit_code, run.failure.duration_s)


def test_a_move_command_prints_the_record_as_its_error(
        estate: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from migrate.stages import transfer

    def refused_transfer(*_args, **_kwargs):
        refused(SYSTEM)

    monkeypatch.setattr(pipeline, "provisioned_targets", lambda _estate, _sid: {})
    monkeypatch.setattr(pipeline, "guard_system", lambda *_args: None)
    monkeypatch.setattr(transfer, "transfer", refused_transfer)
    result = run_cli("transfer", estate, "--system", SYSTEM, "--yes", "-o", "json")
    assert result.code == EXIT_INVALID_INPUT, result.stderr
    document = json.loads(result.stdout)
    assert document["error"]["message"] == (f"transfer of {SYSTEM}: refusing to connect to "
                                            "192.0.2.7")
    assert document["error"]["hint"] == "keep it on this host"
    (system,) = document["systems"]
    assert (system["error"], system["hint"], system["exit_code"]) == (
        "refusing to connect to 192.0.2.7", "keep it on this host", EXIT_INVALID_INPUT)
