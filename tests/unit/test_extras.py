"""The extras (migrate.core.extras, pyproject's [project.optional-dependencies]) and what a
command does when the extra it needs is not installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint, packages_distributions
from pathlib import Path

import click
import pytest

from migrate.cli import main as cli_main
from migrate.core.extras import EXTRAS, extra_providing

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# extras for the project's own work, not for users
NOT_FOR_USERS = {"dev"}
# the planner's and the auditor's: what the base install runs
BASE_COMMANDS = {"validate", "census", "plan", "schema", "init", "status", "runbook", "report",
                 "audit", "evidence", "register"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split(requirement: str) -> tuple[str, set[str]]:
    """A requirement's distribution and the extras it asks for."""
    name = re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0]
    asked = re.search(r"\[([^\]]*)\]", requirement)
    return canonical(name), {e.strip() for e in asked.group(1).split(",")} if asked else set()


def test_the_extras_are_those_pyproject_declares_for_users():
    declared = set(PROJECT["optional-dependencies"]) - NOT_FOR_USERS
    assert declared == set(EXTRAS)


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_each_extra_lists_the_distributions_of_its_modules_and_the_extras_it_includes(name):
    extra = EXTRAS[name]
    distributions, includes = set(), set()
    for requirement in PROJECT["optional-dependencies"][name]:
        distribution, asked = split(requirement)
        if distribution == canonical(PROJECT["name"]):
            includes |= asked
        else:
            distributions.add(distribution)
    assert distributions == {canonical(d) for d in extra.modules.values()}
    assert includes == set(extra.includes)


def test_no_base_dependency_is_left_to_an_extra():
    base = {split(r)[0] for r in PROJECT["dependencies"]}
    in_extras = {canonical(d) for extra in EXTRAS.values() for d in extra.modules.values()}
    assert not base & in_extras


def test_each_module_comes_from_the_distribution_the_mapping_names():
    providers = packages_distributions()
    for extra in EXTRAS.values():
        for module, distribution in extra.modules.items():
            top = module.split(".")[0]
            assert canonical(distribution) in {canonical(d) for d in providers.get(top, [])}, (
                module, distribution)


def test_a_module_is_found_by_its_name_its_submodules_and_its_namespace():
    assert extra_providing("pulumi").name == "move"
    assert extra_providing("pulumi.automation").name == "move"
    assert extra_providing("google").name == "move"  # google.protobuf's namespace missing
    assert extra_providing("pulumix") is None
    assert extra_providing("yaml") is None  # the base install's
    assert extra_providing("paramiko").name == "ssh"  # the small extra move includes


def test_every_command_is_of_the_base_install_or_names_its_extra():
    needing = {command for extra in EXTRAS.values() for command in extra.commands}
    assert set(cli_main.cli.commands) == BASE_COMMANDS | needing
    assert not BASE_COMMANDS & needing


class Unreachable:
    """Stands in for the pipeline: a command that reaches it did not refuse first."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"pipeline.{name} reached")


def test_a_command_refuses_before_doing_anything_when_its_extra_is_missing(
        monkeypatch, run_cli, estate):
    monkeypatch.setitem(sys.modules, "paramiko", None)  # as if not installed
    monkeypatch.setattr(cli_main, "pipeline", Unreachable())
    for command in ("provision", "transfer", "cutover", "destroy"):
        result = run_cli(command, estate, "--yes")
        assert result.code == 3, (command, result)
        assert f"'migrate {command}' needs the 'move' extra" in result.stderr
        assert "no module 'paramiko'" in result.stderr
        assert "pip install 'migrate[move]'" in result.stderr
        assert not (estate / ".migrate").exists()  # no journal, no state: nothing was done
    assert run_cli("provision", "--help").code == 0  # the help is still there
    for command in ("trust", "discover"):  # they need the ssh extra only
        result = run_cli(command, estate)
        assert result.code == 3, (command, result)
        assert f"'migrate {command}' needs the 'ssh' extra" in result.stderr
        assert "pip install 'migrate[ssh]'" in result.stderr


def test_trust_and_discover_need_only_paramiko_and_register_nothing_of_an_extra(
        monkeypatch, run_cli, estate):
    for module in EXTRAS["move"].modules:  # every module of move but its ssh extra's
        monkeypatch.setitem(sys.modules, module, None)
    for command in ("trust", "discover", "register"):
        result = run_cli(command, estate, "--system", "wjw-fybj")
        assert result.code in (2, 3), (command, result)  # the example estate's own gaps
        assert "extra" not in result.stderr and "pip install" not in result.stderr, result


def a_command_missing(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    def needs_it(**_given: str) -> None:
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    params = [click.Argument(["estate"]), click.Option(["--output", "-o"], default="table")]
    monkeypatch.setitem(cli_main.cli.commands, "needs-it",
                        click.Command("needs-it", callback=needs_it, params=params))


@pytest.mark.parametrize(("module", "extra"), [("ansible_runner", "move"),
                                                ("paramiko", "ssh")])
def test_a_command_whose_extra_is_missing_exits_3_naming_the_command_module_and_fix(
        monkeypatch, run_cli, module, extra):
    a_command_missing(monkeypatch, module)
    result = run_cli("needs-it", "estate")
    assert result.code == 3
    assert f"'migrate needs-it' needs the '{extra}' extra of migrate" in result.stderr
    assert f"no module '{module}'" in result.stderr
    assert f"pip install 'migrate[{extra}]'" in result.stderr

    document = json.loads(run_cli("needs-it", "estate", "-o", "json").stdout)["error"]
    assert (document["type"], document["exit_code"]) == ("EnvironmentNotReady", 3)
    assert f"pip install 'migrate[{extra}]'" in document["hint"]


def test_a_moving_command_missing_paramiko_names_its_own_extra() -> None:
    from migrate.core.extras import missing_extra

    error = ModuleNotFoundError("No module named 'paramiko'", name="paramiko")
    assert "needs the 'move' extra" in missing_extra(error, "migrate transfer").message
    assert "needs the 'ssh' extra" in missing_extra(error, "migrate trust").message


def test_a_missing_module_that_no_extra_provides_stays_an_unexpected_failure(
        monkeypatch, run_cli):
    a_command_missing(monkeypatch, "not_a_dependency")
    result = run_cli("needs-it", "estate")
    assert result.code == 1
    assert "unexpected failure: ModuleNotFoundError" in result.stderr
    assert "pip install" not in result.stderr


def test_a_plugged_command_whose_extra_is_missing_is_listed_and_refused(monkeypatch, run_cli):
    plugged = EntryPoint("plugged", "pulumi:command", cli_main.COMMANDS_GROUP)
    monkeypatch.setattr(cli_main, "plugged_commands", lambda: {"plugged": plugged})
    monkeypatch.setitem(sys.modules, "pulumi", None)  # its import fails: not installed

    listed = run_cli("--help")
    assert listed.code == 0
    assert re.search(r"plugged +Not installed here: pip install 'migrate\[move\]'",
                     listed.stdout)

    refused = run_cli("plugged", "up", "estate", "--yes")
    assert refused.code == 3
    assert "'migrate plugged' needs the 'move' extra" in refused.stderr


BLOCKED_RUN = """
import json
import sys
from migrate.core.extras import EXTRAS

for extra in EXTRAS.values():
    for module in extra.modules:
        sys.modules[module] = None  # as if not installed: importing it fails
from migrate.cli.main import main

codes = {}
for args in ARGS:
    try:
        main(args)
    except SystemExit as done:
        codes[" ".join(args)] = done.code
print("CODES", json.dumps(codes))
"""


def test_the_base_install_s_commands_import_no_module_of_an_extra(estate, tmp_path):
    """The planner's and auditor's commands run with every extra's module unimportable (the
    install test proves the same from a real base install, in minutes)."""
    commands = [["--help"], ["sandbox", "--help"], ["validate", "estate"],
                ["census", "estate"], ["plan", "estate"], ["runbook", "estate"],
                ["report", "estate"], ["status", "estate"], ["audit", "verify", "estate"],
                ["evidence", "export", "estate", "--output", "bundle.tar"],
                ["audit", "verify", "bundle.tar"], ["schema"], ["init", "new-estate"]]
    script = BLOCKED_RUN.replace("ARGS", repr(commands))
    done = subprocess.run([sys.executable, "-c", script], cwd=estate.parent,
                          capture_output=True, text=True, timeout=300, check=False)
    assert "CODES" in done.stdout, done.stderr[-3000:]
    codes = json.loads(done.stdout.rsplit("CODES", 1)[-1])
    assert codes == {" ".join(args): 0 for args in commands}, done.stderr[-3000:]



LOADED_AFTER = """
import json
import sys
from migrate.cli.main import main

try:
    main(ARGS)
except SystemExit:
    pass
print("LOADED", json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""
MOVING_TOOLS = {"ansible", "ansible_runner", "pulumi", "pulumi_openstack", "testinfra",
                "pytest", "grpc"}


@pytest.mark.parametrize("command", ["trust", "discover", "register"])
def test_register_trust_and_discover_import_no_moving_tool(estate, command):
    """Run as a user runs them (every extra installed here): what they import is what they
    need, not Ansible, Pulumi or testinfra."""
    script = LOADED_AFTER.replace("ARGS", repr([command, str(estate), "--system", "wjw-fybj"]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    loaded = set(json.loads(done.stdout.rsplit("LOADED", 1)[-1]))
    assert "click" in loaded and "migrate" in loaded, done.stderr[-2000:]  # it ran
    assert not loaded & MOVING_TOOLS, (loaded & MOVING_TOOLS, done.stderr[-2000:])
    assert ("paramiko" in loaded) is (command != "register")
