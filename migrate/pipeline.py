"""Strings the stages together. Stages never import each other; this module does.

Every function here takes plain arguments and returns model objects or documents; printing and
exit codes are the CLI's business.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from migrate import census_report
from migrate.census import CensusResult, take_census
from migrate.errors import InvalidInput, Problem, StageFailed
from migrate.journal import Verification, digest_bytes, digest_file, verify_journal
from migrate.loader import Estate
from migrate.plan import PLAN_SCHEMA_VERSION, build_plan, render_plan
from migrate.provision import (
    Provisioner,
    ProvisionSettings,
    StackResult,
    ensure_passphrase_file,
    targets_for,
)
from migrate.state import estate_inputs, journal_for, read_secret, state_dir
from migrate.validate import validate_estate


def open_estate(path: str | Path) -> Estate:
    return validate_estate(path)


def census_date(estate: Estate, as_of: date | None) -> date:
    return as_of or estate.settings.census.as_of or date.today()


def run_census(estate: Estate, as_of: date | None = None) -> CensusResult:
    return take_census(estate.systems, estate.settings.cloud.protection_level,
                       census_date(estate, as_of))


def write_census_reports(estate: Estate, census: CensusResult, folder: Path | None = None
                         ) -> list[Path]:
    started = time.monotonic()
    tables = census_report.census_tables(estate.systems, census)
    target = folder or state_dir(estate) / "reports" / "census"
    written = census_report.write_census_files(tables, target, estate.settings.estate,
                                               census.as_of.isoformat())
    journal_for(estate).append(
        "census", inputs=estate_inputs(estate),
        outputs={"as_of": census.as_of.isoformat(), "counts": census.counts(),
                 "dispositions": {s: v.disposition for s, v in census.verdicts.items()},
                 "files": {str(p): digest_file(p) for p in written}},
        duration_s=time.monotonic() - started)
    return written


def audit_journal(estate: Estate) -> Verification:
    journal = journal_for(estate)
    estate_id = None
    if journal.identity_path.is_file():
        estate_id = journal.estate_id()
    return verify_journal(journal.path, estate_id)


def plan_path(estate: Estate) -> Path:
    return state_dir(estate) / "plan.json"


@dataclass(frozen=True)
class PlanOutcome:
    plan: dict
    census: CensusResult
    path: Path
    changed: bool


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


def make_plan(estate: Estate, as_of: date | None = None, out: Path | None = None,
              write: bool = True) -> PlanOutcome:
    started = time.monotonic()
    census = run_census(estate, as_of)
    path = out or plan_path(estate)
    plan = build_plan(estate, census, previous=read_previous_plan(path))
    text = render_plan(plan)
    changed = not path.is_file() or path.read_text(encoding="utf-8") != text
    if write:
        if changed:
            write_atomically(path, text)
        journal_for(estate).append(
            "plan", inputs=estate_inputs(estate),
            outputs={"plan": str(path), "digest": digest_bytes(text.encode()),
                     "changed": changed, "waves": plan["waves"]},
            duration_s=time.monotonic() - started)
    return PlanOutcome(plan, census, path, changed)


def systems_of_wave(estate: Estate, wave: int) -> list[str]:
    """The systems of one wave of the estate's plan (planned afresh, so never stale)."""
    waves = {w["number"]: w["systems"] for w in make_plan(estate).plan["waves"]}
    if wave not in waves:
        raise InvalidInput([], f"the plan has no wave {wave} (waves: "
                               f"{', '.join(map(str, sorted(waves))) or 'none'})")
    return list(waves[wave])


def load_plan(estate: Estate) -> dict:
    path = plan_path(estate)
    previous = read_previous_plan(path)
    if previous is None:
        raise InvalidInput([Problem(str(path), None, "", "no plan yet",
                                    f"run 'migrate plan {estate.display}' first")])
    return previous


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                     prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
        temporary = Path(handle.name)
    temporary.replace(path)


# ---------------------------------------------------------------- provisioning


def provision_settings(estate: Estate, plan_file: Path) -> ProvisionSettings:
    target = estate.settings.cloud.target
    state = state_dir(estate)
    config: dict[str, str] = {}
    if target == "sandbox":
        from migrate.sandbox import images, require_host

        require_host()
        images.ensure_image("cloud")
        from migrate.sandbox.estate import operator_public_key
        from migrate.sandbox.estate_plan import plan_sandbox

        sandbox = plan_sandbox(estate)
        config["migrate:authorized_keys"] = operator_public_key(estate)
        config["migrate:hosts"] = json.dumps({sandbox.exchange_host: sandbox.platform_ip})
    passphrase = ensure_passphrase_file(state, create=target == "sandbox")
    return ProvisionSettings(target, state, plan_file, passphrase, config)


@dataclass(frozen=True)
class ProvisionOutcome:
    operation: str
    results: list[StackResult]

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.results)

    def as_dict(self) -> dict:
        return {"operation": self.operation, "changed": self.changed,
                "stacks": [r.as_dict() for r in self.results]}


def run_stacks(estate: Estate, operation: str, system_ids: list[str] | None = None,
               progress: Callable[[str], None] | None = None) -> ProvisionOutcome:
    """preview, provision (up) or destroy the stacks of the chosen systems (all by default)."""
    started = time.monotonic()
    outcome = make_plan(estate)
    settings = provision_settings(estate, outcome.path.resolve())
    networks, systems = targets_for(outcome.plan, system_ids)
    provisioner = Provisioner(settings, progress)
    journal = journal_for(estate)
    try:
        if operation == "preview":
            results = provisioner.preview(networks, systems)
        elif operation == "provision":
            results = provisioner.up(networks, systems)
        elif operation == "destroy":
            chosen = {t.key for t in systems}
            keep = {s["network"] for s in outcome.plan["systems"] if s["id"] not in chosen}
            results = provisioner.destroy(networks, systems, keep)
        else:
            raise ValueError(operation)
    except StageFailed as error:
        journal.append(operation, result="failed", inputs=estate_inputs(estate),
                       details={"error": error.message},
                       duration_s=time.monotonic() - started)
        raise
    if operation != "preview":
        for result in results:
            system = result.stack.removeprefix("sys-") if result.stack.startswith("sys-") \
                else None
            journal.append(operation, system=system, inputs=estate_inputs(estate),
                           outputs={"stack": result.stack, "changes": result.changes,
                                    "outputs": result.outputs},
                           result="changed" if result.changed else "unchanged",
                           duration_s=result.seconds)
    return ProvisionOutcome(operation, results)


# ---------------------------------------------------------------- runbooks and reports


def write_runbooks(estate: Estate, estate_arg: str, out_dir: Path | None = None) -> list[Path]:
    from migrate import runbook

    started = time.monotonic()
    plan = make_plan(estate).plan
    journal = journal_for(estate)
    written = runbook.write_runbooks(estate, plan, journal,
                                     out_dir or runbook.default_runbooks_dir(estate),
                                     estate_arg=estate_arg)
    journal.append("runbook", inputs=estate_inputs(estate),
                   outputs={"files": {str(p): digest_file(p) for p in written}},
                   duration_s=time.monotonic() - started)
    return written


def write_report(estate: Estate, as_of: date, out_dir: Path | None = None
                 ) -> tuple[dict, list[Path]]:
    from migrate import report

    started = time.monotonic()
    plan = make_plan(estate).plan
    journal = journal_for(estate)
    document = report.build_report(estate, plan, journal.entries(), as_of)
    written = report.write_report(document, out_dir or state_dir(estate) / "reports"
                                  / as_of.isoformat())
    journal.append("report", inputs=estate_inputs(estate),
                   outputs={"as_of": as_of.isoformat(),
                            "files": {str(p): digest_file(p) for p in written}},
                   duration_s=time.monotonic() - started)
    return document, written


# ---------------------------------------------------------------- the exchange platform


def platform_client(estate: Estate, system_id: str) -> Any:
    """A client signed with the system's app key and secret, verifying the platform's TLS
    against the estate's CA bundle (in the sandbox: connecting to the platform machine)."""
    from migrate.exchange.client import ExchangeClient

    system = estate.systems[system_id]
    if system.exchange is None:
        raise InvalidInput([estate.documents[system_id].problem(
            ("exchange",), "no exchange section: nothing to register")])
    connect_address = None
    if estate.settings.cloud.target == "sandbox":
        from migrate.sandbox.estate_plan import plan_sandbox

        connect_address = plan_sandbox(estate).platform_ip
    return ExchangeClient(estate.settings.exchange.url,
                          ca_bundle=str(estate.root / estate.settings.exchange.ca_bundle),
                          app_key=system.exchange.app_key,
                          app_secret=read_secret(estate, system.exchange.app_secret),
                          connect_address=connect_address)


def register_systems(estate: Estate, system_ids: list[str] | None = None,
                     progress: Callable[[str], None] | None = None) -> list[dict]:
    """Register each chosen migrating system's endpoint and catalogue on the platform."""
    from migrate.register import register_catalogue
    from migrate.stackplan import select_system

    plan = make_plan(estate).plan
    chosen = system_ids or [s["id"] for s in plan["systems"]]
    journal = journal_for(estate)
    results = []
    for system_id in chosen:
        started = time.monotonic()
        planned = select_system(plan, system_id)
        with platform_client(estate, system_id) as client:
            result = register_catalogue(estate.systems[system_id], planned, client)
        journal.append("register", system=system_id, inputs=estate_inputs(estate),
                       outputs=result, result="changed" if result["changed"] else "unchanged",
                       duration_s=time.monotonic() - started)
        if progress:
            progress(f"{system_id}: {result['linked']}/{len(result['resources'])} resources "
                     "linked (已挂接)")
        results.append(result)
    return results


# ---------------------------------------------------------------- moving workloads

MOVE_STAGES = ("check_prerequisites", "transfer", "cutover", "rollback", "decommission_source")


def provisioned_targets(estate: Estate, system_id: str) -> dict[str, dict]:
    """The system's target instances (address, host key) as its last provisioning recorded
    them in the journal; refused when the system was never provisioned or was destroyed."""
    targets: dict[str, dict] | None = None
    for entry in journal_for(estate).entries():
        if entry.get("system") != system_id:
            continue
        if entry["stage"] == "provision" and entry["result"] in ("changed", "unchanged"):
            instances = ((entry.get("outputs") or {}).get("outputs") or {}).get("instances")
            if instances:
                targets = {name: {"address": i["address"], "host_key": i["host_key"]}
                           for name, i in instances.items()}
        elif entry["stage"] == "destroy":
            targets = None
    if targets is None:
        raise InvalidInput([], f"{system_id} has no provisioned targets: run "
                               f"'migrate provision {estate.display} --system {system_id} --yes'")
    return targets


def move(estate: Estate, stage: str, system_ids: list[str] | None = None,
         progress: Callable[[Any], None] | None = None, confirmed: bool = False) -> list[dict]:
    """Run one moving stage for each chosen system (every planned one by default)."""
    from migrate import transfer

    if stage not in MOVE_STAGES:
        raise ValueError(stage)
    plan = make_plan(estate).plan
    chosen = system_ids or [s["id"] for s in plan["systems"]]
    results = []
    for system_id in chosen:
        targets = provisioned_targets(estate, system_id)
        function = getattr(transfer, stage)
        if stage == "decommission_source":
            result = function(estate, plan, system_id, targets, progress, confirmed=confirmed)
        else:
            result = function(estate, plan, system_id, targets, progress)
        results.append(result.as_dict())
    return results
