"""Every command a runbook prints parses with the real CLI, as printed (parsed, never run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from migrate.cli.main import cli
from migrate.stages.runbook import write_runbooks
from tests.runbook.story import COMMITTED_EXAMPLES

SH_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
MENTION = re.compile(r"\bmigrate ([a-z][a-z-]*)")


def printed_commands(folder: Path) -> list[tuple[Path, str]]:
    found = []
    for page in sorted(folder.rglob("*.md")):
        for block in SH_BLOCK.findall(page.read_text(encoding="utf-8")):
            found += [(page, line.strip()) for line in block.splitlines()
                      if line.strip() and not line.lstrip().startswith("#")]
    return found


def parse(command_line: str) -> click.Context:
    """Parse like ``migrate ...`` would, down to the leaf command, without invoking it."""
    words = shlex.split(command_line)
    assert words[0] == "migrate", command_line
    context = cli.make_context("migrate", words[1:])
    command: click.Command = cli
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(context, context._protected_args + context.args)
        assert sub is not None, f"no command {name!r}"
        context = sub.make_context(name, rest, parent=context)
        command = sub
    return context


@pytest.fixture(scope="module")
def generated(tmp_path_factory, example) -> Path:
    from migrate.core.journal import Journal
    from tests.runbook.story import write_story

    estate, plan = example
    root = tmp_path_factory.mktemp("printed")
    journal: Journal = write_story(root / "state", estate.settings.estate)
    write_runbooks(estate, plan, journal, root / "runbooks", estate_arg="examples/estate")
    return root / "runbooks"


@pytest.mark.parametrize("where", ["generated", "committed"])
def test_every_printed_command_parses(where, generated):
    folder = generated if where == "generated" else COMMITTED_EXAMPLES
    commands = printed_commands(folder)
    assert len(commands) > 50 and any(" rollback " in c for _, c in commands)
    failures = []
    for page, command in commands:
        try:
            parse(command)
        except click.ClickException as error:
            failures.append(f"{page.relative_to(folder)}: {command}: {error.format_message()}")
    assert not failures, "\n".join(failures)


def test_every_command_mentioned_in_text_exists(generated):
    names = set(cli.commands)
    unknown = {(page.name, name) for page in generated.rglob("*.md")
               for name in MENTION.findall(page.read_text(encoding="utf-8"))
               if name not in names}
    assert not unknown


def test_the_rollback_command_takes_yes_and_a_reason():
    context = parse("migrate rollback examples/estate --system a --yes --reason '切换后故障'")
    assert context.params["yes"] and context.params["reason"] == "切换后故障"
    with pytest.raises(click.UsageError):
        parse("migrate rollback examples/estate --force")


def test_rollback_passes_its_reason_to_the_stage(run_cli, estate, monkeypatch):
    from migrate.orchestrate import pipeline

    seen = {}

    def move(*args, **kwargs):
        seen.update(kwargs, stage=args[1])
        return [{"system": "wjw-fybj", "result": "ok", "duration_s": 1.0}]

    monkeypatch.setattr(pipeline, "move", move)
    result = run_cli("rollback", estate, "--system", "wjw-fybj", "--yes",
                     "--reason", " 切换后健康检查失败 ")
    assert result.code == 0, result.stderr
    assert seen["stage"] == "rollback" and seen["reason"] == "切换后健康检查失败"
