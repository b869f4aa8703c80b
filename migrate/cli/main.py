"""The command line. Thin: parse arguments, call the library, print. The one error boundary:
only here do domain exceptions become messages and exit codes (README, "Exit codes")."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from migrate import __version__
from migrate.cli.tables import FittingTable, fitting_table
from migrate.core import schema
from migrate.core.census_report import census_tables
from migrate.core.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    EnvironmentNotReady,
    InvalidInput,
    MigrateError,
    Problem,
)
from migrate.core.extras import extra_providing, missing_extra, require_extra
from migrate.core.journal import JournalCorrupt
from migrate.core.loader import find_manifests
from migrate.orchestrate import pipeline
from migrate.targets.context import Context

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

ESTATE_ENV = "MIGRATE_ESTATE"


def estate_here() -> Path | None:
    """The default estate: the current folder when it is one."""
    return Path(".") if Path("migrate.yaml").is_file() else None


def require_estate(context: click.Context, param: click.Parameter, value: Path | None) -> Path:
    if value is None and not context.resilient_parsing:
        raise click.MissingParameter(
            f"Give it, set ${ESTATE_ENV}, or run in a folder that holds a migrate.yaml.",
            context, param)
    return value


ESTATE = click.argument("estate", type=click.Path(file_okay=False, path_type=Path),
                        required=True, envvar=ESTATE_ENV, default=estate_here,
                        callback=require_estate)
OUTPUT_ENV = "MIGRATE_OUTPUT"
OUTPUT_FORMAT = click.option("--output", "-o", type=click.Choice(["table", "json"]),
                             default="table", show_default=True, envvar=OUTPUT_ENV,
                             show_envvar=True,
                             help="table for people, json for CI (one document, errors too).")


def OUTPUT(command: Any) -> Any:
    """--output and -v: every command that prints takes both."""
    return VERBOSE(OUTPUT_FORMAT(command))
AS_OF = click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     help="Census date (YYYY-MM-DD); default: migrate.yaml census.as_of or today.")


JSON_SCHEMA_VERSION = 1  # of every --output json document; raised when a shape changes
# the documents whose systems' failures took the shape of the command's own error (#21),
# their error documents too (a command that stops before its results): one version each
FAILURES_SCHEMA_VERSION = 2
FAILURES_SCHEMA_COMMANDS = frozenset({"transfer", "check", "cutover", "rollback",
                                      "decommission", "verify", "run", "status"})
# report prints report.json's own version (migrate.stages.report.REPORT_SCHEMA_VERSION, not
# imported here: a light install's CLI does not load the report stage); its errors too
REPORT_SCHEMA_VERSION = 3


@dataclass
class Session:
    """What the error boundary must know of the command that ran: -v count, start time, and
    whether its JSON document is out (an error after it must not print a second one), and
    the schema_version of the command's documents, its error documents included."""

    verbosity: int = 0
    started: float = field(default_factory=time.monotonic)
    emitted: bool = False
    schema_version: int = JSON_SCHEMA_VERSION

    def reset(self, args: list[str] | None = None) -> None:
        self.verbosity, self.started, self.emitted = 0, time.monotonic(), False
        self.schema_version = schema_version_of(args or [])


SESSION = Session()


def schema_version_of(args: list[str]) -> int:
    """The schema_version of every document the command these arguments name prints."""
    words = named_command(args).split()[1:]
    if words and words[0] in FAILURES_SCHEMA_COMMANDS:
        return FAILURES_SCHEMA_VERSION
    return REPORT_SCHEMA_VERSION if words[:1] == ["report"] else JSON_SCHEMA_VERSION


def emit_json(document: Any) -> None:
    if isinstance(document, dict):
        document = {"schema_version": SESSION.schema_version, **document}
    click.echo(json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True))
    SESSION.emitted = True


def count_verbosity(_context: click.Context, _param: click.Parameter, value: int) -> int:
    SESSION.verbosity += value or 0
    return value


VERBOSE = click.option("--verbose", "-v", count=True, expose_value=False,
                       callback=count_verbosity,
                       help="More detail: error types, timings (-v); tracebacks (-vv).")


def as_date(value: Any) -> date | None:
    return value.date() if value is not None else None


def print_problems(problems: list[Problem], title: str, style: str) -> None:
    if title:
        err.print(f"[{style}]{title}[/{style}]")
    for problem in problems:
        err.print(f"  {problem.location()}: {problem.message}", markup=False, highlight=False)
        if problem.hint:
            err.print(f"      hint: {problem.hint}", markup=False, highlight=False)


COMMANDS_GROUP = "migrate.commands"


def plugged_commands() -> dict[str, EntryPoint]:
    """Commands installed packages plug in (entry points of ``migrate.commands``), by name."""
    return {point.name: point for point in entry_points(group=COMMANDS_GROUP)}


class ExtraCheckedCommand(click.Command):
    """A command that refuses before it does anything when the extra of the install it needs
    (migrate.core.extras) is missing; its --help still works."""

    def invoke(self, ctx: click.Context) -> Any:
        require_extra(ctx.info_name or self.name or "", ctx.command_path)
        return super().invoke(ctx)


class PluggableGroup(click.Group):
    """The commands defined here, plus the plugged-in ones (the rehearsal's ``sandbox``),
    each loaded only when it is named or listed."""

    command_class = ExtraCheckedCommand

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *plugged_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = super().get_command(ctx, cmd_name)
        point = plugged_commands().get(cmd_name) if own is None else None
        if point is None:
            return own
        try:
            return point.load()
        except (ImportError, AttributeError) as error:
            if isinstance(error, ModuleNotFoundError) and extra_providing(error.name or ""):
                return needs_extra_command(cmd_name, error)
            raise EnvironmentNotReady(
                f"the command {cmd_name!r} is declared by {point.value} but cannot be loaded: "
                f"{error}", hint="reinstall the package that provides it") from None


def needs_extra_command(name: str, missing: ModuleNotFoundError) -> click.Command:
    """Stands in for a plugged command whose extra is not installed: --help lists it, and
    running it fails as any command whose extra is missing (exit 3, naming the extra)."""
    extra = extra_providing(missing.name or "")

    def refuse() -> None:
        raise missing

    return click.Command(name, callback=refuse, add_help_option=False,
                         help=f"Not installed here: {extra.install_hint() if extra else ''}",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})


@click.group(cls=PluggableGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="migrate")
@VERBOSE
def cli() -> None:
    """Move department information systems onto the e-government cloud.

    An ESTATE is a folder: migrate.yaml plus one manifest per system in systems/*.yaml;
    when not given: $MIGRATE_ESTATE, else the current folder if it holds a migrate.yaml.
    Exit codes: 0 ok, 1 unexpected failure or aborted at a prompt, 2 invalid input or usage
    (nothing was changed), 3 environment not ready, 4 a stage failed, 130 interrupted.
    """


@cli.command()
@ESTATE
@OUTPUT
def validate(estate: Path, output: str) -> int:
    """Check every manifest of ESTATE and report every problem at once."""
    if output == "json":
        return emit_validation(estate)
    loaded = pipeline.open_estate(estate)
    out.print(f"[green]valid[/green]: {len(loaded.systems)} systems in {loaded.display}")
    if loaded.warnings:
        print_problems(loaded.warnings, f"{len(loaded.warnings)} warnings (do not stop "
                       "planning; stages that need these refuse later):", "yellow")
    return 0


def emit_validation(estate: Path) -> int:
    """validate's one document, valid or not: ``systems`` is a list of objects with ``id``, as
    in census, plan and status."""
    try:
        loaded = pipeline.open_estate(estate)
    except InvalidInput as error:
        emit_json({"valid": False, "estate": None, "systems": [], "warnings": [],
                   **error_document(error)})
        return error.exit_code
    systems = [{"id": sid, "name": s.name,
                "department": {"code": s.department.code, "name": s.department.name}}
               for sid, s in sorted(loaded.systems.items())]
    emit_json({"valid": True, "estate": loaded.settings.estate, "systems": systems,
               "warnings": [w.as_dict() for w in loaded.warnings]})
    return 0


def rich_table(title: str, columns: tuple[str, ...] | list[str], rows: Any) -> FittingTable:
    """A table laid out for the terminal's width (80 columns too): ids are never folded;
    too wide, one record per row (migrate.cli.tables)."""
    return fitting_table(title, columns, rows)


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
    context = pipeline.open_context(estate)
    loaded = context.estate
    result = pipeline.run_census(context, as_date(as_of))
    written = pipeline.write_census_reports(context, result, reports)
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
    context = pipeline.open_context(estate)
    outcome = pipeline.make_plan(context, as_date(as_of), out_path)
    document = outcome.plan
    if output == "json":
        emit_json({**document, "path": str(outcome.path), "changed": outcome.changed})
        return
    rows = []
    for wave in document["waves"]:
        for sid in wave["systems"]:
            system = next(s for s in document["systems"] if s["id"] == sid)
            rows.append((wave["number"], sid, system["name"], system["zone"],
                         "\n".join(f"{i['name']}:{i['flavor']}@{i['address']}"
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
    """Write the JSON Schemas of migrate.yaml, systems/*.yaml and plan.json into FOLDER
    (default: .)."""
    if reference:
        if output == "json":
            emit_json({"reference": schema.reference_markdown()})
        else:
            click.echo(schema.reference_markdown(), nl=False)
        return
    written = schema.write_schemas(folder or Path("."))
    if output == "json":
        emit_json({"files": [str(p) for p in written]})
        return
    for path in written:
        out.print(f"wrote {path}")


@cli.command("init")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@OUTPUT
def init_command(folder: Path, output: str) -> None:
    """Start a new estate in FOLDER (new or empty): a commented migrate.yaml, one example
    system manifest and a secrets/ folder kept out of git; 'migrate validate' accepts it."""
    from migrate.core.skeleton import init_estate

    written = init_estate(folder)
    if output == "json":
        emit_json({"estate": str(folder), "files": [str(p) for p in written]})
        return
    for path in written:
        out.print(f"wrote {path}", highlight=False)
    out.print(f"next: edit the manifests, then 'migrate validate {folder}'", highlight=False)


def manifest_id(path: Path) -> str | None:
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return str(document["id"]) if isinstance(document, dict) and "id" in document else None


def complete_system_ids(context: click.Context, _param: click.Parameter,
                        incomplete: str) -> list[str]:
    """Shell completion of --system: the ids in the estate's manifests, read as they are
    (completion must answer for an estate that does not validate yet)."""
    # Click leaves the estate unparsed in args while an option waits for its value
    given = [Path(a) for a in context.args if Path(a, "migrate.yaml").is_file()]
    estate = context.params.get("estate") or next(iter(given), None) or \
        os.environ.get(ESTATE_ENV) or estate_here()
    if estate is None:
        return []
    ids = (manifest_id(p) for p in find_manifests(Path(estate)))  # any depth, as validate
    return sorted({i for i in ids if i and i.startswith(incomplete)})


SYSTEMS = click.option("--system", "systems", multiple=True, metavar="ID",
                       shell_complete=complete_system_ids,
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
    if not click.confirm(question, default=False, err=True):  # stdout: the answer only
        raise click.exceptions.Abort()


def print_stack_results(outcome: Any, output: str, diff: bool = False) -> None:
    if output == "json":
        emit_json(outcome.as_dict())
        return
    if diff:
        print_stack_diff(outcome, out)
        return
    rows = []
    for result in outcome.results:
        changes = ", ".join(f"{k} {v}" for k, v in sorted(result.changes.items())) or "-"
        rows.append((result.stack, changes, f"{result.seconds:.1f} s", result.note or ""))
    out.print(rich_table(f"{outcome.operation}", ("stack", "resources", "time", "note"), rows))
    out.print("changes made" if outcome.changed and outcome.operation != "preview"
              else "changes planned" if outcome.changed else "no changes")


def print_stack_diff(outcome: Any, console: Console) -> None:
    """Each resource a preview would change: create, update (with the properties that
    differ), replace (with those that force it) or delete; and the stacks it could not see
    yet."""
    rows = [(result.stack, step["op"], step["name"], (step["type"] or "").split(":")[-1],
             ", ".join(step["properties"])) for result in outcome.results
            for step in result.resources]
    rows += [(result.stack, "-", "", "", result.note) for result in outcome.results
             if result.note]
    console.print(rich_table("Resources that would change", ("stack", "change", "resource",
                                                             "type", "properties"), rows))
    counts: dict[str, int] = {}
    for result in outcome.results:
        for step in result.resources:
            counts[step["op"]] = counts.get(step["op"], 0) + 1
    console.print(", ".join(f"{n} to {op}" for op, n in sorted(counts.items()))
                  or "no changes", highlight=False)


def stage_progress(line: str) -> None:
    err.print(f"  {line}", highlight=False, markup=False)


def scope_text(systems: tuple[str, ...], wave: int | None) -> str:
    parts = [", ".join(systems)] if systems else []
    parts += [f"the systems of wave {wave}"] if wave is not None else []
    return " and ".join(parts) or "every planned system"


def scope_of(context: Context, systems: tuple[str, ...], wave: int | None) -> tuple[str, ...]:
    if wave is None:
        return systems
    return tuple(dict.fromkeys((*systems, *pipeline.systems_of_wave(context, wave))))


def open_planned(estate: Path, *, apply: bool = False, replan: bool = False,
                 current: bool = False) -> Context:
    """The command's context, its plan made now (pipeline.stage_plan with these options)
    and handed to every stage it calls; what it says about the plan goes to stderr."""
    context = pipeline.open_context(estate, apply=apply, replan=replan, current=current)
    say_plan(context, current)
    return context


def say_plan(context: Context, current: bool = False) -> None:
    """What the command's plan says of itself (planned first, drift), on stderr."""
    loaded, planned = context.estate, context.planned
    if planned.note:
        err.print(f"note: {planned.note}", markup=False, highlight=False)
    if planned.drift and current:
        err.print(f"note: the estate no longer matches the reviewed plan "
                  f"({'; '.join(planned.drift)}): previewing the estate as it is now "
                  f"({planned.path.name}); 'migrate plan {loaded.display}' reviews it",
                  markup=False, highlight=False)
    elif planned.drift:
        err.print(f"warning: the estate no longer matches the reviewed plan {planned.path} "
                  f"({'; '.join(planned.drift)}): used as reviewed; 'migrate plan "
                  f"{loaded.display}' re-plans", markup=False, highlight=False)


REPLAN = click.option("--replan", is_flag=True,
                      help="Re-plan first and apply the estate as it is now, instead of "
                           "refusing when it no longer matches the reviewed plan.json.")


PREVIEW_OF = {"provision": "preview", "destroy": "preview_destroy"}


def run_stack_command(estate: Path, operation: str, systems: tuple[str, ...], output: str,
                      question: str | None = None, yes: bool = False,
                      wave: int | None = None, diff: bool = False,
                      replan: bool = False, leave_source_traces: bool = False) -> None:
    context = pipeline.open_context(estate, apply=operation == "provision", replan=replan,
                                    current=operation == "preview")
    asked = question and question.format(scope=scope_text(systems, wave),
                                         cloud=context.estate.settings.cloud.target)
    if asked and not sys.stdin.isatty():  # refused without --yes before anything is written
        confirm_or_refuse(asked, yes)
    say_plan(context, current=operation == "preview")
    chosen = list(scope_of(context, systems, wave))
    if asked:
        if not yes and sys.stdin.isatty():  # it will ask: what would change, first
            preview = pipeline.run_stacks(context, PREVIEW_OF[operation], chosen,
                                          stage_progress, leave_source_traces=leave_source_traces)
            print_stack_diff(preview, err)
            say_source_traces(preview)
        confirm_or_refuse(asked, yes)
    outcome = pipeline.run_stacks(context, operation, chosen, stage_progress,
                                  leave_source_traces=leave_source_traces)
    print_stack_results(outcome, output, diff)
    say_source_traces(outcome)


def say_source_traces(outcome: Any) -> None:
    """The systems whose source hosts keep the move's traces (destroy --leave-source-traces),
    on stderr: they are the operator's to remove."""
    for system_id, found in outcome.source_traces_left.items():
        err.print(f"warning: {system_id}'s source hosts keep the move's traces ({found['stage']} "
                  f"{found['result']} {found['at']}): the migration key and any replication "
                  "tunnel unit, replication account or settings; remove them by hand once the "
                  "hosts answer (docs/pipeline.md, \"Destroying a system's targets\")",
                  markup=False, highlight=False)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@click.option("--diff", is_flag=True,
              help="Each resource that would change, and how, instead of counts per stack.")
@OUTPUT
def preview(estate: Path, systems: tuple[str, ...], wave: int | None, diff: bool,
            output: str) -> None:
    """Show what provisioning would create, change or delete (pulumi preview per stack).
    provision shows the same resource list before it asks."""
    run_stack_command(estate, "preview", systems, output, wave=wave, diff=diff)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@YES
@REPLAN
@OUTPUT
def provision(estate: Path, systems: tuple[str, ...], wave: int | None, yes: bool,
              replan: bool, output: str) -> None:
    """Create or update networks, security groups, machines and volumes (pulumi up) as the
    reviewed plan.json says; refused, naming what changed, when the estate no longer gives
    that plan (re-plan with 'migrate plan', or --replan)."""
    run_stack_command(estate, "provision", systems, output,
                      "Provision {scope} on the {cloud} cloud?", yes, wave, replan=replan)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@YES
@click.option("--leave-source-traces", is_flag=True,
              help="Destroy even systems whose source hosts still hold the move's traces "
                   "(transferred or cut over, not rolled back or decommissioned): for sources "
                   "that are gone or unreachable. Without it such systems are refused.")
@OUTPUT
def destroy(estate: Path, systems: tuple[str, ...], wave: int | None, yes: bool,
            leave_source_traces: bool, output: str) -> None:
    """Delete what provisioning created (systems first, then networks no system uses); on a
    terminal, lists the resources it would delete before it asks. Refuses, changing nothing,
    systems whose move left traces on their source hosts that only a rollback (which needs
    the targets) removes: roll them back first."""
    run_stack_command(estate, "destroy", systems, output,
                      "Destroy the cloud resources of {scope}?", yes, wave,
                      leave_source_traces=leave_source_traces)


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@OUTPUT
def register(estate: Path, systems: tuple[str, ...], wave: int | None, output: str) -> None:
    """Register each migrating system's endpoint and catalogue resources (接入登记, 编目挂接)
    on the data sharing and exchange platform; idempotent."""
    context = open_planned(estate)
    results = pipeline.register_systems(context, list(scope_of(context, systems, wave)),
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
    context = open_planned(estate)
    results = pipeline.verify_systems(context, list(scope_of(context, systems, wave)),
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
                     check: bool = False, reason: str | None = None,
                     check_cloud: bool = False) -> int:
    context = open_planned(estate)
    chosen = list(scope_of(context, systems, wave))
    cloud = pipeline.check_cloud(context, chosen, stage_progress) if check_cloud else None
    if cloud is not None and output != "json":
        err.print(f"cloud: {len(cloud.results)} stacks checked (preflight), nothing missing",
                  highlight=False, markup=False)
    extra = {"reason": reason} if reason else {}
    results = pipeline.move(context, stage, chosen, play_progress, confirmed=confirmed,
                            check=check, **extra)
    if output == "json":  # one document, the failure in it
        document = {"stage": stage, "check": check, "systems": results}
        if cloud is not None:
            document["cloud"] = cloud.as_dict()
        return emit_json_with_error(document,
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
    """The cloud first, where the target checks it (OpenStack: images, flavors, volume type,
    networks, quotas, every problem at once), then check_prerequisites: reachability, host
    keys, disk, clock, versions; changes nothing."""
    return run_move_command(estate, "check_prerequisites", systems, output, wave=wave,
                            check_cloud=True)


POSTGRESQL_RESTART = ("Each source PostgreSQL whose wal_level is not yet 'logical' is "
                      "restarted once (logical replication needs it): its clients lose the "
                      "database for a few seconds.")


def confirm_on_terminal(question: str, yes: bool) -> None:
    """Ask on a terminal; off one, say it on stderr and go on (jobs ran without a question
    before one was asked here)."""
    if yes:
        return
    if not sys.stdin.isatty():
        err.print(f"note: {question}", markup=False, highlight=False)
        return
    if not click.confirm(question, default=False, err=True):
        raise click.exceptions.Abort()


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@CHECK
@click.option("--yes", "-y", is_flag=True,
              help="Do not ask on a terminal (off a terminal transfer does not ask).")
@OUTPUT
def transfer(estate: Path, systems: tuple[str, ...], wave: int | None, check: bool, yes: bool,
             output: str) -> int:
    """prepare_target, transfer_files and migrate_database while the source keeps serving
    (its PostgreSQL is restarted once if wal_level is not yet logical)."""
    if not check:
        confirm_on_terminal(f"Transfer {scope_text(systems, wave)}? {POSTGRESQL_RESTART}",
                            yes)
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


def use_operator(_context: click.Context, _param: click.Parameter, name: str | None
                 ) -> str | None:
    """--operator NAME: who is operating, recorded on every journal entry this command
    writes (as MIGRATE_OPERATOR is)."""
    from migrate.core.signing import OPERATOR_ENV, operator_name

    if name:
        os.environ[OPERATOR_ENV] = operator_name(name) or ""
    return name


OPERATOR = click.option("--operator", metavar="NAME", default=None, expose_value=False,
                        callback=use_operator, envvar="MIGRATE_OPERATOR", show_envvar=True,
                        help="Your name, recorded on each journal entry [default: "
                             "~/.config/migrate/operator].")


@cli.command()
@ESTATE
@SYSTEMS
@WAVE
@CHECK
@click.option("--yes", "-y", is_flag=True,
              help="Do not ask on a terminal (off a terminal rollback never asks: giving the "
                   "source its service back must not wait for a prompt).")
@click.option("--reason", metavar="TEXT", default=None,
              help="Why (an incident, a failed check...): recorded in the journal and shown "
                   "in the evidence runbook.")
@OPERATOR
@OUTPUT
def rollback(estate: Path, systems: tuple[str, ...], wave: int | None, check: bool, yes: bool,
             reason: str | None, output: str) -> int:
    """Return service to the source exactly as it was before the cutover; idempotent."""
    if not (check or yes) and sys.stdin.isatty() and not click.confirm(
            f"Roll back {scope_text(systems, wave)}? The targets stop serving; the sources "
            "serve again.", default=False, err=True):  # stdout: the answer only
        raise click.exceptions.Abort()
    return run_move_command(estate, "rollback", systems, output, wave=wave, check=check,
                            reason=(reason or "").strip() or None)


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
@REPLAN
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              envvar="MIGRATE_WORKERS", show_envvar=True,
              help="Systems of a wave at once [default: min(systems, max(2, cores))].")
@OUTPUT
def run_command(estate: Path, systems: tuple[str, ...], wave: int | None, yes: bool,
                replan: bool, workers: int | None, output: str) -> int:
    """The whole pipeline, wave after wave: census, plan, (sandbox up), provision, transfer,
    cutover (verified; rolled back by itself on failure), register, runbooks and report.
    Systems of a wave move in parallel; a re-run continues where the last one stopped.
    It applies the reviewed plan.json (planned first when there is none) and refuses,
    naming what changed, when the estate no longer gives it (re-plan, or --replan)."""
    from migrate.cli.progress import display_for
    from migrate.core.errors import EXIT_STAGE_FAILED, StageFailed
    from migrate.orchestrate import run as runs

    context = pipeline.open_context(estate, apply=True, replan=replan)
    question = (f"Move {scope_text(systems, wave)} to the "
                f"{context.estate.settings.cloud.target} cloud (provision, transfer, "
                f"cut over)? {POSTGRESQL_RESTART}")
    if not sys.stdin.isatty():  # refused without --yes before anything is written
        confirm_or_refuse(question, yes)
    context.planned  # noqa: B018 - a changed estate is refused (PlanChanged) before the question
    confirm_or_refuse(question, yes)
    with display_for(err) as display:  # live table on a terminal, stage lines otherwise
        outcome = runs.run_estate(context, str(estate), wave, list(systems) or None,
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
    from migrate.orchestrate import status

    document = status.estate_status(pipeline.open_context(estate))
    if output == "json":
        emit_json(document)
        return
    out.print(rich_table("Status", status.STATUS_COLUMNS, status.status_rows(document)))
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
@OPERATOR
@OUTPUT
def runbook_command(estate: Path, out_dir: Path | None, output: str) -> int:
    """Write the plan runbooks (per system and wave) and the evidence runbooks (from the
    journal) as Markdown and self-contained HTML. When the journal does not verify, the
    evidence runbooks say so and the command exits 4."""
    context = open_planned(estate)
    written = pipeline.write_runbooks(context, str(estate), out_dir)
    checked = context.journal.verify()
    if output == "json":
        return emit_json_with_error({"files": [str(p) for p in written],
                                     "journal": checked.as_dict()},
                                    lambda: refuse_unverified(checked))
    out.print(f"{len(written)} runbook files written to {written[0].parent.parent}")
    refuse_unverified(checked)
    return 0


@cli.command("report")
@ESTATE
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Report as of this day (YYYY-MM-DD): journal entries after it are left out "
                   "[default: today].")
@click.option("--monthly", is_flag=True,
              help="The monthly report: as of the last day of the previous month.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the report files [default: ESTATE/.migrate/reports/DATE].")
@OPERATOR
@OUTPUT
def report_command(estate: Path, as_of: Any, monthly: bool, out_dir: Path | None,
                   output: str) -> int:
    """Progress per department and wave, and the assessment figures (系统联通率 ...), as
    terminal tables, Markdown, HTML with charts, CSV and JSON."""
    from migrate.stages import report

    day = as_date(as_of) or (report.monthly_as_of(date.today()) if monthly else date.today())
    document, written = pipeline.write_report(open_planned(estate), day, out_dir)
    if output == "json":  # one document, the refusal in it
        return emit_json_with_error({**document, "files": [str(p) for p in written]},
                                    lambda: refuse_unverified_report(document))
    for table in report.terminal_tables(document):
        out.print(rich_table(table.title, table.columns, table.rows))
    out.print(f"report as of {day.isoformat()} written to {written[0].parent}")
    refuse_unverified_report(document)
    return 0


def refuse_unverified_report(document: dict) -> None:
    """A report from a journal that does not verify is written (it says so on its first
    lines) but the command fails: nobody should file it unread."""
    checked = document["journal"]["verification"]
    if checked is not None and not checked["ok"]:
        raise JournalCorrupt(f"the report was made from a journal that does not verify: "
                             f"{checked['problem']}",
                             "run 'migrate audit verify' and restore the journal from a backup; "
                             "the report written says it cannot be relied on")


def ask_to_trust(check: Any) -> bool:
    """On a terminal: a new key is confirmed with y; a CHANGED one only by typing its new
    fingerprint in full."""
    where, key = check.target.label(), f"{check.offered.key_type} {check.offered.fingerprint}"
    if check.state == "new":
        return click.confirm(f"{where} offers {key}. Is that its key (check on the host: "
                             "ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub)?", default=False,
                             err=True)  # stdout: the answer only
    err.print(f"[bold red]HOST KEY CHANGED[/bold red] for {where}: it offers {key}; recorded "
              + ", ".join(f"{k.key_type} {k.fingerprint}" for k in check.recorded), highlight=False)
    err.print("Someone may be intercepting the connection. Replace the recorded key only if "
              "you know why it changed.", highlight=False)
    typed = click.prompt("Type the new fingerprint to replace it (empty: keep the old key)",
                         default="", show_default=False, err=True)
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
    from migrate.adapters import access
    from migrate.stages import trust

    if yes and not accepted:
        raise click.UsageError("--yes trusts only the keys named with --accept SHA256:...: "
                               "give the fingerprints you expect (a job must not accept keys "
                               "it was not told about)")
    context = pipeline.context_of(access.open_estate_for_sources(estate))
    confirm = None if yes or trust.unattended() else ask_to_trust
    outcome = trust.trust_estate(
        context, trust.trust_targets(context.estate, systems, hosts, port), accepted, confirm)
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
        emit_json({**document, "error": error_fields(error)})
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
@click.option("--watch", "watch_s", type=click.IntRange(0, 600), default=10, show_default=True,
              metavar="SECONDS",
              help="Watch each database this long for the tables written while the source "
                   "serves (proposed as volatile_tables); 0 watches none.")
@OUTPUT
def discover_command(estate: Path, systems: tuple[str, ...], addresses: tuple[str, ...],
                     user: str, key_file: Path | None, port: int, watch_s: int,
                     output: str) -> int:
    """Log in to source hosts (host keys checked) and record what is there: OS, packages,
    listening services and units, data directories, databases and roles, cron jobs, use
    from access logs. Writes .migrate/discovery/ID.json; for a new system (--host) a draft
    manifest that validates; for an existing one what its manifest misses."""
    from migrate.adapters import access
    from migrate.stages import discovery

    if addresses and key_file is None:
        raise click.UsageError("--host needs --key FILE (the private key that logs in)")
    context = pipeline.context_of(access.open_estate_for_sources(estate))
    new_hosts = [access.Login(a, user, key_file, port) for a in addresses if key_file]
    outcomes = discovery.discover_systems(context, list(systems), new_hosts, stage_progress,
                                          watch_s)
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
    """Check the estate's run journal (append-only, hash-chained, signed) or an evidence
    bundle, and hand over what a third party needs to check them."""


PUBLIC_KEY = click.option("--public-key", "public_key_file", default=None, metavar="FILE",
                          type=click.Path(dir_okay=False, exists=True, path_type=Path),
                          help="The estate's public key (PEM, from 'migrate audit key'): the "
                               "journal must be signed with it.")
CHECKPOINT = click.option("--checkpoint", "checkpoints", multiple=True, metavar="FILE",
                          type=click.Path(dir_okay=False, exists=True, path_type=Path),
                          help="Checkpoints kept elsewhere (from 'migrate audit checkpoint'; "
                               "repeatable): the journal must still hold what they signed.")


@audit.command("verify")
@click.argument("target", metavar="ESTATE|ARCHIVE", type=click.Path(path_type=Path))
@PUBLIC_KEY
@CHECKPOINT
@OUTPUT
def audit_verify(target: Path, public_key_file: Path | None, checkpoints: tuple[Path, ...],
                 output: str) -> int:
    """Check the journal: each entry's hash and Ed25519 signature, the chain, and the signed
    checkpoints (the state folder's, the copy outside the estate, and any given); name the
    first entry and check that fail. Given an evidence archive (.tar.gz), check its
    manifest and signature, then its journal."""
    from migrate.core.signing import read_public_file

    public = read_public_file(public_key_file) if public_key_file else None
    if target.is_file():
        return verify_archive(target, public, list(checkpoints), output)
    journal = pipeline.open_context(target).journal
    result = journal.verify(public_key=public, checkpoints=checkpoints)
    if output == "json":  # one document, the failure in it
        return emit_json_with_error(result.as_dict(), lambda: refuse_unverified(result))
    if result.ok:
        out.print(f"[green]journal verified[/green]: {result.entries} entries, "
                  f"{result.status}, key {result.key_id or '-'}, {result.checkpoints} "
                  f"checkpoint files agree; last hash {result.last_hash}", highlight=False)
        for warning in result.warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False)
    refuse_unverified(result)
    return 0


def refuse_unverified(result: Any) -> None:
    if not result.ok:
        raise JournalCorrupt(f"journal does not verify ({result.check}): {result.problem}",
                             "restore the journal from a backup; never edit it by hand")


def verify_archive(archive: Path, public: str | None, checkpoints: list[Path],
                   output: str) -> int:
    from migrate.stages.evidence import BundleInvalid, verify_bundle

    check = verify_bundle(archive, public, checkpoints)

    def refuse() -> None:
        if not check.ok:
            raise BundleInvalid(f"evidence bundle {archive} does not verify: {check.problem}",
                                "obtain the bundle again from its source; never edit it")

    if output == "json":
        return emit_json_with_error(check.as_dict(), refuse)
    if check.ok and check.journal is not None:
        out.print(f"[green]evidence bundle verified[/green]: {check.files} files match "
                  f"the signed manifest; journal {check.journal.entries} entries, "
                  f"{check.journal.status}, key {check.journal.key_id}", highlight=False)
    refuse()
    return 0


@audit.command("key")
@ESTATE
@click.option("--to", "to_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the PEM here [default: print it].")
@OUTPUT
def audit_key(estate: Path, to_file: Path | None, output: str) -> None:
    """The public key the estate's journal is signed with (PEM), for auditors."""
    from migrate.core.signing import key_id, public_pem

    journal = pipeline.open_context(estate).journal
    public = journal.public_key()
    if public is None:
        raise JournalCorrupt("the journal is not signed (legacy or empty): it has no key",
                             "run any command that journals (e.g. 'migrate plan') to begin "
                             "signing")
    if output == "json":
        if to_file is not None:
            to_file.write_text(public_pem(public), encoding="utf-8")
        emit_json({"public_key": public, "key_id": key_id(public), "pem": public_pem(public),
                   "file": str(to_file) if to_file else None})
        return
    write_or_print(public_pem(public), to_file)


@audit.command("checkpoint")
@ESTATE
@click.option("--to", "to_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Append it to this file [default: print it].")
@OUTPUT
def audit_checkpoint(estate: Path, to_file: Path | None, output: str) -> None:
    """The latest signed checkpoint (entry count and head hash), to record somewhere the
    estate's operators cannot change (e.g. the bureau's mail); verify with --checkpoint."""
    journal = pipeline.open_context(estate).journal
    lines = journal.checkpoints_path.read_text(encoding="utf-8").splitlines() \
        if journal.checkpoints_path.is_file() else []
    if not lines:
        raise JournalCorrupt("the journal has no checkpoints (unsigned or empty)",
                             "run any command that journals to begin signing")
    if to_file is not None:
        with open(to_file, "a", encoding="utf-8") as handle:
            handle.write(lines[-1] + "\n")
    if output == "json":
        emit_json({"checkpoint": json.loads(lines[-1]),
                   "file": str(to_file) if to_file else None})
    elif to_file is None:
        click.echo(lines[-1])
    else:
        out.print(f"checkpoint appended to {to_file}", highlight=False)


def write_or_print(text: str, to_file: Path | None) -> None:
    if to_file is None:
        click.echo(text, nl=False)
        return
    to_file.write_text(text, encoding="utf-8")
    out.print(f"written to {to_file}", highlight=False)


@cli.group()
def evidence() -> None:
    """Evidence for auditors: one signed archive of runbooks, report, journal and artifacts."""


@evidence.command("export")
@ESTATE
@click.option("--output", "archive", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The archive to write (.tar.gz).")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The report's day (YYYY-MM-DD) [default: today].")
@OPERATOR
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (CI).")
def evidence_export(estate: Path, archive: Path, as_of: Any, as_json: bool) -> None:
    """Write ESTATE's evidence bundle: runbooks, report, journal with checkpoints and public
    key, plan, census lists and cited artifacts, a sha256 manifest and its signature; links
    inside are relative. Check it anywhere with 'migrate audit verify FILE'."""
    from migrate.orchestrate.evidence import export_estate

    exported = export_estate(pipeline.open_context(estate), archive,
                             as_date(as_of) or date.today())
    if as_json or os.environ.get(OUTPUT_ENV) == "json":
        emit_json(exported.as_dict())
        return
    out.print(f"evidence bundle written to {exported.path}: {exported.files} files in its "
              f"signed manifest, "
              f"{exported.bytes} bytes, manifest sha256 {exported.manifest_digest}",
              highlight=False)


def error_fields(error: MigrateError) -> dict:
    return error.as_dict()  # the shape a system's failure in the results has too


def error_document(error: MigrateError) -> dict:
    problems = error.problems if isinstance(error, InvalidInput) else []
    return {"error": error_fields(error), "problems": [p.as_dict() for p in problems]}


def report_error(error: MigrateError, output: str) -> None:
    if output == "json" and not SESSION.emitted:
        emit_json(error_document(error))
        return
    problems = error.problems if isinstance(error, InvalidInput) else []
    # the message may quote what a host or a tool said: text, never markup
    err.print(f"[red]error[/red]: {escape(error.message)}", highlight=False)
    if problems:
        print_problems(problems, "", "red")
    if error.hint:
        err.print(f"hint: {error.hint}", markup=False, highlight=False)
    if SESSION.verbosity:
        err.print(f"({type(error).__name__}, exit {error.exit_code})", highlight=False)


SHORT_OUTPUT = re.compile(r"-[hvy]*o=?(.*)")  # -o json, -ojson, -vojson, -vo json


def wants_json(argv: list[str]) -> bool:
    """Whether JSON was asked for, in every spelling Click accepts (the last one given wins,
    as in Click), else by MIGRATE_OUTPUT: the error boundary needs it also when parsing
    failed."""
    chosen, flag = None, False
    tokens = iter(argv)
    for token in tokens:
        short = SHORT_OUTPUT.fullmatch(token)
        if token == "--":
            break
        if token == "--output":
            chosen = next(tokens, "")
        elif token.startswith("--output="):
            chosen = token.removeprefix("--output=")
        elif short:
            chosen = short.group(1) or next(tokens, "")
        flag = flag or token == "--json"  # evidence export (its --output is the archive)
    return flag or (os.environ.get(OUTPUT_ENV) if chosen is None else chosen) == "json"


class Aborted(MigrateError):
    """The user answered no at a confirmation (Click's convention: exit 1)."""

    exit_code = EXIT_FAILURE


class UsageError(MigrateError):
    """A command line Click could not parse (Click's own error, for the JSON document)."""

    exit_code = EXIT_INVALID_INPUT


class Interrupted(MigrateError):
    """Ctrl-C while the command ran."""

    exit_code = EXIT_INTERRUPTED


def as_migrate_error(error: click.ClickException) -> MigrateError:
    """A usage error as the boundary reports every error (exit 2: nothing was changed)."""
    hint = None
    if isinstance(error, click.UsageError) and error.ctx is not None:
        hint = f"see '{error.ctx.command_path} --help'"
    usage = UsageError(error.format_message(), hint)
    if error.exit_code != 2:
        usage.exit_code = error.exit_code
    return usage


def report_stop(stop: MigrateError, output: str) -> int:
    if output == "json":
        report_error(stop, output)
    else:
        err.print(stop.message, highlight=False)
    return stop.exit_code


def report_unexpected(error: Exception, output: str) -> None:
    if SESSION.verbosity >= 2:
        err.print_exception()
    failure = MigrateError(f"unexpected failure: {type(error).__name__}: {error}",
                           "run with -vv (or MIGRATE_DEBUG=1) for a traceback, and report it")
    report_error(failure, output)


def named_command(args: list[str]) -> str:
    """The command the arguments name ('migrate audit verify'), options and their values
    left out, for messages."""
    names, command = ["migrate"], cli
    for word in command_words(args):
        if not isinstance(command, click.Group):
            break
        try:
            command = command.get_command(click.Context(command), word)
        except Exception:  # naming the command must not hide the error being reported
            break
        if command is None:
            break
        names.append(word)
    return " ".join(names)


def command_words(args: list[str]) -> list[str]:
    """The words that are not options nor --output's value (``migrate -o json transfer`` is
    a usage error that still names transfer)."""
    words, after_output = [], False
    for arg in args:
        if not after_output and not arg.startswith("-"):
            words.append(arg)
        after_output = arg in OUTPUT_FORMAT_NAMES
    return words


OUTPUT_FORMAT_NAMES = ("-o", "--output")


def extra_not_installed(error: Exception, args: list[str]) -> EnvironmentNotReady | None:
    """A command that needs a module of an extra that is not installed (exit 3, naming the
    extra); None for any other error."""
    if not isinstance(error, ModuleNotFoundError):
        return None
    return missing_extra(error, named_command(args))


def run_with_boundary(args: list[str], output: str) -> int:
    try:
        code = cli.main(args=args, prog_name="migrate", standalone_mode=False)
    except MigrateError as error:
        if SESSION.verbosity >= 2:
            err.print_exception()
        report_error(error, output)
        return error.exit_code
    except click.exceptions.NoArgsIsHelpError as error:  # usage and commands, as Click does
        error.show()
        return EXIT_INVALID_INPUT
    except click.ClickException as error:
        if output != "json":
            error.show()
            return EXIT_INVALID_INPUT if error.exit_code == 2 else error.exit_code
        usage = as_migrate_error(error)
        report_error(usage, output)
        return usage.exit_code
    except click.exceptions.Abort as abort:  # Click turns a Ctrl-C while running into one
        if isinstance(abort.__cause__, KeyboardInterrupt):
            return report_stop(Interrupted("interrupted"), output)
        return report_stop(Aborted("aborted"), output)  # "n" (or Ctrl-C) at a prompt
    except KeyboardInterrupt:
        return report_stop(Interrupted("interrupted"), output)
    except Exception as error:  # the last line of the boundary: no traceback for users
        needs = extra_not_installed(error, args)
        if needs is not None:
            report_error(needs, output)
            return needs.exit_code
        if os.environ.get("MIGRATE_DEBUG") == "1":
            raise
        report_unexpected(error, output)
        return EXIT_FAILURE
    return code if isinstance(code, int) else 0


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    SESSION.reset(args)
    code = run_with_boundary(args, "json" if wants_json(args) else "table")
    if SESSION.verbosity:
        err.print(f"done in {time.monotonic() - SESSION.started:.1f} s (exit {code})",
                  highlight=False)
    sys.exit(code)
