"""With --output json a command answers with exactly one JSON document, also when some of
its systems failed: the failure is in it, and the exit code says so."""

from __future__ import annotations

import io
import json
import sys

import pytest

from migrate.core.errors import StageFailure
from migrate.orchestrate import pipeline

FAILED = {"system": "scj-qyxy", "stage": "transfer", "result": "failed",
          "error": {"type": "HostKeyChanged", "message": "host key changed",
                    "hint": "check the host", "exit_code": 4},
          "problems": [], "duration_s": 0.5}


def failing_results(*_args, **_kwargs) -> list[dict]:
    failure = StageFailure("scj-qyxy", "transfer", "HostKeyChanged", "host key changed",
                           "check the host", 4, 0.5)
    return [{"system": "wjw-fybj", "result": "ok", "changed": 0, "duration_s": 1.0},
            pipeline.FailedResult(failure)]


@pytest.mark.parametrize("command", ["transfer", "check", "rollback", "verify"])
def test_a_partly_failed_stage_gives_one_json_document(estate, run_cli, monkeypatch, command):
    monkeypatch.setattr(pipeline, "move", failing_results)
    monkeypatch.setattr(pipeline, "verify_systems", failing_results)
    result = run_cli(command, estate, "--system", "wjw-fybj", "--system", "scj-qyxy",
                     "--output", "json")
    assert result.code == 4, result.stderr
    document = json.loads(result.stdout)  # one document: a second one would not parse
    assert [s["result"] for s in document["systems"]] == ["ok", "failed"]
    assert document["systems"][1] == FAILED  # its error in the shape of the command's own
    assert "scj-qyxy: host key changed" in document["error"]["message"]
    assert document["error"]["exit_code"] == 4
    assert document["schema_version"] == 2


def test_a_stage_that_passes_gives_its_document_without_error(estate, run_cli, monkeypatch):
    monkeypatch.setattr(pipeline, "move", lambda *a, **k: failing_results()[:1])
    result = run_cli("transfer", estate, "--system", "wjw-fybj", "--output", "json")
    assert result.code == 0, result.stderr
    assert "error" not in json.loads(result.stdout)


def only_document(result, schema_version: int = 1) -> dict:
    """The one JSON document on stdout (a second one would not parse)."""
    document = json.loads(result.stdout)
    assert document["schema_version"] == schema_version
    return document


def test_validate_lists_the_systems_as_objects_like_census_plan_and_status(estate, run_cli):
    ids = {}
    for command in ("validate", "census", "plan", "status"):
        result = run_cli(command, estate, "-o", "json")
        assert result.code == 0, result.stderr
        systems = only_document(result, 2 if command == "status" else 1)["systems"]
        assert isinstance(systems, list), command
        ids[command] = {s["id"] for s in systems}
    assert len(ids["validate"]) == 10
    assert ids["validate"] == ids["census"] == ids["status"] >= ids["plan"]  # plan: movers
    validated = json.loads(run_cli("validate", estate, "-o", "json").stdout)["systems"]
    planned = json.loads(run_cli("plan", estate, "-o", "json").stdout)["systems"]
    wjw = next(s for s in validated if s["id"] == "wjw-fybj")
    assert wjw["department"] == next(s for s in planned if s["id"] == "wjw-fybj")["department"]


def test_an_invalid_estate_gives_valid_false_with_every_problem(estate, run_cli):
    (estate / "systems" / "wjw-fybj.yaml").write_text("schema_version: 1\nid: wjw-fybj\n")
    result = run_cli("validate", estate, "--output", "json")
    assert result.code == 2
    document = only_document(result)
    assert document["valid"] is False and document["systems"] == []
    assert document["error"]["type"] == "InvalidInput" and document["error"]["exit_code"] == 2
    assert document["problems"] and all(p["file"].endswith("wjw-fybj.yaml")
                                        for p in document["problems"])


@pytest.mark.parametrize("spelling", [("--output", "json"), ("-o", "json"), ("-ojson",),
                                      ("--output=json",)])
def test_a_usage_error_is_json_in_every_spelling_of_output_json(run_cli, estate, spelling):
    result = run_cli("plan", estate, "--colour", *spelling)
    assert result.code == 2
    document = only_document(result)
    assert document["error"]["type"] == "UsageError" and document["error"]["exit_code"] == 2
    assert "--colour" in document["error"]["message"]
    assert document["error"]["hint"] == "see 'migrate plan --help'"


def test_a_missing_argument_is_json_too(run_cli, monkeypatch, tmp_path):
    monkeypatch.delenv("MIGRATE_ESTATE", raising=False)
    monkeypatch.chdir(tmp_path)
    result = run_cli("status", "-ojson")
    assert result.code == 2
    assert "ESTATE" in only_document(result, 2)["error"]["message"]  # status's version


def test_an_unexpected_failure_is_json_with_exit_1(run_cli, estate, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.delenv("MIGRATE_DEBUG", raising=False)
    monkeypatch.setattr(pipeline, "open_estate", broken)
    result = run_cli("status", estate, "--output=json")
    assert result.code == 1
    assert "RuntimeError: a bug" in only_document(result, 2)["error"]["message"]


def test_an_error_after_the_document_does_not_print_a_second_one(run_cli, estate, monkeypatch):
    from migrate.cli import main as cli
    from migrate.core.errors import StageFailed

    emit = cli.emit_json

    def emit_then_fail(document, *version):
        emit(document, *version)
        raise StageFailed("failed after printing", "a hint")

    monkeypatch.setattr(cli, "emit_json", emit_then_fail)
    result = run_cli("status", estate, "-o", "json")
    assert result.code == 4
    assert "systems" in only_document(result, 2)
    assert "failed after printing" in result.stderr


def test_an_abort_at_the_prompt_is_json_and_the_question_stays_off_stdout(run_cli, estate,
                                                                       monkeypatch):
    class TerminalInput(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", TerminalInput("n\n"))
    result = run_cli("cutover", estate, "--system", "wjw-fybj", "-o", "json")
    assert result.code == 1
    assert only_document(result, 2)["error"] == {"type": "Aborted", "message": "aborted",
                                                 "hint": None, "exit_code": 1}
    assert "Cut over wjw-fybj?" in result.stderr


def test_init_answers_with_its_files(run_cli, tmp_path):
    result = run_cli("init", tmp_path / "new", "-o", "json")
    assert result.code == 0, result.stderr
    assert len(only_document(result)["files"]) == 3


@pytest.mark.parametrize("spelling", [("-vojson",), ("-vo", "json"), ("-o", "table", "-ojson")])
def test_a_usage_error_is_json_with_short_options_combined_and_the_last_output_winning(
        run_cli, estate, spelling):
    result = run_cli("plan", estate, "--colour", *spelling)
    assert result.code == 2
    assert only_document(result)["error"]["type"] == "UsageError"


def test_the_last_output_given_wins_for_errors_too(run_cli, estate):
    result = run_cli("plan", estate, "--colour", "-o", "json", "--output", "table")
    assert result.code == 2
    assert result.stdout == "" and "No such option" in result.stderr


def test_migrate_output_json_is_the_default_of_every_command(run_cli, estate, monkeypatch):
    monkeypatch.setenv("MIGRATE_OUTPUT", "json")
    assert only_document(run_cli("validate", estate))["valid"] is True
    usage = run_cli("plan", estate, "--colour")
    assert usage.code == 2 and only_document(usage)["error"]["type"] == "UsageError"
    table = run_cli("validate", estate, "-o", "table")
    assert table.code == 0 and table.stdout.startswith("valid: 10 systems")


def test_a_migrate_output_that_is_no_format_is_a_usage_error_naming_it(run_cli, estate,
                                                                      monkeypatch):
    monkeypatch.setenv("MIGRATE_OUTPUT", "yaml")
    result = run_cli("validate", estate)
    assert result.code == 2 and "MIGRATE_OUTPUT" in result.stderr


class TerminalInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_rollback_question_stays_off_stdout(run_cli, estate, monkeypatch):
    monkeypatch.setattr(sys, "stdin", TerminalInput("n\n"))
    result = run_cli("rollback", estate, "--system", "wjw-fybj", "-o", "json")
    assert result.code == 1
    assert only_document(result, 2)["error"]["type"] == "Aborted"
    assert "Roll back wjw-fybj?" in result.stderr


def test_the_trust_questions_stay_off_stdout(capsys, monkeypatch):
    from types import SimpleNamespace

    from migrate.cli import main as cli

    offered = SimpleNamespace(key_type="ssh-ed25519", fingerprint="SHA256:new")
    check = SimpleNamespace(target=SimpleNamespace(label=lambda: "10.0.0.5"), offered=offered,
                            recorded=[SimpleNamespace(key_type="ssh-ed25519",
                                                      fingerprint="SHA256:old")])
    monkeypatch.setattr(sys, "stdin", TerminalInput("n\n\n"))
    assert cli.ask_to_trust(SimpleNamespace(**vars(check), state="new")) is False
    assert cli.ask_to_trust(SimpleNamespace(**vars(check), state="changed")) is False
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "offers ssh-ed25519 SHA256:new" in captured.err and "Type the new" in captured.err


def test_audit_key_and_checkpoint_answer_in_json(run_cli, estate, tmp_path):
    assert run_cli("plan", estate).code == 0  # journals: the journal is signed from here
    key = only_document(run_cli("audit", "key", estate, "-o", "json"))
    verified = only_document(run_cli("audit", "verify", estate, "-o", "json"))
    assert key["public_key"] == verified["public_key"] and key["key_id"] == verified["key_id"]
    assert key["pem"].startswith("-----BEGIN PUBLIC KEY-----") and key["file"] is None
    handed = tmp_path / "bureau.jsonl"
    result = run_cli("audit", "checkpoint", estate, "--to", handed, "-o", "json")
    checkpoint = only_document(result)["checkpoint"]
    assert checkpoint["head_hash"] == verified["last_hash"]
    assert json.loads(handed.read_text(encoding="utf-8")) == checkpoint


# ---- one shape for an error: the command's own and a system's failure in its results (#21)

ERROR_KEYS = {"type", "message", "hint", "exit_code"}


def command_error_document(run_cli, estate) -> dict:
    """A command's own error document (an invalid estate): ``error`` and ``problems``."""
    (estate / "systems" / "wjw-fybj.yaml").write_text("schema_version: 1\nid: wjw-fybj\n")
    return only_document(run_cli("census", estate, "-o", "json"))


def test_a_system_s_failure_has_the_shape_of_the_command_s_own_error(estate, run_cli,
                                                                     monkeypatch):
    monkeypatch.setattr(pipeline, "move", failing_results)
    moved = run_cli("transfer", estate, "--system", "wjw-fybj", "--system", "scj-qyxy",
                    "--yes", "-o", "json")
    document = only_document(moved, 2)
    failed = document["systems"][1]
    own = command_error_document(run_cli, estate)
    assert set(own["error"]) == set(failed["error"]) == set(document["error"]) == ERROR_KEYS
    assert {"error", "problems"} <= set(failed) and isinstance(failed["problems"], list)
    assert {"error", "problems"} <= set(own) and own["problems"][0].keys() == {
        "file", "line", "path", "message", "hint"}
    assert (failed["error"]["type"], failed["error"]["exit_code"]) == ("HostKeyChanged", 4)
    assert "hint" not in failed and "exit_code" not in failed  # only inside its error


def test_a_system_s_invalid_input_carries_its_problems_as_a_command_s_error_does() -> None:
    from migrate.core.errors import InvalidInput, Problem

    problem = Problem("systems/wjw-fybj.yaml", 7, "data.files[0].path", "no such folder",
                      "give an absolute path")

    def invalid(_system_id: str) -> dict:
        raise InvalidInput([problem], "1 problem in wjw-fybj")

    (result,) = pipeline.for_each_system(["wjw-fybj"], invalid, stage="transfer")
    assert set(result["error"]) == ERROR_KEYS
    assert result["error"]["type"] == "InvalidInput" and result["error"]["exit_code"] == 2
    assert result["problems"] == [problem.as_dict()]


def test_run_and_status_give_a_system_s_failure_the_error_s_shape(estate, run_cli):
    from migrate.core.errors import StageFailed, StageFailure
    from migrate.orchestrate import run as runs

    failure = StageFailure("wjw-fybj", "transfer", "StageFailed", "rsync exited 23",
                           "see the play's log", StageFailed.exit_code, 2.0)
    system = runs.SystemRun("wjw-fybj", 1)
    runs.record_failure(system, failure)
    summary = runs.RunOutcome("r1", systems=[system]).as_dict()["systems"][0]
    assert summary["error"] == failure.error_dict() and set(summary["error"]) == ERROR_KEYS
    assert summary["failed_stage"] == "transfer" and summary["problems"] == []

    context = pipeline.open_context(estate)
    context.journal.append("transfer", system="wjw-fybj", result="failed",
                           outputs={"error": "rsync exited 23"})
    document = only_document(run_cli("status", estate, "-o", "json"), 2)
    stands = next(s for s in document["systems"] if s["id"] == "wjw-fybj")["failure"]
    assert stands["stage"] == "transfer" and stands["problems"] == []
    assert stands["error"] == {"type": None, "message": "rsync exited 23", "hint": None,
                               "exit_code": None}  # the journal keeps the message only
    table = run_cli("status", estate)
    assert "rsync exited 23" in table.stdout


def test_a_run_document_is_schema_version_2(estate, run_cli, monkeypatch):
    from migrate.orchestrate import run as runs

    monkeypatch.setattr(runs, "run_estate", lambda *_args, **_kwargs: runs.RunOutcome("r1"))
    document = only_document(run_cli("run", estate, "--yes", "-o", "json"), 2)
    assert document["run_id"] == "r1" and document["error"] is None
