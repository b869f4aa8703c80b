"""The rollback stage: the target's services stopped and the source's restored exactly as
the cutover found them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migrate.stages.move.session import Progress, StageResult, journaled, open_session
from migrate.targets.context import Context


def rollback(context: Context, system_id: str, targets: Mapping[str, Any],
             progress: Progress | None = None, check: bool = False,
             reason: str | None = None) -> StageResult:
    """Stop the target's services and restore the source's exactly as the cutover found
    them. Idempotent; safe at any point of a cutover. ``reason`` goes into the journal."""
    session = open_session(context, system_id, targets, "rollback", progress, check)

    def work(result: StageResult) -> None:
        if reason:
            result.outputs["reason"] = reason
        session.play("rollback", result)

    return journaled(session, "rollback", work)
