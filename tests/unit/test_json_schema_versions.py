"""Every document a command prints carries that command's one schema_version: the commands
whose systems' failures are error objects (schema 2) print 2 also when they stop before
their results, so a consumer never handles both versions of one command (#21)."""

from __future__ import annotations

import json

import pytest

from migrate.cli import main as cli_main

SECOND_VERSION = [("transfer", "--yes"), ("check",), ("cutover", "--yes"),
                  ("rollback", "--yes"), ("decommission", "--yes"), ("verify",),
                  ("run", "--yes"), ("status",)]


def break_estate(estate) -> None:
    (estate / "systems" / "wjw-fybj.yaml").write_text("schema_version: 1\nid: wjw-fybj\n")


def test_the_version_is_the_one_of_the_command_s_results() -> None:
    assert cli_main.FAILURES_SCHEMA_VERSION == 2
    assert {c[0] for c in SECOND_VERSION} == cli_main.FAILURES_SCHEMA_COMMANDS


@pytest.mark.parametrize("command", SECOND_VERSION, ids=lambda c: c[0])
def test_a_command_stopped_before_its_results_prints_its_own_schema_version(
        estate, run_cli, command):
    break_estate(estate)
    stopped = run_cli(*command, estate, "-o", "json")
    assert stopped.code == 2, stopped
    document = json.loads(stopped.stdout)
    assert document["error"]["type"] == "InvalidInput" and document["problems"]
    assert document["schema_version"] == 2
    usage = run_cli(command[0], estate, "--no-such-option", "-o", "json")
    assert usage.code == 2, usage
    assert json.loads(usage.stdout)["schema_version"] == 2


def test_status_prints_version_2_whether_or_not_it_fails(estate, run_cli) -> None:
    done = run_cli("status", estate, "-o", "json")
    assert done.code == 0, done
    assert json.loads(done.stdout)["schema_version"] == 2
    break_estate(estate)
    assert json.loads(run_cli("status", estate, "-o", "json").stdout)["schema_version"] == 2


@pytest.mark.parametrize("args", [("census",), ("validate",), ("audit", "verify")])
def test_other_commands_keep_version_1_for_their_errors(estate, run_cli, args) -> None:
    break_estate(estate)
    stopped = run_cli(*args, estate, "-o", "json")
    assert stopped.code == 2, stopped
    assert json.loads(stopped.stdout)["schema_version"] == 1


def test_report_answers_in_report_json_s_version_also_when_it_stops(estate, run_cli) -> None:
    from migrate.stages import report

    assert cli_main.REPORT_SCHEMA_VERSION == report.REPORT_SCHEMA_VERSION
    break_estate(estate)
    stopped = run_cli("report", estate, "-o", "json")
    assert stopped.code == 2, stopped
    assert json.loads(stopped.stdout)["schema_version"] == report.REPORT_SCHEMA_VERSION
    usage = run_cli("report", estate, "--no-such-option", "-o", "json")
    assert json.loads(usage.stdout)["schema_version"] == report.REPORT_SCHEMA_VERSION


def test_output_before_the_command_is_a_usage_error_in_that_command_s_version(run_cli) -> None:
    misplaced = run_cli("-o", "json", "transfer")
    assert misplaced.code == 2, misplaced
    document = json.loads(misplaced.stdout)
    assert document["error"]["type"] == "UsageError"
    assert document["schema_version"] == cli_main.FAILURES_SCHEMA_VERSION
    assert cli_main.named_command(["--output", "json", "audit", "verify"]) == "migrate audit verify"
