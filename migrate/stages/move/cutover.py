"""The cutover stage: the source frozen, a final sync, the target's services started; files
and rows must then match exactly, else the source is given back its service."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from migrate.core.errors import MigrateError
from migrate.stages.move.comparison import (
    compare_databases,
    compare_manifests,
    raise_for_differing_databases,
)
from migrate.stages.move.session import (
    Progress,
    Session,
    StageResult,
    journaled,
    open_session,
)
from migrate.targets.context import Context

# The cutover play's first and last steps: nothing serves between the two.
FREEZE_TASK = "Freeze the source services, recording once how they ran (rollback restores that)"
START_TASK = "Start the services on the target and wait for their health paths"


def cutover(context: Context, system_id: str, targets: Mapping[str, Any],
            progress: Progress | None = None, check: bool = False) -> StageResult:
    """Freeze the source, final sync, start the target's services; files and rows must then
    match exactly, else the source is given back its service (rollback) and this raises."""
    session = open_session(context, system_id, targets, "cutover", progress, check)

    def work(result: StageResult) -> None:
        session.play("check_prerequisites", result)
        if session.check:
            session.play("cutover", result)
            return
        started = time.monotonic()
        try:
            done = session.play("cutover", result)
            downtime = done.span(FREEZE_TASK, START_TASK)
            if downtime is not None:
                result.outputs["downtime_s"] = round(downtime, 3)
            # Both comparisons recorded before either fails: the journal names every table.
            result.outputs["databases"] = compare_databases(session, done)
            result.outputs["files"] = compare_manifests(session, done, strict=True)
            raise_for_differing_databases(result.outputs["databases"])
        except MigrateError as error:
            result.outputs["rolled_back"] = _roll_back_after(session, error)
            raise
        result.outputs["cutover_play_s"] = round(time.monotonic() - started, 3)

    return journaled(session, "cutover", work)


def _roll_back_after(session: Session, error: MigrateError) -> dict[str, Any]:
    """Give the source its service back after a failed cutover; what happened, for the
    journal (a failing rollback is reported, not hidden)."""
    rolled = StageResult("rollback", session.system_id, session.run_id, session.run_dir)
    try:
        session.play("rollback", rolled)
    except MigrateError as again:
        return {"result": "failed", "cause": error.message, "error": again.message}
    return {"result": "ok", "cause": error.message, "changed": rolled.changed}
