"""``migrate run``: the whole pipeline, wave after wave, systems of a wave in parallel.

validate (the caller) -> census -> the reviewed plan (refused when the estate no longer
gives it, unless re-planned) -> the surroundings brought up (the rehearsal) -> per wave:
provision (one stack operation for the wave's systems) -> per system, in parallel:
transfer -> register (systems with an exchange section; verification checks it) ->
cutover (which verifies and rolls back by itself when it fails) -> after the last wave:
runbooks and report. A system cut over but never verified (a run killed in between) is
verified, and rolled back when that fails.

Where each system stands comes from the journal (``migrate.orchestrate.status``), so a re-run
continues where the last one stopped: a system already cut over is not provisioned, transferred
or cut over again (its stacks are previewed to say whether they drifted; registration is
idempotent and runs again). One failing system does not stop the others of its wave; a wave with a
failure stops the run before the next wave (later systems may depend on it). A ``run``
journal entry opens and closes every run; the closing one carries the summary.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from migrate.core.errors import (
    EXIT_FAILURE,
    EnvironmentNotReady,
    InvalidInput,
    MigrateError,
    StageFailed,
    StageFailure,
    error_record,
)
from migrate.core.state import estate_inputs
from migrate.orchestrate import pipeline, status
from migrate.targets import Surroundings
from migrate.targets.context import Context

LOCK_NAME = "run.lock"
STACK_OPERATIONS = ("provision", "preview")


@dataclass(frozen=True)
class RunEvent:
    """One progress event: a stage of a system (or of the whole run when system is None)
    started, ended, was skipped, or a task of it ran (``status`` task)."""

    stage: str
    status: str  # started | ok | changed | unchanged | skipped | failed | task | info
    wave: int | None = None
    system: str | None = None
    seconds: float | None = None
    detail: str = ""

    def line(self) -> str:
        where = f"[wave {self.wave}] " if self.wave is not None else ""
        who = f"{self.system} " if self.system else ""
        took = f" ({self.seconds:.1f} s)" if self.seconds is not None else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{where}{who}{self.stage}: {self.status}{took}{detail}"


Progress = Callable[[RunEvent], None]


@dataclass
class StageRecord:
    stage: str
    result: str  # ok | changed | unchanged | skipped | failed
    seconds: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict:
        return {"stage": self.stage, "result": self.result, "seconds": round(self.seconds, 3),
                "detail": self.detail}


@dataclass
class SystemRun:
    system: str
    wave: int
    stages: list[StageRecord] = field(default_factory=list)
    failed_stage: str | None = None
    error: str | None = None
    failure: StageFailure | None = None  # as the stage's error made it (not in the summary)
    rolled_back: bool | None = None
    resumed_from: str = "planned"
    position: str = "planned"
    waits_for: list[str] = field(default_factory=list)  # dependencies not moved: not started

    @property
    def failed(self) -> bool:
        return self.failed_stage is not None

    def outcome(self) -> str:
        if self.waits_for:
            return f"not started: depends on {', '.join(self.waits_for)}, not moved yet"
        if self.failed_stage is None:
            if all(s.result in ("skipped", "unchanged") for s in self.stages):
                return "nothing to do: no changes"
            return "done"
        rolled = {True: "rolled back", False: "NOT rolled back"}.get(self.rolled_back, "")
        return f"failed at {self.failed_stage}" + (f", {rolled}" if rolled else "")

    def as_dict(self) -> dict:
        failure = self.failure
        return {"system": self.system, "wave": self.wave, "outcome": self.outcome(),
                "failed_stage": self.failed_stage,
                "error": failure.error_dict() if failure else None,
                "problems": [p.as_dict() for p in failure.problems] if failure else [],
                "rolled_back": self.rolled_back, "resumed_from": self.resumed_from,
                "position": self.position, "waits_for": self.waits_for,
                "stages": [s.as_dict() for s in self.stages]}


@dataclass
class RunOutcome:
    run_id: str
    systems: list[SystemRun] = field(default_factory=list)
    stages: list[StageRecord] = field(default_factory=list)  # run-wide: census, sandbox...
    waves: list[dict] = field(default_factory=list)  # number, systems, seconds, started
    warnings: list[str] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None  # what stopped the whole run, if anything did (the journal's)
    stopped_by: dict | None = None  # the same in JSON (errors.error_record)

    @property
    def failed(self) -> list[SystemRun]:
        return [s for s in self.systems if s.failed]

    @property
    def blocked(self) -> list[SystemRun]:
        return [s for s in self.systems if s.waits_for]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked

    def stage_seconds(self) -> dict[str, dict[str, float]]:
        """Per stage: summed seconds over systems (work) and the run-wide ones; a wave's
        stack operation (provision, preview) counts once, not once per system."""
        totals: dict[str, dict[str, float]] = {}
        per_system = (r for s in self.systems for r in s.stages
                      if r.stage not in STACK_OPERATIONS)
        for record in [*self.stages, *per_system]:
            if record.result == "skipped":
                continue
            entry = totals.setdefault(record.stage, {"seconds": 0.0, "count": 0})
            entry["seconds"] = round(entry["seconds"] + record.seconds, 3)
            entry["count"] += 1
        return totals

    def changed_nothing(self) -> bool:
        """True when this run provisioned, transferred, cut over and registered nothing new."""
        for record in [*self.stages, *(r for s in self.systems for r in s.stages)]:
            if record.stage in ("provision", "transfer", "cutover", "register") \
                    and record.result not in ("skipped", "unchanged"):
                return False  # (a verification checks; it changes nothing)
        return True

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "ok": self.ok, "seconds": round(self.seconds, 3),
                "changed_nothing": self.changed_nothing(), "error": self.stopped_by,
                "failed": [s.system for s in self.failed],
                "blocked": {s.system: s.waits_for for s in self.blocked},
                "waves": self.waves, "stages": [s.as_dict() for s in self.stages],
                "stage_seconds": self.stage_seconds(), "warnings": self.warnings,
                "systems": [s.as_dict() for s in self.systems], "files": self.files}


def worker_bound(systems: int) -> int:
    """Systems of a wave at once: each runs ansible and ssh; the host's cores bound it."""
    return max(1, min(systems, max(2, os.cpu_count() or 2)))


class _RunLock:
    """One ``migrate run`` per estate at a time; the kernel drops the lock when a run dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: Any = None

    def __enter__(self) -> _RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise EnvironmentNotReady(
                f"another 'migrate run' of this estate is running (lock {self.path})",
                "wait for it to finish; a run that was killed releases the lock by itself"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()
        return self

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# ---------------------------------------------------------------- scope


def choose_scope(plan: dict, wave: int | None, system_ids: list[str] | None
                 ) -> list[tuple[int, list[str]]]:
    """(wave number, systems) in wave order, narrowed by --wave and --system."""
    waves = [(w["number"], list(w["systems"])) for w in plan["waves"]]
    if wave is not None and wave not in {n for n, _ in waves}:
        raise InvalidInput([], f"the plan has no wave {wave} (waves: "
                               f"{', '.join(str(n) for n, _ in waves) or 'none'})")
    planned = {s for _, systems in waves for s in systems}
    unknown = [s for s in system_ids or [] if s not in planned]
    if unknown:
        raise InvalidInput([], f"not planned to move: {', '.join(unknown)} (only systems the "
                               "census migrates are planned; see 'migrate status')")
    chosen = []
    for number, systems in waves:
        if wave is not None and number != wave:
            continue
        mine = [s for s in systems if not system_ids or s in system_ids]
        if mine:
            chosen.append((number, mine))
    if not chosen and not waves:
        raise InvalidInput([], "nothing to run: the census moves no system of this estate")
    if not chosen:
        raise InvalidInput([], f"nothing to run: no system of wave {wave} among "
                               f"{', '.join(system_ids or [])}")
    return chosen


# ---------------------------------------------------------------- the run


class Runner:
    def __init__(self, context: Context, estate_arg: str, progress: Progress | None,
                 workers: int | None) -> None:
        self.context = context  # its plan computed once (the run's "plan" stage)
        self.estate = context.estate
        self.estate_arg = estate_arg
        self.progress = progress or (lambda _event: None)
        self.workers = workers
        self.lock = threading.Lock()
        self.declared_gb: dict[str, float] = {}
        self.moved_gb: dict[str, float] = {}

    def say(self, event: RunEvent) -> None:
        with self.lock:
            self.progress(event)

    def timed(self, outcome: RunOutcome, stage: str, work: Callable[[], Any],
              result: Callable[[Any], str] = lambda _r: "ok") -> Any:
        """A run-wide stage: timed, reported, recorded."""
        self.say(RunEvent(stage, "started"))
        started = time.monotonic()
        value = work()
        seconds = time.monotonic() - started
        outcome.stages.append(StageRecord(stage, result(value), seconds))
        self.say(RunEvent(stage, outcome.stages[-1].result, seconds=seconds))
        return value

    def states(self, system_ids: list[str]) -> dict[str, status.SystemStatus]:
        plan = self.context.plan
        entries = list(self.context.journal.entries())
        rows = [(sid, self.estate.systems[sid].name, "", "migrate") for sid in system_ids]
        return {s.id: s for s in status.system_states(rows, plan, entries)}

    def check_sources(self, outcome: RunOutcome, in_scope: set[str]) -> None:
        """The source host keys of the systems still to move, before any of them moves."""
        states = self.states(sorted(in_scope))
        moving = sorted(sid for sid in in_scope if not states[sid].flags.get("cut_over"))
        if moving:
            self.timed(outcome, "source_keys",
                       lambda: pipeline.check_source_host_keys(self.context, moving),
                       lambda _count: "unchanged")

    def bring_up(self, outcome: RunOutcome, around: Surroundings) -> None:
        """What surrounds the cloud, up before the waves (the rehearsal's: legacy server
        rooms, exchange platform, package mirror), as a run-wide stage named after them."""
        def line(text: str) -> None:
            self.say(RunEvent(around.name, "task", detail=text))

        self.timed(outcome, around.name, lambda: around.bring_up(self.estate, progress=line),
                   lambda report: "changed" if report.changed else "unchanged")
        self.context.reopen_journal()  # the bring-up may have made secrets to redact

    # ---- one wave

    def provision_wave(self, number: int, runs: dict[str, SystemRun],
                       states: dict[str, status.SystemStatus], outcome: RunOutcome) -> None:
        pending = [sid for sid in runs if not states[sid].flags.get("cut_over")]
        done = [sid for sid in runs if sid not in pending]
        if pending:
            self.stack_stage(number, "provision", pending, runs, outcome)
        if done:
            self.stack_stage(number, "preview", done, runs, outcome)

    def stack_stage(self, number: int, operation: str, system_ids: list[str],
                    runs: dict[str, SystemRun], outcome: RunOutcome) -> None:
        label = ", ".join(system_ids)
        self.say(RunEvent(operation, "started", number, label))
        started = time.monotonic()

        def line(text: str) -> None:
            self.say(RunEvent(operation, "task", number, None, detail=text))

        try:
            result = pipeline.run_stacks(self.context, operation, system_ids, line)
        except MigrateError as error:
            seconds = time.monotonic() - started
            failure = StageFailure.caught(error, operation, None, seconds)
            self.say(RunEvent(operation, "failed", number, label, seconds, failure.message))
            outcome.stages.append(StageRecord(operation, "failed", seconds,
                                              f"wave {number}: {label}"))
            if operation == "preview":
                outcome.warnings.append(f"wave {number}: preview of {label} failed: "
                                        f"{failure.message}")
                return
            for sid in system_ids:
                runs[sid].stages.append(StageRecord(operation, "failed", seconds,
                                                    failure.message))
                record_failure(runs[sid], replace(failure, system=sid))
                runs[sid].rolled_back = None
            return
        seconds = time.monotonic() - started
        outcome.stages.append(StageRecord(operation, "changed" if result.changed else
                                          "unchanged", seconds, f"wave {number}: {label}"))
        by_stack = {r.stack: r for r in result.results}
        for sid in system_ids:
            mine = by_stack.get(f"sys-{sid}")
            changed = bool(mine and mine.changed)
            if operation == "preview":
                if changed:
                    outcome.warnings.append(
                        f"{sid}: its stack would change ({mine.changes}) but the system is "
                        "already cut over: not applied; run 'migrate preview' and decide")
                runs[sid].stages.append(StageRecord(
                    "provision", "skipped", 0.0,
                    "already cut over; preview: " + ("CHANGES PENDING" if changed
                                                     else "no changes")))
            else:
                runs[sid].stages.append(StageRecord(
                    "provision", "changed" if changed else "unchanged", seconds))
        self.say(RunEvent(operation, "changed" if result.changed else "unchanged", number,
                          label, seconds))

    def move_system(self, number: int, run: SystemRun) -> None:
        """transfer -> register -> cutover (verified, rolled back by itself on failure) of
        one system, or only a verification when it is cut over but not verified; never
        raises for a stage failure (recorded in ``run``), so the others of its wave go on.
        Registration (接入登记) comes before the cutover: verification checks it."""
        sid = run.system
        if run.failed:  # its provisioning failed
            return
        state = self.states([sid])[sid]
        cut = state.flags.get("cut_over", False)
        verify = cut and not state.flags.get("verified", False)
        steps: list[tuple[str, str | None]] = [
            ("transfer", "already cut over" if cut else None),
            ("register", None if self.estate.systems[sid].exchange else "no exchange section"),
            ("cutover", "already cut over" if cut else None)]
        if verify:
            steps.append(("verify", None))
        for stage, skip in steps:
            if skip:
                run.stages.append(StageRecord(stage, "skipped", 0.0, skip))
                self.say(RunEvent(stage, "skipped", number, sid, detail=skip))
                if stage == "transfer":
                    self.data_moved(sid)
                continue
            if not self.run_stage(number, run, stage):
                break
        after = self.states([sid])[sid]
        run.position = after.position
        if run.failed:
            if after.failure:  # the journal knows better (cutover ok, then verify failed)
                run.failed_stage = after.failure["stage"]
            run.rolled_back = after.flags.get("rolled_back") or bool(
                after.failure and after.failure.get("rolled_back"))
            if run.failed_stage in ("transfer", "register", "provision", "check_prerequisites"):
                run.rolled_back = None  # nothing to roll back: the source kept serving

    def run_stage(self, number: int, run: SystemRun, stage: str) -> bool:
        sid = run.system
        self.say(RunEvent(stage, "started", number, sid))
        started = time.monotonic()

        def task(event: Any) -> None:
            text = getattr(event, "task", None) or str(event)
            host = getattr(event, "host", "")
            self.say(RunEvent(stage, "task", number, sid,
                              detail=f"{host}: {text} [{getattr(event, 'status', '')}]"))

        try:
            if stage == "verify":
                result, detail = self.verify_or_roll_back(sid, task)
            elif stage == "register":
                results = pipeline.register_systems(self.context, [sid])
                result = "changed" if results and results[0].get("changed") else "unchanged"
                detail = f"{results[0]['linked']}/{len(results[0]['resources'])} linked" \
                    if results else ""
            else:
                results = pipeline.move(self.context, stage, [sid], task)
                mine = results[0] if results else {}
                if isinstance(mine, pipeline.FailedResult):  # move reports a system's failure
                    return self.stage_failed(number, run, mine.failure, started)
                changed = mine.get("changed", 0)
                result = "changed" if changed else "unchanged"
                detail = f"{changed} changed tasks" + copied(mine.get("outputs") or {})
        except MigrateError as error:
            return self.stage_failed(number, run, StageFailure.caught(
                error, stage, sid, time.monotonic() - started), started)
        except Exception as error:  # a bug in one system's move must not stop the others
            return self.stage_failed(number, run, StageFailure(
                sid, stage, type(error).__name__,
                f"unexpected {type(error).__name__}: {error}", None, EXIT_FAILURE,
                round(time.monotonic() - started, 3)), started)
        seconds = time.monotonic() - started
        run.stages.append(StageRecord(stage, result, seconds, detail))
        self.say(RunEvent(stage, result, number, sid, seconds, detail))
        if stage == "transfer":
            self.data_moved(sid)
        return True

    def stage_failed(self, number: int, run: SystemRun, failure: StageFailure,
                     started: float) -> bool:
        """The system's stage failed: recorded in its run as the stage's error made it."""
        seconds = time.monotonic() - started
        run.stages.append(StageRecord(failure.stage, "failed", seconds, failure.message))
        record_failure(run, failure)
        self.say(RunEvent(failure.stage, "failed", number, run.system, seconds,
                          failure.message))
        return False

    def data_moved(self, sid: str) -> None:
        """The share of the run's data (as the manifests declare it) whose initial copy is
        done: the system's own, once its transfer ended or it was found cut over."""
        with self.lock:
            self.moved_gb[sid] = self.declared_gb.get(sid, 0.0)
            done, total = sum(self.moved_gb.values()), sum(self.declared_gb.values())
        share = f" ({100 * done / total:.0f}%)" if total else ""
        self.say(RunEvent("data", "info", detail=f"moved {done:.1f} of {total:.1f} GB "
                                                 f"declared{share}"))

    def verify_or_roll_back(self, sid: str, task: Callable[[Any], None]) -> tuple[str, str]:
        """A cut-over system that was never verified (a run killed in between): verify it
        now, and give the source its service back when verification fails."""
        (verified,) = pipeline.verify_systems(self.context, [sid])
        if not isinstance(verified, pipeline.FailedResult):
            counts = verified.get("counts") or {}
            return "ok", f"{counts.get('passed', '?')} checks passed"
        error = verified.failure.message
        (rolled,) = pipeline.move(self.context, "rollback", [sid], task)
        if isinstance(rolled, pipeline.FailedResult):
            raise StageFailed(f"{error}; the rollback failed too: {rolled.failure.message}")
        raise StageFailed(f"{error}; rolled back: the source stays authoritative",
                          verified.failure.hint)

    def moved(self, system_ids: list[str]) -> set[str]:
        """Of these systems, the ones cut over and verified with no standing failure: what a
        system depending on them may follow."""
        return {sid for sid, s in self.states(system_ids).items()
                if s.flags.get("cut_over") and s.flags.get("verified") and s.failure is None}

    def run_wave(self, number: int, system_ids: list[str], depends: dict[str, list[str]],
                 outcome: RunOutcome) -> None:
        """The wave's systems whose dependencies have moved; the others wait (a system
        moves one wave after what it depends on, so it never moves ahead of it)."""
        started_at = time.monotonic()
        before = self.states(system_ids)
        needed = sorted({d for sid in system_ids for d in depends.get(sid, [])})
        moved = self.moved(needed) if needed else set()
        waiting = {sid: [] if before[sid].flags.get("cut_over") else  # nothing left to do
                   [d for d in depends.get(sid, []) if d not in moved] for sid in system_ids}
        for sid, missing in waiting.items():
            if missing:
                outcome.systems.append(SystemRun(sid, number, waits_for=missing))
                self.say(RunEvent("run", "skipped", number, sid,
                                  detail=outcome.systems[-1].outcome()))
        system_ids = [sid for sid in system_ids if not waiting[sid]]
        if not system_ids:
            return
        states = self.states(system_ids)
        runs = {sid: SystemRun(sid, number, resumed_from=states[sid].position)
                for sid in system_ids}
        outcome.systems.extend(runs.values())
        for sid, state in states.items():
            if state.position != "planned":
                self.say(RunEvent("resume", "info", number, sid,
                                  detail=f"journal says: {state.text()}"))
        self.provision_wave(number, runs, states, outcome)
        workers = self.workers or worker_bound(len(runs))
        with ThreadPoolExecutor(max_workers=workers,
                                thread_name_prefix=f"wave{number}") as pool:
            futures = [pool.submit(self.move_system, number, run) for run in runs.values()]
            for future in futures:
                future.result()
        outcome.waves.append({"number": number, "systems": system_ids, "workers": workers,
                              "seconds": round(time.monotonic() - started_at, 3)})

    # ---- the whole run

    def run(self, wave: int | None, system_ids: list[str] | None) -> RunOutcome:
        outcome = RunOutcome(uuid.uuid4().hex[:12])
        started = time.monotonic()
        journal = self.context.journal
        entries = list(journal.entries())
        previous = status.last_run(entries)
        # the reviewed plan.json, refused (PlanChanged, before anything is journaled) when
        # the estate no longer gives it; computed once and handed to every stage
        plan_outcome = self.timed(outcome, "plan", lambda: self.context.planned)
        if plan_outcome.note:
            outcome.stages[-1].detail = plan_outcome.note
            self.say(RunEvent("plan", "info", detail=plan_outcome.note))
        scope = choose_scope(plan_outcome.plan, wave, system_ids)
        in_scope = {sid for _, systems in scope for sid in systems}
        self.declared_gb = {s["id"]: declared_gb(s) for s in plan_outcome.plan["systems"]
                            if s["id"] in in_scope}
        if previous and previous["ended"] is None:
            outcome.warnings.append(f"the previous run ({previous['run_id']}, started "
                                    f"{previous['started']}) did not finish: continuing")
            self.say(RunEvent("run", "info", detail=outcome.warnings[-1]))
        journal.append("run", inputs=estate_inputs(self.estate),
                       outputs={"phase": "start", "run_id": outcome.run_id,
                                "waves": [{"number": n, "systems": s} for n, s in scope]})
        try:
            self.timed(outcome, "census", lambda: pipeline.write_census_reports(
                self.context, plan_outcome.census))
            around = self.context.surroundings
            seeded = around.makes_sources(self.estate)
            if not seeded:  # sources the surroundings do not make: checked before any change
                self.check_sources(outcome, in_scope)
            if around.brings_up:
                self.bring_up(outcome, around)
            if seeded:
                self.check_sources(outcome, in_scope)
            depends = {s["id"]: list(s.get("depends_on") or [])
                       for s in plan_outcome.plan["systems"]}
            for number, systems in scope:
                self.run_wave(number, systems, depends, outcome)
            runbooks = self.timed(outcome, "runbook", lambda: pipeline.write_runbooks(
                self.context, self.estate_arg))
            _, report_files = self.timed(outcome, "report", lambda: pipeline.write_report(
                self.context, date.today()))
            outcome.files = {"runbooks": [str(p) for p in runbooks],
                             "report": [str(p) for p in report_files]}
        except MigrateError as error:
            outcome.error, outcome.stopped_by = error.message, error.as_dict()
            raise
        except BaseException as error:  # interrupted, or a bug: say so in the journal
            outcome.error = f"{type(error).__name__}: {error}"
            outcome.stopped_by = error_record(type(error).__name__, outcome.error, None, None)
            raise
        finally:
            outcome.seconds = time.monotonic() - started
            whole = outcome.ok and outcome.error is None and not _aborted(outcome, scope)
            journal.append("run", result="ok" if whole else "failed",
                           inputs=estate_inputs(self.estate),
                           outputs=_end_outputs(outcome, scope), duration_s=outcome.seconds)
        return outcome


def record_failure(run: SystemRun, failure: StageFailure) -> None:
    run.failed_stage, run.error, run.failure = failure.stage, failure.message, failure


def declared_gb(system: dict) -> float:
    """The data a planned system moves, as its manifest declares it."""
    data = system.get("data") or {}
    return float(sum(item.get("size_gb") or 0 for kind in ("files", "databases")
                     for item in data.get(kind) or []))


def copied(outputs: dict) -> str:
    """What a transfer's rsync sent and how fast, for the stage line."""
    throughput = outputs.get("throughput") or {}
    if not throughput.get("seconds"):
        return ""
    mib = throughput["bytes"] / 2**20
    return (f"; {mib:.1f} MiB sent in {throughput['seconds']:.1f} s "
            f"({throughput['mib_per_s']:.1f} MiB/s)")


def _aborted(outcome: RunOutcome, scope: list[tuple[int, list[str]]]) -> bool:
    return {s.system for s in outcome.systems} != {s for _, systems in scope for s in systems}


def _end_outputs(outcome: RunOutcome, scope: list[tuple[int, list[str]]]) -> dict:
    return {"phase": "end", "run_id": outcome.run_id,
            "completed": not _aborted(outcome, scope) and outcome.error is None,
            "error": outcome.error,
            "failed": [s.system for s in outcome.failed],
            "blocked": {s.system: s.waits_for for s in outcome.blocked},
            "changed_nothing": outcome.changed_nothing(),
            "stage_seconds": outcome.stage_seconds(),
            "warnings": outcome.warnings,
            "systems": {s.system: {"wave": s.wave, "outcome": s.outcome(),
                                   "failed_stage": s.failed_stage, "error": s.error,
                                   "rolled_back": s.rolled_back, "waits_for": s.waits_for,
                                   "stages": {r.stage: r.result for r in s.stages}}
                        for s in outcome.systems}}


def run_estate(context: Context, estate_arg: str, wave: int | None = None,
               system_ids: list[str] | None = None, progress: Progress | None = None,
               workers: int | None = None) -> RunOutcome:
    """The whole pipeline for the chosen waves and systems (all by default), to the context's
    plan: the reviewed plan.json (opened with ``replan``: the estate as it is now, replacing
    plan.json)."""
    with _RunLock(context.state_dir / LOCK_NAME):
        return Runner(context, estate_arg, progress, workers).run(wave, system_ids)
