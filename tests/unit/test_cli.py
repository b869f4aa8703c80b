"""The command line as a well-made Python CLI: no arguments, python -m, completion, -v,
abort at a prompt, the estate from the environment or the current folder, tables at 80
columns."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

from migrate.cli import main as cli
from migrate.orchestrate import pipeline
from tests.conftest import ROOT


class TerminalInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def answer_at_the_terminal(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", TerminalInput(text))


def test_no_arguments_prints_usage_and_exits_2(run_cli):
    result = run_cli()
    assert result.code == 2
    assert "Usage: migrate" in result.stderr and "validate" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_python_dash_m_migrate_is_the_same_cli():
    run = subprocess.run([sys.executable, "-m", "migrate", "--version"], capture_output=True,
                         text=True, check=False, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "migrate" in run.stdout


def complete(monkeypatch: pytest.MonkeyPatch, run_cli, words: str, index: int) -> list[str]:
    monkeypatch.setenv("_MIGRATE_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(index))
    result = run_cli()
    assert result.code == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_completion_of_commands_and_options(monkeypatch, run_cli):
    assert complete(monkeypatch, run_cli, "migrate val", 1) == ["validate"]
    assert {"--system", "--wave", "--output", "--verbose"} <= set(
        complete(monkeypatch, run_cli, "migrate transfer --", 2))


def test_completion_of_the_estate_is_the_shell_s_folder_completion(monkeypatch, run_cli):
    monkeypatch.setenv("_MIGRATE_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "migrate plan exam")
    monkeypatch.setenv("COMP_CWORD", "2")
    assert run_cli().stdout.splitlines() == ["dir,exam"]


def test_completion_of_system_ids_from_the_estate_given(monkeypatch, run_cli, estate):
    ids = complete(monkeypatch, run_cli, f"migrate verify {estate} --system rsj", 4)
    assert ids == ["rsj-ldjc", "rsj-sbcx"]


def test_completion_of_system_ids_from_the_current_folder(monkeypatch, run_cli, estate):
    monkeypatch.chdir(estate)
    assert "wjw-fybj" in complete(monkeypatch, run_cli, "migrate cutover --system ", 3)


def test_the_estate_defaults_to_migrate_estate(monkeypatch, run_cli, estate):
    monkeypatch.setenv("MIGRATE_ESTATE", str(estate))
    result = run_cli("validate")
    assert result.code == 0, result.stderr
    assert f"10 systems in {estate}" in result.stdout


def test_the_estate_defaults_to_the_current_folder_with_a_migrate_yaml(monkeypatch, run_cli,
                                                                     estate):
    monkeypatch.delenv("MIGRATE_ESTATE", raising=False)
    monkeypatch.chdir(estate)
    assert run_cli("validate").code == 0


def test_without_an_estate_the_error_says_where_it_is_looked_for(monkeypatch, run_cli,
                                                                 tmp_path):
    monkeypatch.delenv("MIGRATE_ESTATE", raising=False)
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate")
    assert result.code == 2
    assert "MIGRATE_ESTATE" in result.stderr and "migrate.yaml" in result.stderr


def test_answering_no_at_a_prompt_aborts_with_exit_1(monkeypatch, run_cli, estate):
    answer_at_the_terminal(monkeypatch, "n\n")
    result = run_cli("cutover", estate, "--system", "wjw-fybj")
    assert result.code == 1, result.stderr
    assert result.stderr.strip().endswith("aborted")
    assert not (estate / ".migrate" / "runs").exists()


def test_ctrl_c_while_running_exits_130(monkeypatch, run_cli, estate):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "open_estate", interrupted)
    result = run_cli("validate", estate)
    assert result.code == 130
    assert "interrupted" in result.stderr


def test_the_transfer_question_says_postgresql_is_restarted(monkeypatch, run_cli, estate):
    answer_at_the_terminal(monkeypatch, "n\n")
    result = run_cli("transfer", estate, "--system", "wjw-fybj")
    assert result.code == 1
    assert "PostgreSQL" in result.stderr and "restarted" in result.stderr


def test_off_a_terminal_transfer_says_it_and_goes_on(monkeypatch, run_cli, estate):
    monkeypatch.setattr(pipeline, "move", lambda *a, **k: [
        {"system": "wjw-fybj", "result": "ok", "changed": 0, "duration_s": 1.0}])
    result = run_cli("transfer", estate, "--system", "wjw-fybj")
    assert result.code == 0, result.stderr
    assert "note: Transfer wjw-fybj?" in result.stderr and "restarted" in result.stderr


def failing_open(*_args, **_kwargs):
    raise RuntimeError("a bug")


@pytest.mark.parametrize("verbose", ["-v", "--verbose"])
def test_verbose_shows_the_time_taken(run_cli, estate, verbose):
    result = run_cli("validate", estate, verbose)
    assert result.code == 0
    assert "done in" in result.stderr and "(exit 0)" in result.stderr
    assert "done in" not in run_cli("validate", estate).stderr


def test_vv_prints_the_traceback_of_an_unexpected_failure(monkeypatch, run_cli, estate):
    monkeypatch.delenv("MIGRATE_DEBUG", raising=False)
    monkeypatch.setattr(pipeline, "open_estate", failing_open)
    quiet = run_cli("validate", estate)
    assert quiet.code == 1 and "Traceback" not in quiet.stderr and "-vv" in quiet.stderr
    loud = run_cli("-vv", "validate", estate)
    assert loud.code == 1
    assert "Traceback" in loud.stderr and "RuntimeError: a bug" in loud.stderr


def test_status_prints_a_table_with_headers_and_whole_ids_at_80_columns(monkeypatch, run_cli,
                                                                       estate):
    monkeypatch.setattr(cli, "out", Console(width=80))
    assert run_cli("plan", estate).code == 0
    result = run_cli("status", estate)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert any("system" in line and "stands" in line and "wave" in line for line in lines)
    assert "\t" not in result.stdout
    for system_id in os.listdir(estate / "systems"):
        assert system_id.removesuffix(".yaml") in result.stdout


def test_plan_table_keeps_ids_whole_at_80_columns(monkeypatch, run_cli, estate):
    monkeypatch.setattr(cli, "out", Console(width=80))
    result = run_cli("plan", estate)
    assert result.code == 0, result.stderr
    assert "zrj-bdcdj" in result.stdout and "wjw-fybj" in result.stdout


NOT_VARIABLES = {"MIGRATE_SQL_END"}  # a marker in a probe's output, not an environment variable


def test_every_migrate_variable_the_code_reads_is_in_the_readme():
    named = set()
    for path in (ROOT / "migrate").rglob("*.py"):
        named |= set(re.findall(r'"(MIGRATE_[A-Z_]+)"', path.read_text(encoding="utf-8")))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert named - NOT_VARIABLES
    assert {n for n in named - NOT_VARIABLES if f"`{n}`" not in readme} == set()


def test_the_live_run_table_keeps_ids_whole_at_80_columns():
    from migrate.cli.progress import LiveDisplay
    from migrate.orchestrate.run import RunEvent

    console = Console(width=80, file=io.StringIO(), force_terminal=False)
    display = LiveDisplay(console)
    for system in ("zrj-bdcdj", "wjw-fybj"):
        display(RunEvent("transfer", "started", 2, system))
        display(RunEvent("transfer", "task", 2, system, detail="copy " + "x" * 120))
    console.print(display.render())
    lines = console.file.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    rows = [line for line in lines if "zrj-bdcdj" in line or "wjw-fybj" in line]
    assert len([r for r in rows if "│" in r]) == 2  # one line each, ids whole


def test_completion_of_system_ids_in_nested_folders_and_yml(monkeypatch, run_cli, estate):
    health = estate / "systems" / "health"
    health.mkdir()
    (estate / "systems" / "wjw-fybj.yaml").rename(health / "wjw-fybj.yml")
    assert run_cli("validate", estate).code == 0  # validate finds it there
    assert complete(monkeypatch, run_cli, f"migrate verify {estate} --system wjw", 4) == \
        ["wjw-fybj"]


class Stop(Exception):
    """Raised by a stand-in to end the command once it has what the test looks at."""


def test_migrate_workers_is_run_s_default_and_the_command_line_wins(monkeypatch, run_cli,
                                                                    estate):
    from migrate.orchestrate import run as runs

    seen = []

    def record(_estate, _arg, _wave, _systems, _display, workers, _replan=False):
        seen.append(workers)
        raise Stop

    monkeypatch.delenv("MIGRATE_DEBUG", raising=False)
    monkeypatch.setattr(runs, "run_estate", record)
    monkeypatch.setenv("MIGRATE_WORKERS", "3")
    run_cli("run", estate, "--yes")
    run_cli("run", estate, "--yes", "--workers", "1")
    assert seen == [3, 1]
    monkeypatch.setenv("MIGRATE_WORKERS", "0")
    refused = run_cli("run", estate, "--yes")
    assert refused.code == 2 and "MIGRATE_WORKERS" in refused.stderr


def test_migrate_operator_is_the_default_of_operator(monkeypatch, run_cli, estate):
    from migrate.core.signing import operator_name

    monkeypatch.setenv("MIGRATE_OPERATOR", "\x07")
    result = run_cli("runbook", estate)
    assert result.code == 2 and "MIGRATE_OPERATOR" in result.stderr
    monkeypatch.setenv("MIGRATE_OPERATOR", "张伟")
    assert run_cli("runbook", estate, "--operator", "李娜").code == 0
    assert operator_name() == "李娜"


@pytest.mark.parametrize(("command", "variables"), [
    (("validate",), ["MIGRATE_OUTPUT"]),
    (("run",), ["MIGRATE_OUTPUT", "MIGRATE_WORKERS"]),
    (("report",), ["MIGRATE_OUTPUT", "MIGRATE_OPERATOR"]),
    (("audit", "key"), ["MIGRATE_OUTPUT"]),
])
def test_help_names_the_variable_of_each_option_that_has_one(run_cli, command, variables):
    result = run_cli(*command, "--help")
    assert result.code == 0
    text = " ".join(result.stdout.split())
    assert all(f"env var: {v}" in text for v in variables), text


def test_discover_watches_as_long_as_discovery_does_by_default() -> None:
    from migrate.stages.discovery import probes

    watch = next(p for p in cli.cli.commands["discover"].params if p.name == "watch_s")
    assert watch.default == probes.WATCH_S
