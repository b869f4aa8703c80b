"""``migrate evidence export``: the evidence stage with the runbooks and the report the runbook
and report stages render into its bundle (a stage imports no other stage: they meet here)."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from migrate.core.errors import MigrateError
from migrate.core.journal import Journal, Verification, digest_file
from migrate.core.loader import Estate
from migrate.core.state import estate_inputs, secret_values
from migrate.orchestrate import pipeline
from migrate.stages import report, runbook
from migrate.stages.evidence import Exported, Renderers, export_bundle
from migrate.targets.context import Context


def bundle_renderers(estate: Estate, plan: dict, as_of: date) -> Renderers:
    """The runbooks and the report of ``plan`` as of ``as_of``, for the bundle."""

    def runbooks(journal: Journal, folder: Path, artifacts: Path,
                 verification: Verification) -> list[Path]:
        return runbook.write_runbooks(estate, plan, journal, folder, estate_arg=estate.display,
                                      artifacts_dir=artifacts, verification=verification)

    def progress_report(entries: list[dict], folder: Path,
                        verification: Verification) -> list[Path]:
        document = report.build_report(estate, plan, entries, as_of, verification)
        return report.write_report(document, folder)

    return Renderers(runbook.cited_artifacts, runbooks, progress_report)


def export_estate(context: Context, output: Path, as_of: date) -> Exported:
    """The bundle of the estate's plan (as planned now, not written) and journal, then an
    ``evidence`` journal entry naming the archive's digest."""
    started = time.monotonic()
    estate, journal = context.estate, context.journal
    if not journal.path.is_file():
        raise MigrateError(f"{estate.display} has no journal yet: there is no evidence",
                           f"run 'migrate plan {estate.display}' (and the stages) first")
    if journal.public_key() is None:
        raise MigrateError(f"the journal of {estate.display} is not signed yet (legacy): an "
                           "evidence bundle needs a signed journal",
                           f"run 'migrate plan {estate.display}' once: it begins signing "
                           "(entries before stay marked unsigned), then export again")
    plan = pipeline.make_plan(context, write=False).plan
    exported = export_bundle(estate, plan, journal, output, as_of, secret_values(estate),
                             bundle_renderers(estate, plan, as_of))
    journal.append("evidence", inputs=estate_inputs(estate),
                   outputs={"archive": output.name, "digest": digest_file(output),
                            "manifest_sha256": exported.manifest_digest,
                            "journal_entries": exported.journal.entries,
                            "journal_head": exported.journal.last_hash},
                   duration_s=time.monotonic() - started)
    return exported
