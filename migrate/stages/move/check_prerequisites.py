"""The check_prerequisites stage: every source and target reachable with its known host key,
room and versions checked; changes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migrate.stages.move.session import Progress, StageResult, journaled, open_session
from migrate.targets.context import Context


def check_prerequisites(context: Context, system_id: str, targets: Mapping[str, Any],
                        progress: Progress | None = None, check: bool = False) -> StageResult:
    """Every source and target answers with its known host key, source paths exist, the
    targets have room and a PostgreSQL at least as new; changes nothing."""
    session = open_session(context, system_id, targets, "check_prerequisites", progress, check)
    return journaled(session, "check_prerequisites",
                     lambda r: session.play("check_prerequisites", r))
