"""The decommission_source stage: after verification and on explicit request only, the
temporary migration access and the cutover record removed from the source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migrate.core.errors import GuardRefused
from migrate.stages.move.session import Progress, StageResult, journaled, open_session
from migrate.targets.context import Context


def decommission_source(context: Context, system_id: str, targets: Mapping[str, Any],
                        progress: Progress | None = None, *,
                        confirmed: bool = False) -> StageResult:
    """Only on explicit request after verification: remove the temporary migration access
    and the cutover record; the source stays stopped, its data untouched."""
    if not confirmed:
        raise GuardRefused(f"decommission_source of {system_id} needs an explicit request",
                           hint="run it only after verification passed, and confirm")
    session = open_session(context, system_id, targets, "decommission_source", progress)
    return journaled(session, "decommission_source",
                     lambda r: session.play("decommission_source", r))
