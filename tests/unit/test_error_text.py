"""The error boundary prints a message as it is: text, never rich markup."""

from __future__ import annotations

import click

from migrate.cli import main as cli_main
from migrate.core.errors import EnvironmentNotReady


def test_an_error_message_is_printed_as_text_not_as_markup(monkeypatch, run_cli):
    """What a tool said, quoted in a message, may hold brackets that rich would read as
    markup (a plugin path in square brackets once crashed the boundary itself)."""
    said = "could not read plugin [/root/.cache/bin/plugin]: exit status 1 [bold]x[/bold]"

    def fails(**_given: str) -> None:
        raise EnvironmentNotReady(said, hint="see [/etc/hosts]")

    monkeypatch.setitem(cli_main.cli.commands, "fails",
                        click.Command("fails", callback=fails, params=[click.Argument(["x"])]))
    result = run_cli("fails", "x")
    assert result.code == 3
    assert f"error: {said}" in result.stderr
    assert "hint: see [/etc/hosts]" in result.stderr
