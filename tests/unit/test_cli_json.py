"""With --output json a command answers with exactly one JSON document, also when some of
its systems failed: the failure is in it, and the exit code says so."""

from __future__ import annotations

import io
import json
import sys

import pytest

from migrate import pipeline


def failing_results(*_args, **_kwargs) -> list[dict]:
    return [{"system": "wjw-fybj", "result": "ok", "changed": 0, "duration_s": 1.0},
            {"system": "scj-qyxy", "result": "failed", "error": "host key changed",
             "hint": "check the host", "exit_code": 4, "duration_s": 0.5}]


@pytest.mark.parametrize("command", ["transfer", "check", "rollback", "verify"])
def test_a_partly_failed_stage_gives_one_json_document(estate, run_cli, monkeypatch, command):
    monkeypatch.setattr(pipeline, "move", failing_results)
    monkeypatch.setattr(pipeline, "verify_systems", failing_results)
    result = run_cli(command, estate, "--system", "wjw-fybj", "--system", "scj-qyxy",
                     "--output", "json")
    assert result.code == 4, result.stderr
    document = json.loads(result.stdout)  # one document: a second one would not parse
    assert [s["result"] for s in document["systems"]] == ["ok", "failed"]
    assert "scj-qyxy: host key changed" in document["error"]["message"]
    assert document["error"]["exit_code"] == 4


def test_a_stage_that_passes_gives_its_document_without_error(estate, run_cli, monkeypatch):
    monkeypatch.setattr(pipeline, "move", lambda *a, **k: failing_results()[:1])
    result = run_cli("transfer", estate, "--system", "wjw-fybj", "--output", "json")
    assert result.code == 0, result.stderr
    assert "error" not in json.loads(result.stdout)


def only_document(result) -> dict:
    """The one JSON document on stdout (a second one would not parse)."""
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    return document


def test_validate_lists_the_systems_as_objects_like_census_plan_and_status(estate, run_cli):
    ids = {}
    for command in ("validate", "census", "plan", "status"):
        result = run_cli(command, estate, "-o", "json")
        assert result.code == 0, result.stderr
        systems = only_document(result)["systems"]
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
    assert "ESTATE" in only_document(result)["error"]["message"]


def test_an_unexpected_failure_is_json_with_exit_1(run_cli, estate, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.delenv("MIGRATE_DEBUG", raising=False)
    monkeypatch.setattr(pipeline, "open_estate", broken)
    result = run_cli("status", estate, "--output=json")
    assert result.code == 1
    assert "RuntimeError: a bug" in only_document(result)["error"]["message"]


def test_an_error_after_the_document_does_not_print_a_second_one(run_cli, estate, monkeypatch):
    from migrate import cli
    from migrate.errors import StageFailed

    emit = cli.emit_json

    def emit_then_fail(document):
        emit(document)
        raise StageFailed("failed after printing", "a hint")

    monkeypatch.setattr(cli, "emit_json", emit_then_fail)
    result = run_cli("status", estate, "-o", "json")
    assert result.code == 4
    assert "systems" in only_document(result)
    assert "failed after printing" in result.stderr


def test_an_abort_at_the_prompt_is_json_and_the_question_stays_off_stdout(run_cli, estate,
                                                                       monkeypatch):
    class TerminalInput(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", TerminalInput("n\n"))
    result = run_cli("cutover", estate, "--system", "wjw-fybj", "-o", "json")
    assert result.code == 1
    assert only_document(result)["error"] == {"type": "Aborted", "message": "aborted",
                                              "hint": None, "exit_code": 1}
    assert "Cut over wjw-fybj?" in result.stderr


def test_init_answers_with_its_files(run_cli, tmp_path):
    result = run_cli("init", tmp_path / "new", "-o", "json")
    assert result.code == 0, result.stderr
    assert len(only_document(result)["files"]) == 3
