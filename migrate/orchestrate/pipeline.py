"""Strings the stages together. A stage imports no other stage and nothing of the orchestration
(the layers: tests/unit/test_import_graph.py); this module imports them, and hands a stage
what it needs of another (verification: ``system_instances``).

Every function here takes plain arguments and returns model objects or documents; printing and
exit codes are the CLI's business.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from migrate.core import census_report
from migrate.core.census import CensusResult, ObservedUse, take_census
from migrate.core.errors import (
    GuardRefused,
    InvalidInput,
    MigrateError,
    PlanChanged,
    Problem,
    StageFailed,
    StageFailure,
)
from migrate.core.journal import Journal, digest_bytes, digest_file
from migrate.core.loader import Estate
from migrate.core.plan import PLAN_SCHEMA_VERSION, build_plan, plan_changes, render_plan
from migrate.core.plan_document import check_plan_document
from migrate.core.state import estate_inputs, read_secret, state_dir
from migrate.core.validate import validate_estate
from migrate.stages.provision import (
    Provisioner,
    ProvisionSettings,
    StackResult,
    StackTarget,
    stack_outputs,
    targets_for,
)
from migrate.targets import Target
from migrate.targets.context import Context, PlanOutcome
from migrate.targets.contract import Instance, has_host_keys, read_instance


def open_estate(path: str | Path) -> Estate:
    return validate_estate(path)


def open_context(path: str | Path, *, apply: bool = False, replan: bool = False,
                 current: bool = False) -> Context:
    """The estate at ``path``, validated, as the one context of a command; its plan is
    ``stage_plan``'s with these options."""
    return context_of(open_estate(path), apply=apply, replan=replan, current=current)


def context_of(estate: Estate, *, apply: bool = False, replan: bool = False,
               current: bool = False) -> Context:
    def planner(context: Context) -> PlanOutcome:
        return stage_plan(context, apply=apply, replan=replan, current=current)

    return Context(estate, state_dir(estate), planner)


def context_for_plan(estate: Estate, plan: dict) -> Context:
    """A context that works to ``plan`` as given, neither checked against the estate nor
    journaled: for callers outside a command that made the plan themselves (a variant of
    the estate's, in the sandbox tests and the benchmarks)."""
    def planner(context: Context) -> PlanOutcome:
        return PlanOutcome(plan, run_census(context), context.plan_path, False)

    return Context(estate, state_dir(estate), planner)


def census_date(estate: Estate, as_of: date | None) -> date:
    return as_of or estate.settings.census.as_of or date.today()


def run_census(context: Context, as_of: date | None = None) -> CensusResult:
    estate = context.estate
    return take_census(estate.systems, estate.settings.cloud.protection_level,
                       census_date(estate, as_of), observed=observed_uses(context))


def observed_uses(context: Context) -> dict[str, ObservedUse]:
    """Use that ``migrate discover`` saw in the source hosts' access logs, per system."""
    estate = context.estate
    folder = context.state_dir / "discovery"
    if not folder.is_dir():
        return {}
    from migrate.stages.discovery.use import observed_uses as read_uses

    found = {}
    for system_id, use in read_uses(folder, sorted(estate.systems)).items():
        day = (use.get("discovered_at") or "")[:10]
        source = f"{Path(use['document']).name}" + (f" of {day}" if day else "")
        found[system_id] = ObservedUse(
            use["monthly_active_users"],
            date.fromisoformat(use["last_used"]) if use["last_used"] else None,
            use["month"], f"the access logs, discovery {source}")
    return found


def write_census_reports(context: Context, census: CensusResult, folder: Path | None = None
                         ) -> list[Path]:
    started = time.monotonic()
    estate = context.estate
    tables = census_report.census_tables(estate.systems, census)
    target = folder or context.state_dir / "reports" / "census"
    written = census_report.write_census_files(tables, target, estate.settings.estate,
                                               census.as_of.isoformat())
    context.journal.append(
        "census", inputs=estate_inputs(estate),
        outputs={"as_of": census.as_of.isoformat(), "counts": census.counts(),
                 "dispositions": {s: v.disposition for s, v in census.verdicts.items()},
                 "files": {str(p): digest_file(p) for p in written}},
        duration_s=time.monotonic() - started)
    return written


def read_previous_plan(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidInput([Problem(
            str(path), None, "", f"previous plan is unreadable: {error}",
            "delete it to plan from scratch (addresses may change)")]) from None
    if previous.get("schema_version") != PLAN_SCHEMA_VERSION:
        return None
    return previous


def make_plan(context: Context, as_of: date | None = None, out: Path | None = None,
              write: bool = True) -> PlanOutcome:
    started = time.monotonic()
    census = run_census(context, as_of)
    path = out or context.plan_path
    plan = build_plan(context.estate, census, previous=read_previous_plan(path))
    text = render_plan(plan)
    changed = not path.is_file() or path.read_text(encoding="utf-8") != text
    if write:
        if changed:
            write_atomically(path, text)
        journal_plan(context, path, text, plan, changed, started)
    return PlanOutcome(plan, census, path, changed)


def last_plan_digest(journal: Journal) -> str | None:
    """The digest of the plan the journal's last ``plan`` entry recorded."""
    digest = None
    for entry in journal.entries():
        if entry.get("stage") == "plan":
            digest = (entry.get("outputs") or {}).get("digest")
    return digest


def journal_plan(context: Context, path: Path, text: str, plan: dict, changed: bool,
                 started: float) -> None:
    """A ``plan`` entry, only when plan.json was (re)written or the plan differs from the one
    the journal recorded last: a command, or a re-run, with the same plan adds none."""
    journal = context.journal
    digest = digest_bytes(text.encode())
    if not changed and last_plan_digest(journal) == digest:
        return
    journal.append("plan", inputs=estate_inputs(context.estate),
                   outputs={"plan": str(path), "digest": digest, "changed": changed,
                            "waves": plan["waves"]},
                   duration_s=time.monotonic() - started)


PREVIEW_PLAN = "plan.preview.json"


def stage_plan(context: Context, *, apply: bool = False, replan: bool = False,
               current: bool = False) -> PlanOutcome:
    """The plan a stage command works to: the reviewed plan.json, as ``migrate plan`` wrote it.

    With no plan.json yet, the estate is planned first (and ``note`` says so). When the
    estate still gives the same plan (what provisioning and the moves act on; the census
    date, the files' digests and the wording of reasons may have moved on), plan.json is
    used as it is. When it no longer does: with ``replan`` the new plan replaces plan.json;
    with ``apply`` (provision, run) PlanChanged is raised, naming what changed; with
    ``current`` (preview: what provisioning the estate as it is now would do) the new plan
    is written beside it as plan.preview.json, neither reviewed nor journaled, and used;
    otherwise plan.json is used as reviewed. ``drift`` says what the estate changed since."""
    started = time.monotonic()
    estate, path = context.estate, context.plan_path
    census = run_census(context)
    stored, mismatch = _stored_plan(path)
    fresh = build_plan(estate, census, previous=stored)
    if stored is None and mismatch is None:
        return _replace_plan(context, fresh, census, path, started,
                             f"no plan yet: planned first, written to {path}")
    changes = [mismatch] if mismatch else plan_changes(stored, fresh)
    if changes and replan:
        return _replace_plan(context, fresh, census, path, started,
                             f"re-planned ({'; '.join(changes)}), written to {path}")
    if changes and apply:
        raise PlanChanged(
            f"the estate no longer matches the reviewed plan {path}:\n"
            + "\n".join(f"  - {line}" for line in changes), changes,
            hint=f"review the new plan with 'migrate plan {estate.display}' (it rewrites "
                 "plan.json) and run again, or pass --replan to apply the estate as it is now")
    if changes and current:
        side = path.with_name(PREVIEW_PLAN)
        write_atomically(side, render_plan(fresh))
        return PlanOutcome(fresh, census, side, False, drift=tuple(changes))
    if stored is None:  # a plan.json of another schema version: nothing to keep using
        return _replace_plan(context, fresh, census, path, started,
                             f"{mismatch}: planned afresh, written to {path}")
    gone = sorted(s["id"] for s in stored["systems"] if s["id"] not in estate.systems)
    if gone:  # the reviewed plan cannot be used without its systems' manifests
        raise InvalidInput([Problem(
            str(path), None, "systems", f"plans {', '.join(gone)}, whose manifest is gone",
            f"re-plan ('migrate plan {estate.display}') once the estate is as it should be")],
            f"the reviewed plan {path} plans systems the estate no longer has")
    journal_plan(context, path, path.read_text(encoding="utf-8"), stored, False, started)
    return PlanOutcome(stored, census, path, False, drift=tuple(changes))


def _stored_plan(path: Path) -> tuple[dict | None, str | None]:
    """plan.json checked against its model, or None; and why it cannot be compared."""
    if not path.is_file():
        return None, None
    stored = read_previous_plan(path)
    if stored is None:
        found = json.loads(path.read_text(encoding="utf-8")).get("schema_version")
        return None, (f"{path.name} is of schema version {found}, this migrate plans "
                      f"version {PLAN_SCHEMA_VERSION}")
    check_plan_document(stored, str(path))
    return stored, None


def _replace_plan(context: Context, plan: dict, census: CensusResult, path: Path,
                  started: float, note: str) -> PlanOutcome:
    text = render_plan(plan)
    write_atomically(path, text)
    journal_plan(context, path, text, plan, True, started)
    return PlanOutcome(plan, census, path, True, note=note)


def systems_of_wave(context: Context, wave: int) -> list[str]:
    """The systems of one wave of the command's plan."""
    waves = {w["number"]: w["systems"] for w in context.plan["waves"]}
    if wave not in waves:
        raise InvalidInput([], f"the plan has no wave {wave} (waves: "
                               f"{', '.join(map(str, sorted(waves))) or 'none'})")
    return list(waves[wave])


def load_plan(context: Context) -> dict:
    path = context.plan_path
    previous = read_previous_plan(path)
    if previous is None:
        raise InvalidInput([Problem(str(path), None, "", "no plan yet",
                                    f"run 'migrate plan {context.estate.display}' first")])
    return previous


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                     prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
        temporary = Path(handle.name)
    temporary.replace(path)


# ---------------------------------------------------------------- provisioning


def provision_settings(context: Context, plan_file: Path) -> ProvisionSettings:
    """What the estate's cloud target gives its stacks (config, engine environment,
    passphrase), with the names its instances must resolve that no DNS of the cloud serves."""
    estate = context.estate
    settings = context.target.provision_settings(estate, plan_file)
    hosts = context.surroundings.host_entries(estate)
    return replace(settings, config={
        **settings.config, "migrate:hosts": json.dumps(hosts, sort_keys=True)})


DESTROYING = ("destroy", "preview_destroy")


@dataclass(frozen=True)
class ProvisionOutcome:
    operation: str
    results: list[StackResult]
    source_traces_left: dict[str, dict] = field(default_factory=dict)  # destroy's, by system

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.results)

    def as_dict(self) -> dict:
        document = {"operation": self.operation, "changed": self.changed,
                    "stacks": [r.as_dict() for r in self.results]}
        if self.operation in DESTROYING:
            document["source_traces_left"] = self.source_traces_left
        return document


def run_stacks(context: Context, operation: str, system_ids: list[str] | None = None,
               progress: Callable[[str], None] | None = None, *,
               leave_source_traces: bool = False) -> ProvisionOutcome:
    """preview, preflight (``check_cloud``), provision (up), destroy or preview_destroy (what
    destroy would delete) the stacks of the chosen systems (all by default), to the command's
    plan (the stack programs read its plan.json). destroy and its preview refuse systems
    whose source hosts still hold the move's traces (``refuse_source_traces``) unless
    ``leave_source_traces``."""
    started = time.monotonic()
    estate, outcome = context.estate, context.planned
    networks, systems = targets_for(outcome.plan, system_ids)
    left = refuse_source_traces(context, [t.key for t in systems], leave_source_traces) \
        if operation in DESTROYING else {}
    settings = provision_settings(context, outcome.path.resolve())
    provisioner = Provisioner(settings, progress)
    journal = context.journal
    try:
        if operation == "preview":
            results = provisioner.preview(networks, systems)
        elif operation == "preflight":
            results = provisioner.preflight(networks, systems)
        elif operation == "provision":
            results = provisioner.up(networks, systems)
        elif operation in DESTROYING:
            chosen = {t.key for t in systems}
            keep = {s["network"] for s in outcome.plan["systems"] if s["id"] not in chosen}
            results = provisioner.destroy(networks, systems, keep, operation)
        else:
            raise ValueError(operation)
    except StageFailed as error:
        journal.append(operation, result="failed", inputs=estate_inputs(estate),
                       details={"error": error.message},
                       duration_s=time.monotonic() - started)
        raise
    if operation not in ("preview", "preflight", "preview_destroy"):  # those change nothing
        for result in results:
            system = result.stack.removeprefix("sys-") if result.stack.startswith("sys-") \
                else None
            traces = {"source_traces_left": left[system]} if system in left else {}
            journal.append(operation, system=system, inputs=estate_inputs(estate),
                           outputs={"stack": result.stack, "changes": result.changes,
                                    "outputs": result.outputs, **traces},
                           result="changed" if result.changed else "unchanged",
                           duration_s=result.seconds)
    return ProvisionOutcome(operation, results, left)


def refuse_source_traces(context: Context, system_ids: list[str], leave: bool
                         ) -> dict[str, dict]:
    """The chosen systems whose source hosts still hold the move's traces, by the journal
    (``standing.source_traces``): destroying their targets would leave a replication tunnel
    retrying an address the cloud may give to someone else, and nothing could remove the
    traces any more (the rollback that does needs the targets). Refused, every such system
    named and nothing changed, unless ``leave`` (the sources are gone or unreachable):
    then they are returned, for the command to say and the journal to keep."""
    from migrate.core.standing import SUCCESS, source_traces

    entries = list(context.journal.entries())
    left = {sid: found for sid in system_ids if (found := source_traces(entries, sid))}
    if not left or leave:
        return left
    named = "; ".join(
        f"{sid}: cut over {found['at']} (its targets serve)"
        if found["stage"] == "cutover" and found["result"] in SUCCESS
        else f"{sid}: {found['stage']} {found['result']} {found['at']}"
        for sid, found in left.items())
    chosen = " ".join(f"--system {sid}" for sid in left)
    raise GuardRefused(
        f"destroying the targets of {', '.join(left)} would leave the move's traces on their "
        f"source hosts ({named}): the migration key and any replication tunnel unit "
        "(retrying the gone target's address for ever), replication account or settings, "
        "which a rollback removes only while the targets exist; nothing was destroyed",
        hint=f"roll back first ('migrate rollback {context.estate.display} {chosen} --yes'), "
             "then destroy; if the source hosts are gone or unreachable, destroy with "
             "--leave-source-traces (and remove what is left by hand once they answer)")


def check_cloud(context: Context, system_ids: list[str] | None = None,
                progress: Callable[[str], None] | None = None) -> ProvisionOutcome | None:
    """What the plan needs from the cloud (images, flavors, volume type, networks, quotas),
    checked by the preflight of every stack of the chosen systems (all by default), before
    anything is provisioned or moved; nothing in the cloud changes. Every problem of every
    stack in one EnvironmentNotReady. None when the target's programs check nothing."""
    if not context.target.checks_cloud:
        return None
    return run_stacks(context, "preflight", system_ids, progress)


# ---------------------------------------------------------------- runbooks and reports


def write_runbooks(context: Context, estate_arg: str, out_dir: Path | None = None
                   ) -> list[Path]:
    from migrate.stages import runbook

    started = time.monotonic()
    estate, plan, journal = context.estate, context.plan, context.journal
    written = runbook.write_runbooks(estate, plan, journal,
                                     out_dir or runbook.default_runbooks_dir(estate),
                                     estate_arg=estate_arg)
    journal.append("runbook", inputs=estate_inputs(estate),
                   outputs={"files": {str(p): digest_file(p) for p in written}},
                   duration_s=time.monotonic() - started)
    return written


def write_report(context: Context, as_of: date, out_dir: Path | None = None
                 ) -> tuple[dict, list[Path]]:
    from migrate.stages import report

    started = time.monotonic()
    estate, plan, journal = context.estate, context.plan, context.journal
    document = report.build_report(estate, plan, journal.entries(), as_of,
                                   journal.verify() if journal.path.is_file() else None)
    written = report.write_report(document, out_dir or context.state_dir / "reports"
                                  / as_of.isoformat())
    journal.append("report", inputs=estate_inputs(estate),
                   outputs={"as_of": as_of.isoformat(),
                            "files": {str(p): digest_file(p) for p in written}},
                   duration_s=time.monotonic() - started)
    return document, written


# ---------------------------------------------------------------- the exchange platform


def platform_client(context: Context, system_id: str) -> Any:
    """A client signed with the system's app key and secret, verifying the platform's TLS
    against the estate's CA bundle (in the sandbox: connecting to the platform machine);
    both files read now (the client connects on its first request): InvalidInput naming
    exchange.ca_bundle of migrate.yaml when the bundle cannot be used."""
    from migrate.adapters.exchange import CABundleError, ExchangeClient  # the stdlib's only

    estate = context.estate
    system = estate.systems[system_id]
    if system.exchange is None:
        raise InvalidInput([estate.documents[system_id].problem(
            ("exchange",), "no exchange section: nothing to register")])
    connect_address = context.surroundings.platform_address(estate)
    context.guard_address(connect_address
                          or urllib.parse.urlsplit(estate.settings.exchange.url).hostname or "")
    try:
        return ExchangeClient(estate.settings.exchange.url,
                              ca_bundle=str(estate.root / estate.settings.exchange.ca_bundle),
                              app_key=system.exchange.app_key,
                              app_secret=read_secret(estate, system.exchange.app_secret),
                              connect_address=connect_address)
    except CABundleError as error:
        raise InvalidInput([estate.settings_doc.problem(
            ("exchange", "ca_bundle"), error.message, error.hint)],
            "the exchange platform's CA bundle (exchange.ca_bundle) cannot be used") from None


def register_systems(context: Context, system_ids: list[str] | None = None,
                     progress: Callable[[str], None] | None = None,
                     side: str | None = None) -> list[dict]:
    """Register each chosen migrating system's endpoint and catalogue on the platform. The
    endpoint names where the system serves: its targets once it is cut over, else its
    source hosts (``side`` forces one)."""
    from migrate.core.stackplan import select_system
    from migrate.core.standing import progress_flags
    from migrate.stages.register import register_catalogue

    estate, plan = context.estate, context.plan
    chosen = system_ids or [s["id"] for s in plan["systems"]]
    journal = context.journal
    # every system's files read before the platform is changed for any
    clients = {system_id: platform_client(context, system_id) for system_id in chosen}
    results = []
    for system_id in chosen:
        started = time.monotonic()
        planned = select_system(plan, system_id)
        with clients[system_id] as client:
            where = side or ("target" if progress_flags(journal.entries(), system_id)["cut_over"]
                             else "source")
            result = register_catalogue(estate.systems[system_id], planned, client, where)
        journal.append("register", system=system_id, inputs=estate_inputs(estate),
                       outputs=result, result="changed" if result["changed"] else "unchanged",
                       duration_s=time.monotonic() - started)
        if progress:
            progress(f"{system_id}: {result['linked']}/{len(result['resources'])} resources "
                     "linked (已挂接)")
        results.append(result)
    return results


def verify_systems(context: Context, system_ids: list[str] | None = None,
                   progress: Callable[[str], None] | None = None,
                   parallel: int | None = None) -> list[dict]:
    """Verify each chosen system on its targets (testinfra suites: host, data, application,
    exchange); each result says ``ok`` or ``failed`` with the failed checks (a failed one
    carries its StageFailure, as a stage that raised does)."""
    from migrate.stages.verify.run import verify_system

    chosen = system_ids or [s["id"] for s in context.plan["systems"]]
    targets = {system_id: provisioned_targets(context, system_id) for system_id in chosen}

    def one(system_id: str) -> dict:
        return verification_result(verify_system(context, system_id, targets[system_id],
                                                 progress, instances=system_instances))

    return for_each_system(chosen, one, parallel, stage="verify")


def verification_result(result: dict) -> dict:
    """A verification's result; when checks failed, its document with its error in the shape
    of a stage that raised (``StageFailure.as_dict``), carrying that failure (verify_system
    returns it instead)."""
    if result.get("result") != "failed":
        return result
    failure = StageFailure(result["system"], "verify", StageFailed.__name__, result["error"],
                           result.get("hint"), StageFailed.exit_code,
                           result.get("duration_s", 0.0))
    checks = {k: v for k, v in result.items() if k != "hint"}
    return FailedResult(failure, {**checks, **failure.as_dict()})


def _cutover_then_verify(context: Context, system_id: str, targets: dict,
                         progress: Callable[[Any], None] | None) -> Any:
    """cutover, then verification; when a check fails the system is rolled back and this
    raises: the source stays authoritative until verification passes. The source's
    interface answers are recorded first, while it still serves."""
    from migrate.stages import move as moving
    from migrate.stages.verify.answers import record_source_answers
    from migrate.stages.verify.run import verify_system

    record_source_answers(context, system_id)
    done = moving.cutover(context, system_id, targets, progress)
    try:
        done.outputs["endpoint"] = switch_endpoint(context, system_id, "target")
    except MigrateError as error:
        verified = {"passed": False, "hint": error.hint,
                    "error": f"switching {system_id}'s endpoint on the exchange platform to "
                             f"its targets failed: {error.message}"}
    else:
        verified = verify_system(context, system_id, targets, instances=system_instances)
        done.outputs["verify"] = {k: verified[k] for k in ("run_id", "result", "counts",
                                                           "failed_checks", "duration_s")}
    if verified["passed"]:
        return done
    try:
        moving.rollback(context, system_id, targets, progress)
    except MigrateError as again:
        raise StageFailed(f"{verified['error']}; the rollback failed too: {again.message}",
                          hint=again.hint) from None
    back = _endpoint_back_to_source(context, system_id)
    raise StageFailed(f"{verified['error']}; rolled back: the source stays authoritative"
                      f"{back}", hint=verified["hint"])


def _endpoint_back_to_source(context: Context, system_id: str) -> str:
    """Point the registration back at the source after a rollback; what went wrong, if
    anything, as a sentence to add (the rollback itself stands either way)."""
    try:
        switch_endpoint(context, system_id, "source")
    except MigrateError as error:
        return (f" (its endpoint on the exchange platform still names the targets: "
                f"{error.message}; run 'migrate register {context.estate.display} --system "
                f"{system_id}' once the platform answers)")
    return ""


def switch_endpoint(context: Context, system_id: str, side: str) -> dict | None:
    """Point the platform's registration of the system at its targets (after a cutover) or
    back at its source hosts (rollback); None when the system exchanges nothing."""
    if context.estate.systems[system_id].exchange is None:
        return None
    return register_systems(context, [system_id], side=side)[0]


# ---------------------------------------------------------------- moving workloads

MOVE_STAGES = ("check_prerequisites", "transfer", "cutover", "rollback", "decommission_source")


def provisioned_targets(context: Context, system_id: str) -> dict[str, dict]:
    """The system's target instances (address, host key) as its stack's provisioning state
    holds them, read through the target contract; refused when the system was never
    provisioned or its stack was destroyed. Never from the journal: whoever can write that
    file would choose where the data goes and which host key is trusted."""
    instances = system_instances(context, system_id)
    return {name: instance.access() for name, instance in instances.items()}


def system_instances(context: Context, system_id: str) -> dict[str, Instance]:
    """The outputs of the system's stack, each instance as the contract's model; what the
    target cannot do yet with them is refused here, before a stage relies on it."""
    estate, target = context.estate, context.target
    stack = StackTarget("system", system_id).name
    outputs = stack_outputs(context.state_dir, estate.settings.cloud.target, stack)
    instances = outputs.get("instances")
    if not instances or not isinstance(instances, dict):
        raise InvalidInput([], f"{system_id} has no provisioned targets: run "
                               f"'migrate provision {estate.display} --system {system_id} --yes'")
    read = {name: read_instance(stack, name, _with_host_keys(estate, target, stack, name, found))
            for name, found in instances.items()}
    return dict(target.check_instances(estate, stack, read))


def _with_host_keys(estate: Estate, target: Target, stack: str, name: str, found: Any) -> Any:
    """The instance's outputs, with the host keys its target learns elsewhere when its
    program exports none."""
    if not isinstance(found, dict) or has_host_keys(found):
        return found
    return {**found, "host_keys": target.learn_host_keys(estate, stack, name, found)}


def move(context: Context, stage: str, system_ids: list[str] | None = None,
         progress: Callable[[Any], None] | None = None, confirmed: bool = False,
         check: bool = False, parallel: int | None = None,
         reason: str | None = None) -> list[dict]:
    """Run one moving stage for each chosen system (every planned one by default), several
    systems at once. Every system runs to its end; the results say which failed and why
    (``result``: ok or failed, with ``error`` and ``hint``; a failed one carries its
    StageFailure). ``reason`` (rollback) is journaled with the stage."""
    from migrate.stages import move as moving

    if stage not in MOVE_STAGES:
        raise ValueError(stage)
    chosen = system_ids or [s["id"] for s in context.plan["systems"]]
    targets = {system_id: provisioned_targets(context, system_id) for system_id in chosen}
    function = getattr(moving, stage)

    def one(system_id: str) -> dict:
        guard_system(context, system_id, targets[system_id])
        tagged = tag_progress(progress, system_id)
        if stage == "decommission_source":
            done = function(context, system_id, targets[system_id], tagged, confirmed=confirmed)
        elif stage == "rollback" and not check:
            done = function(context, system_id, targets[system_id], tagged, reason=reason)
            done.outputs["endpoint"] = _endpoint_back_to_source(context,
                                                                system_id) or "source"
        elif stage == "transfer" and not check:
            refuse_if_cut_over(context, system_id)
            done = function(context, system_id, targets[system_id], tagged)
        elif stage == "cutover" and not check:
            done = _cutover_then_verify(context, system_id, targets[system_id], tagged)
        else:
            done = function(context, system_id, targets[system_id], tagged, check=check)
        return {**done.as_dict(), "result": "ok"}

    return for_each_system(chosen, one, parallel, stage=stage)


def guard_system(context: Context, system_id: str, targets: dict) -> None:
    """The sandbox guard on every address a system's plays reach (its source hosts and its
    targets), before any of them starts."""
    from migrate.adapters.access import guard_addresses
    from migrate.core.stackplan import select_system

    sources = [h["address"] for h in select_system(context.plan, system_id)["source_hosts"]]
    guard_addresses(context, [*sources, *(t["address"] for t in targets.values())])


def check_source_host_keys(context: Context, system_ids: list[str]) -> int:
    """Every source host of these systems answers with the key its known_hosts records (a
    bare key exchange, what unattended ``migrate trust`` checks); HostKeyChanged or
    HostKeyUnknown before anything is changed otherwise. The number of hosts checked."""
    from migrate.adapters import access
    from migrate.stages import trust

    if not system_ids:
        return 0
    known_hosts = access.source_known_hosts(context)
    checks, unreachable = trust.check_host_keys(
        context, trust.trust_targets(context.estate, system_ids), known_hosts)
    refused = [c for c in checks if c.state != trust.SAME]
    trust.raise_for_refused(trust.TrustOutcome(known_hosts, checks, refused=refused,
                                               unreachable=unreachable))
    return len(checks)


def refuse_if_cut_over(context: Context, system_id: str) -> None:
    """A transfer after a cutover would copy the stale source over the serving target."""
    from migrate.core.standing import progress_flags

    estate = context.estate
    if progress_flags(context.journal.entries(), system_id)["cut_over"]:
        raise GuardRefused(
            f"{system_id} is cut over: its target serves and holds the newest data; a "
            "transfer would overwrite it with the source's",
            hint=f"roll back first ('migrate rollback {estate.display} --system {system_id}')"
                 " if the source is to serve again")


def tag_progress(progress: Callable[[Any], None] | None, system_id: str
                 ) -> Callable[[Any], None] | None:
    """The progress callback with each event naming its system (runs interleave)."""
    if progress is None:
        return None
    return lambda event: progress(replace(event, system=system_id))


def parallel_bound(count: int, parallel: int | None = None) -> int:
    """How many systems run at once: as asked, else as many as cores (at least 2)."""
    bound = parallel or max(2, os.cpu_count() or 2)
    return max(1, min(count, bound))


class FailedResult(dict):
    """A system's result whose stage failed: the document the commands print and the
    StageFailure it was made from (``failure``), which goes on unchanged to the command's
    error (``raise_for_failures``) and the run summary."""

    def __init__(self, failure: StageFailure, document: dict | None = None) -> None:
        super().__init__(document if document is not None else failure_document(failure))
        self.failure = failure


def failure_document(failure: StageFailure) -> dict:
    return failure.as_dict()


def for_each_system(system_ids: list[str], work: Callable[[str], dict],
                    parallel: int | None = None, *, stage: str) -> list[dict]:
    """``work`` for each system, up to ``parallel_bound`` at once, in the given order. A
    domain error fails its own system only (a FailedResult); a bug (any other exception) is
    raised once all have ended."""
    def guarded(system_id: str) -> dict:
        started = time.monotonic()
        try:
            return work(system_id)
        except MigrateError as error:
            return FailedResult(StageFailure.caught(error, stage, system_id,
                                                    time.monotonic() - started))

    if not system_ids:
        return []
    with ThreadPoolExecutor(parallel_bound(len(system_ids), parallel),
                            thread_name_prefix="migrate-system") as pool:
        futures = [pool.submit(guarded, system_id) for system_id in system_ids]
        wait(futures)
    return [future.result() for future in futures]


def failures_of(results: list[dict]) -> list[StageFailure]:
    """The failures the results carry, in their order."""
    return [r.failure for r in results if isinstance(r, FailedResult)]


def raise_for_failures(stage: str, results: list[dict]) -> None:
    """One error for the systems that failed: exit code and hint of a lone failure kept."""
    failures = failures_of(results)
    if not failures:
        return
    if len(failures) == 1:
        only = failures[0]
        raise only.error(f"{stage} of {only.system}: {only.message}")
    names = ", ".join(f.system or "" for f in failures)
    details = "; ".join(f"{f.system}: {f.message}" for f in failures)
    raise StageFailed(f"{stage} failed for {len(failures)} of {len(results)} systems "
                      f"({names}): {details}",
                      hint="the other systems completed; fix the cause and run the stage "
                           "again for the failed ones (--system)")
