"""A synthetic run journal for the example estate, written with the real Journal class."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

from migrate.core.journal import Journal

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ESTATE = ROOT / "examples" / "estate"
COMMITTED_EXAMPLES = ROOT / "runbooks" / "examples"

# 6 systems migrate in the example estate; this story verifies 3 and rolls 1 back.
VERIFIED = ("scj-qyxy", "sjj-tyrz", "wjw-fybj")
ROLLED_BACK = "rsj-sbcx"
TRANSFER_FAILED = "zrj-bdcdj"
UNTOUCHED = "mzj-shjz"
TRANSFER_SHAPED = "wjw-fybj"  # journaled the way migrate.stages.move does
STORY_START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STORY_DAY = STORY_START.date()  # the day of every entry written on the story's clock


def story_clock() -> Callable[[], str]:
    """A journal clock for the story: STORY_START, then a second later at each entry, so the
    report tests' dates do not depend on the day they run (a run across midnight UTC put the
    entries a day after the date the tests had taken at import)."""
    seconds = count()
    return lambda: (STORY_START + timedelta(seconds=next(seconds))).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _move(journal: Journal, sid: str, state: Path) -> None:
    journal.append("provision", system=sid, result="changed",
                   outputs={"stack": f"sys-{sid}"}, duration_s=41.5)
    artifact = state / "artifacts" / sid / "transfer.log"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_text("rsync log\n", encoding="utf-8")
    journal.append("transfer_files", system=sid, result="ok", duration_s=610.2, outputs={
        "checksums": [{"path": "/srv/data", "source": "sha256:aa", "target": "sha256:aa"}],
        "artifacts": [f"artifacts/{sid}/transfer.log"]})
    journal.append("migrate_database", system=sid, result="ok", duration_s=95.0,
                   outputs={"row_counts": {"public.items": {"source": 1200, "target": 1200}}})
    journal.append("cutover", system=sid, result="ok", duration_s=80.0,
                   outputs={"downtime_s": 74.5})


def _play(changed: int = 1) -> dict:
    return {"status": "successful", "ok": 5, "changed": changed, "failed": 0,
            "unreachable": 0, "changed_tasks": []}


def _move_like_transfer(journal: Journal, sid: str) -> None:
    """The entries migrate.stages.move writes: one ``transfer`` entry running four plays."""
    journal.append("provision", system=sid, result="changed", duration_s=38.0)
    compared = {"files": {"app1": {"target": f"{sid}-app", "files": 412, "equal": True,
                                   "manifest": "sha256:" + "ab" * 32}},
                "databases": {"fybj": {"source": "db1", "target": f"{sid}-db", "equal": True,
                                       "tables": {"public.visits": {"rows": 5310,
                                                                    "checksum": "9f1c"}}}}}
    journal.append("transfer", system=sid, duration_s=201.4, outputs={
        "run_id": f"20261120T010000Z-{sid}-transfer-abc123", "changed": 4,
        "plays": {p: _play() for p in ("check_prerequisites", "prepare_target",
                                       "transfer_files", "migrate_database")}, **compared})
    journal.append("cutover", system=sid, duration_s=66.0, outputs={
        "run_id": f"20261120T020000Z-{sid}-cutover-def456", "changed": 3,
        "plays": {p: _play() for p in ("check_prerequisites", "cutover")},
        "cutover_play_s": 58.25, **compared})


def _verify(journal: Journal, sid: str, interconnected: bool = True) -> None:
    journal.append("verify", system=sid, result="ok", duration_s=12.0, outputs={
        "checks": [{"name": "health /health", "ok": True, "detail": "200"},
                   {"name": "exchange platform", "ok": interconnected}],
        "interconnected": interconnected})


def write_story(state: Path, estate_title: str) -> Journal:
    journal = Journal(state, estate_title)
    journal.append("plan", outputs={"waves": []})
    for sid in VERIFIED:
        if sid == TRANSFER_SHAPED:
            _move_like_transfer(journal, sid)
        else:
            _move(journal, sid, state)
        _verify(journal, sid)
    _move(journal, ROLLED_BACK, state)
    journal.append("rollback", system=ROLLED_BACK, result="ok", duration_s=60.0,
                   outputs={"reason": "切换后健康检查失败 health check failed"})
    journal.append("provision", system=TRANSFER_FAILED, result="changed", duration_s=30.0)
    journal.append("transfer_files", system=TRANSFER_FAILED, result="failed",
                   details={"error": "rsync exited 23"})
    return journal
