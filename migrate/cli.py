"""The command line. Thin: parse arguments, call the library, print. The one error boundary:
only here do domain exceptions become messages and exit codes (README, "Exit codes")."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table as RichTable

from migrate import __version__, pipeline, schema
from migrate.census_report import census_tables
from migrate.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    InvalidInput,
    MigrateError,
    Problem,
)
from migrate.journal import JournalCorrupt

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

ESTATE = click.argument("estate", type=click.Path(file_okay=False, path_type=Path))
OUTPUT = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table",
                      show_default=True, help="table for people, json for CI.")
AS_OF = click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     help="Census date (YYYY-MM-DD); default: migrate.yaml census.as_of or today.")


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True))


def as_date(value: Any) -> date | None:
    return value.date() if value is not None else None


def print_problems(problems: list[Problem], title: str, style: str) -> None:
    if title:
        err.print(f"[{style}]{title}[/{style}]")
    for problem in problems:
        err.print(f"  {problem.location()}: {problem.message}", markup=False, highlight=False)
        if problem.hint:
            err.print(f"      hint: {problem.hint}", markup=False, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="migrate")
def cli() -> None:
    """Move department information systems onto the e-government cloud.

    An ESTATE is a folder: migrate.yaml plus one manifest per system in systems/*.yaml.
    Exit codes: 0 ok, 1 unexpected failure, 2 invalid input (nothing was changed),
    3 environment not ready, 4 a stage failed, 130 interrupted.
    """


@cli.command()
@ESTATE
@OUTPUT
def validate(estate: Path, output: str) -> None:
    """Check every manifest of ESTATE and report every problem at once."""
    loaded = pipeline.open_estate(estate)
    if output == "json":
        emit_json({"valid": True, "estate": loaded.settings.estate,
                   "systems": len(loaded.systems),
                   "warnings": [w.as_dict() for w in loaded.warnings]})
        return
    out.print(f"[green]valid[/green]: {len(loaded.systems)} systems in {loaded.display}")
    if loaded.warnings:
        print_problems(loaded.warnings, f"{len(loaded.warnings)} warnings (do not stop "
                       "planning; stages that need these refuse later):", "yellow")


def rich_table(title: str, columns: tuple[str, ...] | list[str], rows: Any) -> RichTable:
    table = RichTable(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[str(c) for c in row])
    return table


@cli.command()
@ESTATE
@OUTPUT
@AS_OF
@click.option("--reports", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the Markdown and CSV lists [default: ESTATE/.migrate/reports/"
                   "census].")
def census(estate: Path, output: str, as_of: Any, reports: Path | None) -> None:
    """Take the census: migrate, decommission (zombie), merge (shadow) or refuse each system.

    Writes the self-inspection report (自查报告), the clean-up list (清理整合清单) and the list
    of systems to connect to the sharing platform (接入共享平台清单) as Markdown and CSV.
    """
    loaded = pipeline.open_estate(estate)
    result = pipeline.run_census(loaded, as_date(as_of))
    written = pipeline.write_census_reports(loaded, result, reports)
    if output == "json":
        emit_json({**result.as_dict(), "files": [str(p) for p in written]})
        return
    for table in census_tables(loaded.systems, result):
        out.print(rich_table(table.title, table.columns, table.rows))
    counts = ", ".join(f"{n} {d}" for d, n in result.counts().items())
    out.print(f"census as of {result.as_of.isoformat()}: {counts}")
    out.print(f"lists written to {written[0].parent}")


@cli.command()
@ESTATE
@OUTPUT
@AS_OF
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Where to write plan.json [default: ESTATE/.migrate/plan.json].")
def plan(estate: Path, output: str, as_of: Any, out_path: Path | None) -> None:
    """Plan waves from depends_on and the cloud resources each migrating system needs."""
    loaded = pipeline.open_estate(estate)
    outcome = pipeline.make_plan(loaded, as_date(as_of), out_path)
    document = outcome.plan
    if output == "json":
        emit_json({**document, "path": str(outcome.path), "changed": outcome.changed})
        return
    rows = []
    for wave in document["waves"]:
        for sid in wave["systems"]:
            system = next(s for s in document["systems"] if s["id"] == sid)
            rows.append((wave["number"], sid, system["name"], system["zone"],
                         ", ".join(f"{i['name']}:{i['flavor']}@{i['address']}"
                                   for i in system["instances"]),
                         f"{system['data']['total_gb']:g} GB",
                         f"{system['estimates']['initial_copy_minutes']} min",
                         f"{system['estimates']['cutover_minutes']} / "
                         f"{system['max_downtime_minutes']} min"))
    out.print(rich_table("Waves", ("wave", "id", "name", "zone", "instances", "data",
                                   "initial copy", "cutover / max"), rows))
    out.print(rich_table("Not planned", ("id", "disposition", "reasons"),
                         [(n["id"], n["disposition"], "; ".join(n["reasons"]))
                          for n in document["not_planned"]]))
    for warning in document["warnings"]:
        err.print(f"[yellow]warning[/yellow]: {warning}", highlight=False)
    state = "written to" if outcome.changed else "unchanged at"
    out.print(f"plan {state} {outcome.path}")


@cli.command("schema")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--reference", is_flag=True, help="Print the manifest reference (Markdown).")
@OUTPUT
def schema_command(folder: Path | None, reference: bool, output: str) -> None:
    """Write the JSON Schemas of migrate.yaml and systems/*.yaml into FOLDER (default: .)."""
    if reference:
        click.echo(schema.reference_markdown(), nl=False)
        return
    written = schema.write_schemas(folder or Path("."))
    if output == "json":
        emit_json({"files": [str(p) for p in written]})
        return
    for path in written:
        out.print(f"wrote {path}")


SYSTEMS = click.option("--system", "systems", multiple=True, metavar="ID",
                       help="Only this system (repeatable); default: every planned system.")
WAVE = click.option("--wave", type=click.IntRange(min=1), default=None, metavar="N",
                    help="Only the systems of wave N of the plan (with --system: both).")
CHECK = click.option("--check", is_flag=True,
                     help="Ansible check mode with diff: show what would change, change nothing.")
YES = click.option("--yes", "-y", is_flag=True,
                   help="Do not ask for confirmation (CI); required when not on a terminal.")


def confirm_or_refuse(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{question} Refusing without --yes when not on a terminal.")
    if not click.confirm(question, default=False):
        raise click.exceptions.Abort()


def print_stack_results(outcome: Any, output: str) -> None:
    if output == "json":
        emit_json(outcome.as_dict())
        return
    rows = []
    for result in outcome.results:
        changes = ", ".join(f"{k} {v}" for k, v in sorted(result.changes.items())) or "-"
        rows.append((result.stack, changes, f"{result.seconds:.1f} s", result.note or ""))
    out.print(rich_table(f"{outcome.operation}", ("stack", "resources", "time", "note"), rows))
    out.print("changes made" if outcome.changed and outcome.operation != "preview"
              else "changes planned" if outcome.changed else "no changes")


def stage_progress(line: str) -> None:
    err.print(f"  {line}", highlight=False, markup=False)


def scope_text(systems: tuple[str, ...], wave: int | None) -> str:
    parts = [", ".join(systems)] if systems else []
    parts += [f"the systems of wave {wave}"] if wave is not None else []
    return " and ".join(parts) or "every planned system"


def scope_of(loaded: Any, systems: tuple[str, ...], wave: int | None) -> tuple[str, ...]:
    if wave is None:
        return systems
    return tuple(dict.fromkeys((*systems, *pipeline.systems_of_wave(loaded, wave))))


def run_stack_command(estate: Path, operation: str, systems: tuple[str, ...], output: str,
                      question: str | None = None, yes: bool = False,
                      wave: int | None = None) -> None:
    loaded = pipeline.open_estate(estate)
    if question:
        confirm_or_refuse(question.format(scope=scope_text(systems, wave),
                                          cloud=loaded.settings.cloud.target), yes)
    outcome = pipeline.run_stacks(loaded, operation, list(scope_of(loaded, systems, wave)),
                                  stage_progress)
    print_stack_results(outcome, output)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@OUTPUT
def preview(estate: Path, systems: tuple[str, ...], wave: int | None, output: str) -> None:
    """Show what provisioning would create, change or delete (pulumi preview per stack)."""
    run_stack_command(estate, "preview", systems, output, wave=wave)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@YES
@OUTPUT
def provision(estate: Path, systems: tuple[str, ...], wave: int | None, yes: bool,
              output: str) -> None:
    """Create or update networks, security groups, machines and volumes (pulumi up)."""
    run_stack_command(estate, "provision", systems, output,
                      "Provision {scope} on the {cloud} cloud?", yes, wave)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@YES
@OUTPUT
def destroy(estate: Path, systems: tuple[str, ...], wave: int | None, yes: bool,
            output: str) -> None:
    """Delete what provisioning created (systems first, then networks no system uses)."""
    run_stack_command(estate, "destroy", systems, output,
                      "Destroy the cloud resources of {scope}?", yes, wave)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@OUTPUT
def register(estate: Path, systems: tuple[str, ...], wave: int | None, output: str) -> None:
    """Register each migrating system's endpoint and catalogue resources (接入登记, 编目挂接)
    on the data sharing and exchange platform; idempotent."""
    loaded = pipeline.open_estate(estate)
    results = pipeline.register_systems(loaded, list(scope_of(loaded, systems, wave)),
                                        stage_progress)
    if output == "json":
        emit_json({"systems": results})
        return
    rows = [(r["system"], r["endpoint"]["base_url"], f"{r['linked']}/{len(r['resources'])}",
             ", ".join(f"{x['code']} {x['state_zh']}" for x in r["resources"]),
             "changed" if r["changed"] else "unchanged") for r in results]
    out.print(rich_table("Catalogue registration", ("system", "endpoint", "linked",
                                                    "resources", ""), rows))


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@OUTPUT
def verify(estate: Path, systems: tuple[str, ...], wave: int | None, output: str) -> int:
    """Prove each migrated system works on its targets: services and ports, data equal to
    the recorded evidence, the application, and the exchange platform (联通) from the target."""
    loaded = pipeline.open_estate(estate)
    results = pipeline.verify_systems(loaded, list(scope_of(loaded, systems, wave)),
                                      stage_progress)
    if output == "json":  # one document, the failure in it
        return emit_json_with_error({"stage": "verify", "systems": results},
                                    lambda: pipeline.raise_for_failures("verify", results))
    for r in results:
        rows = [(c["id"], c["result"], f"{c['time_s']:.2f} s", c.get("message") or "")
                for c in r.get("checks", [])]
        out.print(rich_table(f"verify {r['system']}: {r['result']}",
                             ("check", "result", "time", "message"), rows))
    pipeline.raise_for_failures("verify", results)
    return 0


def play_progress(event: Any) -> None:
    system = f"[{event.system}] " if event.system else ""
    err.print(f"  {system}{event.host}: {event.task} [{event.status}] "
              f"(ok {event.ok}, changed {event.changed}, failed {event.failed})",
              highlight=False, markup=False)


def run_move_command(estate: Path, stage: str, systems: tuple[str, ...], output: str,
                     confirmed: bool = False, wave: int | None = None,
                     check: bool = False) -> int:
    loaded = pipeline.open_estate(estate)
    results = pipeline.move(loaded, stage, list(scope_of(loaded, systems, wave)),
                            play_progress, confirmed=confirmed, check=check)
    if output == "json":  # one document, the failure in it
        return emit_json_with_error({"stage": stage, "check": check, "systems": results},
                                    lambda: pipeline.raise_for_failures(stage, results))
    rows = [(r["system"], r["result"], r.get("run_id", "-"), str(r.get("changed", "-")),
             f"{r['duration_s']:.1f} s") for r in results]
    title = f"{stage} (check mode: nothing changed)" if check else stage
    out.print(rich_table(title, ("system", "result", "run", "changed tasks", "time"), rows))
    pipeline.raise_for_failures(stage, results)
    return 0


@cli.command("check")
@ESTATE
@SYSTEMS
@WAVE
@OUTPUT
def check_command(estate: Path, systems: tuple[str, ...], wave: int | None, output: str) -> int:
    """check_prerequisites: reachability, host keys, disk, clock, versions; changes nothing."""
    return run_move_command(estate, "check_prerequisites", systems, output, wave=wave)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@CHECK
@OUTPUT
def transfer(estate: Path, systems: tuple[str, ...], wave: int | None, check: bool,
             output: str) -> int:
    """prepare_target, transfer_files and migrate_database while the source keeps serving."""
    return run_move_command(estate, "transfer", systems, output, wave=wave, check=check)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@CHECK
@YES
@OUTPUT
def cutover(estate: Path, systems: tuple[str, ...], wave: int | None, check: bool, yes: bool,
            output: str) -> int:
    """Freeze the source, final sync, start the targets; rolls back by itself on failure."""
    if not check:
        confirm_or_refuse(f"Cut over {scope_text(systems, wave)}? The source "
                          "stops serving until the target does.", yes)
    return run_move_command(estate, "cutover", systems, output, wave=wave, check=check)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@CHECK
@OUTPUT
def rollback(estate: Path, systems: tuple[str, ...], wave: int | None, check: bool,
             output: str) -> int:
    """Return service to the source exactly as it was before the cutover; idempotent."""
    return run_move_command(estate, "rollback", systems, output, wave=wave, check=check)


@cli.command("decommission")
@ESTATE
@SYSTEMS
@WAVE
@YES
@OUTPUT
def decommission(estate: Path, systems: tuple[str, ...], wave: int | None, yes: bool,
                 output: str) -> int:
    """decommission_source: remove the migration access from a verified move (never implicit)."""
    confirm_or_refuse(f"Decommission the sources of {scope_text(systems, wave)}?", yes)
    return run_move_command(estate, "decommission_source", systems, output, confirmed=True,
                     wave=wave)


@cli.command("run")
@ESTATE
@SYSTEMS
@WAVE
@YES
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Systems of a wave at once [default: min(systems, max(2, cores))].")
@OUTPUT
def run_command(estate: Path, systems: tuple[str, ...], wave: int | None, yes: bool,
                workers: int | None, output: str) -> int:
    """The whole pipeline, wave after wave: census, plan, (sandbox up), provision, transfer,
    cutover (verified; rolled back by itself on failure), register, runbooks and report.
    Systems of a wave move in parallel; a re-run continues where the last one stopped."""
    from migrate import run as runs
    from migrate.errors import EXIT_STAGE_FAILED, StageFailed
    from migrate.run_display import display_for

    loaded = pipeline.open_estate(estate)
    confirm_or_refuse(f"Move {scope_text(systems, wave)} to the "
                      f"{loaded.settings.cloud.target} cloud (provision, transfer, cut over)?",
                      yes)
    with display_for(err) as display:  # live table on a terminal, stage lines otherwise
        outcome = runs.run_estate(loaded, str(estate), wave, list(systems) or None,
                                  display, workers)
    if output == "json":
        emit_json(outcome.as_dict())
        return 0 if outcome.ok else EXIT_STAGE_FAILED
    rows = [(s.system, s.wave, s.outcome(),
             " ".join(f"{r.stage}:{r.result}" for r in s.stages),
             f"{sum(r.seconds for r in s.stages):.1f} s") for s in outcome.systems]
    out.print(rich_table("migrate run", ("system", "wave", "outcome", "stages", "time"), rows))
    times = outcome.stage_seconds()
    out.print(rich_table("Time per stage (summed over systems)", ("stage", "runs", "seconds"),
                         [(k, v["count"], f"{v['seconds']:.1f}") for k, v in times.items()]))
    for warning in outcome.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    if outcome.changed_nothing() and not outcome.failed:
        out.print("no changes: every chosen system was already where it should be")
    out.print(f"run {outcome.run_id}: {outcome.seconds:.1f} s", highlight=False)
    if outcome.failed or outcome.blocked:
        failed = "; ".join(f"{s.system}: {s.outcome()}: {s.error}" for s in outcome.failed)
        waiting = f"; {len(outcome.blocked)} not started (their dependencies did not move)" \
            if outcome.blocked else ""
        raise StageFailed(f"{len(outcome.failed)} of {len(outcome.systems)} systems failed"
                          f"{f' ({failed})' if failed else ''}{waiting}",
                          f"see 'migrate status {estate}'; fix the cause and run again: "
                          "what is done is not repeated")
    return 0


@cli.command("status")
@ESTATE
@OUTPUT
def status_command(estate: Path, output: str) -> None:
    """Where each system stands (census, wave, planned ... verified, failures), from the
    journal and the stacks; changes nothing."""
    from migrate import status

    document = status.estate_status(pipeline.open_estate(estate))
    if output == "json":
        emit_json(document)
        return
    rows = []
    for s in document["systems"]:
        stacks = ", ".join(f"{k} {'-' if v is None else v}" for k, v in s["stacks"].items())
        error = (s["failure"] or {}).get("error", "")
        rows.append((s["id"], s["disposition"], "" if s["wave"] is None else s["wave"],
                     s["text"], stacks, s["last_at"] or "", error))
    columns = ("system", "census", "wave", "stands", "stacks (resources)", "last entry",
               "error")
    if out.is_terminal:
        out.print(rich_table("Status", columns, rows))
    else:
        for row in rows:
            click.echo("\t".join(str(c) for c in row))
    counts = document["counts"]
    out.print(", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n) or
              "nothing planned", highlight=False)
    last = document["last_run"]
    if last:
        out.print(f"last run {last['run_id']}: {last['result']} (started {last['started']})",
                  highlight=False)


@cli.command("runbook")
@ESTATE
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the runbooks [default: ESTATE/runbooks].")
@OUTPUT
def runbook_command(estate: Path, out_dir: Path | None, output: str) -> None:
    """Write the plan runbooks (per system and wave) and the evidence runbooks (from the
    journal) as Markdown and self-contained HTML."""
    written = pipeline.write_runbooks(pipeline.open_estate(estate), str(estate), out_dir)
    if output == "json":
        emit_json({"files": [str(p) for p in written]})
        return
    out.print(f"{len(written)} runbook files written to {written[0].parent.parent}")


@cli.command("report")
@ESTATE
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Report as of this day (YYYY-MM-DD): journal entries after it are left out "
                   "[default: today].")
@click.option("--monthly", is_flag=True,
              help="The monthly report: as of the last day of the previous month.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the report files [default: ESTATE/.migrate/reports/DATE].")
@OUTPUT
def report_command(estate: Path, as_of: Any, monthly: bool, out_dir: Path | None,
                   output: str) -> None:
    """Progress per department and wave, and the assessment figures (系统联通率 ...), as
    terminal tables, Markdown, HTML with charts, CSV and JSON."""
    from migrate import report

    day = as_date(as_of) or (report.monthly_as_of(date.today()) if monthly else date.today())
    document, written = pipeline.write_report(pipeline.open_estate(estate), day, out_dir)
    if output == "json":
        emit_json({**document, "files": [str(p) for p in written]})
        return
    for table in report.terminal_tables(document):
        out.print(rich_table(table.title, table.columns, table.rows))
    out.print(f"report as of {day.isoformat()} written to {written[0].parent}")


def ask_to_trust(check: Any) -> bool:
    """On a terminal: a new key is confirmed with y; a CHANGED one only by typing its new
    fingerprint in full."""
    where, key = check.target.label(), f"{check.offered.key_type} {check.offered.fingerprint}"
    if check.state == "new":
        return click.confirm(f"{where} offers {key}. Is that its key (check on the host: "
                             "ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub)?", default=False)
    err.print(f"[bold red]HOST KEY CHANGED[/bold red] for {where}: it offers {key}; recorded "
              + ", ".join(f"{k.key_type} {k.fingerprint}" for k in check.recorded), highlight=False)
    err.print("Someone may be intercepting the connection. Replace the recorded key only if "
              "you know why it changed.", highlight=False)
    typed = click.prompt("Type the new fingerprint to replace it (empty: keep the old key)",
                         default="", show_default=False)
    return typed.strip() in (check.offered.fingerprint,
                             check.offered.fingerprint.removeprefix("SHA256:"))


@cli.command("trust")
@ESTATE
@SYSTEMS
@click.option("--host", "hosts", multiple=True, metavar="ADDRESS",
              help="A source host no manifest names yet (repeatable).")
@click.option("--port", type=click.IntRange(1, 65535), default=22, show_default=True,
              help="SSH port of the --host addresses.")
@click.option("--accept", "accepted", multiple=True, metavar="SHA256:...",
              help="Trust the key with this fingerprint (repeatable): how an unattended job "
                   "names the keys it expects; no other key is trusted.")
@click.option("--yes", "-y", is_flag=True,
              help="Do not ask on a terminal; only with --accept (the keys named there).")
@OUTPUT
def trust_command(estate: Path, systems: tuple[str, ...], hosts: tuple[str, ...], port: int,
                  accepted: tuple[str, ...], yes: bool, output: str) -> int:
    """Fetch each source host's SSH key, show its SHA256 fingerprint and record it in the
    estate's known_hosts (sources.known_hosts). On a terminal you confirm each key; without
    one (or CI=true) only keys named with --accept are recorded. A CHANGED key is never
    replaced unless its new fingerprint is named or typed."""
    from migrate import access, trust

    if yes and not accepted:
        raise click.UsageError("--yes trusts only the keys named with --accept SHA256:...: "
                               "give the fingerprints you expect (a job must not accept keys "
                               "it was not told about)")
    loaded = access.open_estate_for_sources(estate)
    confirm = None if yes or trust.unattended() else ask_to_trust
    outcome = trust.trust_estate(loaded, trust.trust_targets(loaded, systems, hosts, port),
                                 accepted, confirm)
    if output == "json":  # one document, the refusal in it (exit code as for the error)
        return emit_json_with_error(outcome.as_dict(), lambda: trust.raise_for_refused(outcome))
    rows = [(c.target.system or "", c.target.host or "", c.target.name, c.offered.key_type,
             c.offered.fingerprint, c.state.upper() if c.state == "changed" else c.state,
             outcome.action_of(c)) for c in outcome.checks]
    out.print(rich_table(f"Source host keys ({outcome.known_hosts})",
                         ("system", "host", "address", "type", "fingerprint", "state",
                          "action"), rows))
    for fingerprint in outcome.unmatched_accepts:
        err.print(f"warning: --accept {fingerprint} matched no host's key", highlight=False)
    trust.raise_for_refused(outcome)
    return 0


def emit_json_with_error(document: dict, check: Any) -> int:
    """Print ``document`` as the one JSON answer; a MigrateError ``check`` raises goes in it
    as ``error`` and gives the exit code."""
    try:
        check()
    except MigrateError as error:
        emit_json({**document, "error": {"type": type(error).__name__, "message": error.message,
                                         "hint": error.hint, "exit_code": error.exit_code}})
        return error.exit_code
    emit_json(document)
    return 0


@cli.command("discover")
@ESTATE
@SYSTEMS
@click.option("--host", "addresses", multiple=True, metavar="ADDRESS",
              help="A new system's host (repeatable; with --system ID, --user, --key): "
                   "writes a draft manifest.")
@click.option("--user", default="root", show_default=True, help="Login user for --host.")
@click.option("--key", "key_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Private key file that logs in to --host.")
@click.option("--port", type=click.IntRange(1, 65535), default=22, show_default=True,
              help="SSH port of --host.")
@OUTPUT
def discover_command(estate: Path, systems: tuple[str, ...], addresses: tuple[str, ...],
                     user: str, key_file: Path | None, port: int, output: str) -> int:
    """Log in to source hosts (host keys checked) and record what is there: OS, packages,
    listening services and units, data directories, databases and roles, cron jobs, use
    from access logs. Writes .migrate/discovery/ID.json; for a new system (--host) a draft
    manifest that validates; for an existing one what its manifest misses."""
    from migrate import access, discovery

    if addresses and key_file is None:
        raise click.UsageError("--host needs --key FILE (the private key that logs in)")
    loaded = access.open_estate_for_sources(estate)
    new_hosts = [access.Login(a, user, key_file, port) for a in addresses if key_file]
    outcomes = discovery.discover_systems(loaded, list(systems), new_hosts, stage_progress)
    if output == "json":
        return emit_json_with_error({"systems": [o.as_dict() for o in outcomes]},
                                    lambda: discovery.raise_for_failures(outcomes))
    for outcome in outcomes:
        print_discovery(outcome)
    discovery.raise_for_failures(outcomes)
    return 0


def print_discovery(outcome: Any) -> None:
    document = outcome.document
    for host in document["hosts"]:
        seen = host["observed"]
        os_name = (seen.get("os") or {}).get("pretty_name", "?")
        listening = ", ".join(f"{e['port']}:{e.get('unit') or e.get('process')}"
                              for e in seen.get("listening") or [])
        databases = ", ".join(d["name"] for d in (seen.get("postgresql") or {})
                              .get("databases", []) if not d["system"])
        out.print(f"{outcome.system} {host['name']} ({host['address']}): {os_name}, "
                  f"{len(seen.get('packages') or [])} packages, listening {listening or '-'}, "
                  f"databases {databases or '-'}, {len(seen.get('cron') or [])} cron jobs "
                  f"({host['duration_s']:.1f} s)", highlight=False, markup=False)
    findings = [*document["gaps"], *document["census_differences"], *document["secrets"]]
    findings += [{"kind": f"rewrite ({r['kind']})", "message": f"{r['file']}:{r['line']} names "
                  f"{r['old']}: propose {r['new']}"} for r in document["rewrites"]]
    findings += [{"kind": "probe_error", "message": f"{e['host']}: {e['probe']}: {e['message']}"}
                 for e in document["probe_errors"]]
    if findings:
        out.print(rich_table(f"{outcome.system}: findings", ("kind", "message"),
                             [(f.get("kind", "secret"), f["message"]) for f in findings]))
    if outcome.draft_path is not None:
        state = "valid" if not outcome.draft_problems else "INVALID"
        out.print(f"draft manifest ({state}, {len(document['draft']['placeholders'])} "
                  f"placeholders): {outcome.draft_path}", highlight=False)
        if outcome.draft_problems:
            print_problems(outcome.draft_problems, "draft problems:", "red")
    out.print(f"discovery written to {outcome.path} ({document['duration_s']:.1f} s)",
              highlight=False)


@cli.group()
def audit() -> None:
    """Check the estate's run journal (append-only, hash-chained)."""


@audit.command("verify")
@ESTATE
@OUTPUT
def audit_verify(estate: Path, output: str) -> None:
    """Recompute the journal's hash chain; name the first entry altered, removed or reordered."""
    loaded = pipeline.open_estate(estate)
    result = pipeline.audit_journal(loaded)
    if output == "json":
        emit_json(result.as_dict())
    elif result.ok:
        out.print(f"[green]journal verified[/green]: {result.entries} entries, "
                  f"last hash {result.last_hash}")
    if not result.ok:
        raise JournalCorrupt(f"journal does not verify: {result.problem}",
                             "restore the journal from a backup; never edit it by hand")


@cli.group()
def sandbox() -> None:
    """The local rehearsal cloud: systemd-nspawn machines on this host (needs root)."""


@sandbox.command("images")
@click.argument("names", nargs=-1)
@OUTPUT
def sandbox_images(names: tuple[str, ...], output: str) -> None:
    """Build the sandbox base images (cloud, legacy) once with debootstrap; cached after."""
    from migrate.sandbox import images

    built = []
    for name in names or tuple(sorted(images.RECIPES)):
        started = time.monotonic()
        path = images.ensure_image(name)
        built.append({"image": name, "path": str(path),
                      "seconds": round(time.monotonic() - started, 1)})
        if output != "json":
            out.print(f"image {name}: {path} ({built[-1]['seconds']} s)")
    if output == "json":
        emit_json({"images": built})


def print_sandbox_report(report: Any, output: str, verb: str) -> None:
    if output == "json":
        emit_json(report.as_dict())
        return
    rows = [(m.name, m.role, m.system_id or "", m.address, m.status,
             "" if m.boot_s is None else f"{m.boot_s:.1f} s") for m in report.machines]
    out.print(rich_table("Sandbox machines", ("machine", "role", "system", "address", "status",
                                              "boot"), rows))
    out.print(rich_table("Sandbox bridges", ("bridge", "network", "gateway", "role"),
                         [(b.device, b.network, b.gateway, b.role) for b in report.bridges]))
    summary = f"{len(report.changes)} changes" if report.changes else "no changes"
    out.print(f"sandbox {verb}: {summary} ({report.duration_s:.1f} s)")


@sandbox.command("up")
@ESTATE
@click.option("--scale", type=click.IntRange(min=0), default=None,
              help="Seed bytes per declared GB [default: 256 KiB, capped at 48 MiB a system].")
@OUTPUT
def sandbox_up(estate: Path, scale: int | None, output: str) -> None:
    """Bring up the legacy server rooms and the exchange platform of ESTATE on this host."""
    from migrate.sandbox import estate as sandbox_estate

    loaded = pipeline.open_estate(estate)
    report = sandbox_estate.sandbox_up(loaded, scale=scale, progress=stage_progress)
    print_sandbox_report(report, output, "up")


@sandbox.command("status")
@ESTATE
@OUTPUT
def sandbox_status(estate: Path, output: str) -> None:
    """List the machines and bridges the sandbox made for ESTATE, as the host has them."""
    from migrate.sandbox import estate as sandbox_estate

    report = sandbox_estate.sandbox_status(pipeline.open_estate(estate))
    print_sandbox_report(report, output, "status")


@sandbox.command("down")
@ESTATE
@OUTPUT
def sandbox_down(estate: Path, output: str) -> None:
    """Remove every machine and bridge the sandbox made for ESTATE, and nothing else."""
    from migrate.sandbox import estate as sandbox_estate

    report = sandbox_estate.sandbox_down(pipeline.open_estate(estate), progress=stage_progress)
    print_sandbox_report(report, output, "down")


def report_error(error: MigrateError, output: str) -> None:
    problems = error.problems if isinstance(error, InvalidInput) else []
    if output == "json":
        emit_json({"error": {"type": type(error).__name__, "message": error.message,
                             "hint": error.hint, "exit_code": error.exit_code},
                   "problems": [p.as_dict() for p in problems]})
        return
    err.print(f"[red]error[/red]: {error.message}", highlight=False)
    if problems:
        print_problems(problems, "", "red")
    if error.hint:
        err.print(f"hint: {error.hint}", markup=False, highlight=False)


def wants_json(argv: list[str]) -> bool:
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return "--output=json" in argv or any(
        a in ("--output", "-o") and b == "json" for a, b in pairs)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    output = "json" if wants_json(args) else "table"
    try:
        code = cli.main(args=args, prog_name="migrate", standalone_mode=False)
    except MigrateError as error:
        report_error(error, output)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(EXIT_INVALID_INPUT if error.exit_code == 2 else error.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:  # the last line of the boundary: no traceback for users
        if os.environ.get("MIGRATE_DEBUG") == "1":
            raise
        err.print(f"[red]unexpected failure[/red]: {type(error).__name__}: {error}",
                  highlight=False)
        err.print("hint: run with MIGRATE_DEBUG=1 for a traceback, and report it")
        sys.exit(EXIT_FAILURE)
    sys.exit(code if isinstance(code, int) else 0)
