"""Strings the stages together. Stages never import each other; this module does.

Every function here takes plain arguments and returns model objects or documents; printing and
exit codes are the CLI's business.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from migrate import census_report
from migrate.census import CensusResult, take_census
from migrate.errors import InvalidInput, Problem
from migrate.journal import Journal, Verification, digest_bytes, digest_file, verify_journal
from migrate.loader import Estate
from migrate.plan import PLAN_SCHEMA_VERSION, build_plan, render_plan
from migrate.validate import validate_estate

STATE_DIR_NAME = ".migrate"


def state_dir(estate: Estate) -> Path:
    """Where an estate's state lives: Pulumi backend, journal, plan, reports, artifacts."""
    override = os.environ.get("MIGRATE_STATE_DIR")
    return Path(override) if override else estate.root / STATE_DIR_NAME


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


def estate_inputs(estate: Estate) -> dict:
    return {"migrate.yaml": estate.settings_doc.digest, "systems": estate.digests()}


def secret_values(estate: Estate) -> list[str]:
    """Every secret of the estate's secrets folder, for redaction (never for printing)."""
    folder = estate.root / estate.settings.secrets.dir
    if not folder.is_dir():
        return []
    values = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if len(text) >= 6:
                values.append(text)
    return values


def journal_for(estate: Estate) -> Journal:
    return Journal(state_dir(estate), estate.settings.estate, secret_values(estate))


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
