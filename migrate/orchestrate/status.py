"""Where each system stands, derived from the journal (and, where cheap, the stacks).

One derivation for ``migrate status``, ``migrate run`` (what to skip on a re-run) and
``migrate report`` (progress figures), so the three always agree: the flags and the standing
failure come from the journal alone (``migrate.core.standing``, which the report reads too);
this module adds the plan (waves, who migrates) and the stacks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from migrate.core.standing import PROGRESS, journaled_error, progress_flags, standing_failure
from migrate.targets.context import Context

POSITION_TEXT = {"planned": "planned", "provisioned": "provisioned",
                 "transferred": "transferred", "cut_over": "cut over", "verified": "verified",
                 "rolled_back": "rolled back"}


def position(flags: dict[str, bool]) -> str:
    """The furthest point a system reached: planned ... verified, or rolled_back."""
    if flags.get("rolled_back"):
        return "rolled_back"
    for flag in ("verified", "cut_over", "transferred", "provisioned"):
        if flags.get(flag):
            return flag
    return "planned"


@dataclass
class SystemStatus:
    id: str
    name: str
    department: str
    disposition: str
    wave: int | None
    position: str  # planned ... verified | rolled_back; not_moving for systems not planned
    flags: dict[str, bool] = field(default_factory=dict)
    failure: dict | None = None
    last_at: str | None = None
    stacks: dict[str, int | None] = field(default_factory=dict)

    @property
    def migrating(self) -> bool:
        return self.wave is not None

    @property
    def done(self) -> bool:
        """Cut over (and verified, when verification ran) with no standing failure: a run
        skips the moving stages of such a system."""
        return self.flags.get("cut_over", False) and self.failure is None

    def text(self) -> str:
        if not self.migrating:
            return f"not moving ({self.disposition})"
        where = POSITION_TEXT[self.position]
        if self.failure:
            what = f"failed at {self.failure['stage']}"
            if self.failure.get("rolled_back") or self.flags.get("rolled_back"):
                what += ", rolled back"
            return f"{what} (was {where})" if where not in ("planned", "rolled back") \
                else what
        return where

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failure": failure_dict(self.failure), "text": self.text(),
                "done": self.done}


def failure_dict(failure: dict | None) -> dict | None:
    """A standing failure in JSON: stage, time, rollback, and its error in the one shape of
    an error (errors.error_record); the journal keeps the message only, so its type, hint
    and exit code are null."""
    if failure is None:
        return None
    rest = {k: v for k, v in failure.items() if k != "error"}
    return {**rest, "error": journaled_error(failure["error"]), "problems": []}


def system_states(systems: Iterable[tuple[str, str, str, str]], plan: dict,
                  entries: list[dict]) -> list[SystemStatus]:
    """``systems``: (id, name, department, disposition) of every system of the estate."""
    waves = {s["id"]: s["wave"] for s in plan.get("systems", [])}
    states = []
    for system_id, name, department, disposition in systems:
        wave = waves.get(system_id)
        if wave is None:
            states.append(SystemStatus(system_id, name, department, disposition, None,
                                       "not_moving"))
            continue
        mine = [e for e in entries if e.get("system") == system_id]
        flags = progress_flags(mine, system_id)
        states.append(SystemStatus(
            system_id, name, department, disposition, wave, position(flags), flags,
            standing_failure(entries, system_id), mine[-1].get("at") if mine else None))
    return states


def last_run(entries: list[dict]) -> dict | None:
    """The last ``run``: when it started, and how it ended (or that it did not)."""
    runs = [e for e in entries if e.get("stage") == "run"]
    if not runs:
        return None
    last = runs[-1]
    outputs = last.get("outputs") or {}
    if outputs.get("phase") == "start":
        return {"run_id": outputs.get("run_id"), "started": last.get("at"), "ended": None,
                "result": "interrupted or still running"}
    start = next((e for e in reversed(runs) if (e.get("outputs") or {}).get("run_id")
                  == outputs.get("run_id") and e["outputs"].get("phase") == "start"), None)
    return {"run_id": outputs.get("run_id"), "started": start.get("at") if start else None,
            "ended": last.get("at"), "result": last.get("result"),
            "failed": outputs.get("failed", [])}


# ---------------------------------------------------------------- stacks (where cheap)


def stack_resources(state_dir: Path, target: str, stack: str) -> int | None:
    """Resources in a stack's latest checkpoint of the file backend; None when the stack
    does not exist there or another backend is in use (asking it would not be cheap)."""
    if os.environ.get("MIGRATE_PULUMI_BACKEND_URL"):
        return None
    from migrate.core.stackplan import PROJECTS

    project = PROJECTS.get(target, f"migrate-{target}")
    path = state_dir / "backend" / ".pulumi" / "stacks" / project / f"{stack}.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    resources = ((document.get("checkpoint") or {}).get("latest") or {}).get("resources")
    return len(resources or [])


# ---------------------------------------------------------------- the estate


def estate_status(context: Context, with_stacks: bool = True) -> dict[str, Any]:
    """Every system of the estate and where it stands; writes nothing."""
    from migrate.core.stackplan import network_stack_name, system_stack_name
    from migrate.orchestrate import pipeline

    estate = context.estate
    outcome = pipeline.make_plan(context, write=False)
    census = outcome.census
    entries = list(context.journal.entries())
    systems = [(sid, s.name, s.department.name, census.verdicts[sid].disposition)
               for sid, s in sorted(estate.systems.items())]
    states = system_states(systems, outcome.plan, entries)
    if with_stacks:
        folder, target = context.state_dir, estate.settings.cloud.target
        networks = {s["id"]: s["network"] for s in outcome.plan["systems"]}
        for state in states:
            if state.migrating:
                for stack in (network_stack_name(networks[state.id]),
                              system_stack_name(state.id)):
                    state.stacks[stack] = stack_resources(folder, target, stack)
    migrating = [s for s in states if s.migrating]
    counts = {p: sum(1 for s in migrating if s.position == p) for p in PROGRESS}
    counts["failed"] = sum(1 for s in migrating if s.failure)
    return {"estate": estate.settings.estate, "systems": [s.as_dict() for s in states],
            "counts": counts, "waves": outcome.plan["waves"], "last_run": last_run(entries)}


# ---------------------------------------------------------------- the status table

STATUS_COLUMNS = ("system", "census", "wave", "stands", "resources", "last entry", "error")


def resources_text(stacks: dict[str, int | None]) -> str:
    """Resources summed over the system's stacks; '-' when no stack has a state yet."""
    known = [n for n in stacks.values() if n is not None]
    if not known:
        return "-"
    return f"{sum(known)} in {len(known)} stack{'s' if len(known) != 1 else ''}"


def minute_of(timestamp: str | None) -> str:
    """'2026-12-06T00:10:12.5+00:00' as '2026-12-06 00:10' (the table's width is precious)."""
    return (timestamp or "")[:16].replace("T", " ")


def status_rows(document: dict[str, Any]) -> list[tuple[str, ...]]:
    return [(s["id"], s["disposition"], "" if s["wave"] is None else str(s["wave"]), s["text"],
             resources_text(s["stacks"]), minute_of(s["last_at"]),
             s["failure"]["error"]["message"] if s["failure"] else "")
            for s in document["systems"]]
