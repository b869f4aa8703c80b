"""Where a system stands in the journal: its progress flags, the failure it still stands at
and whether the move left traces on its source hosts, derived from the entries alone (no
plan, no stacks). The orchestration's status and the progress report both read it here, so
they always agree (``migrate.orchestrate.status`` adds the plan and the stacks); destroy
reads the traces here (``migrate.orchestrate.pipeline.run_stacks``).

Per system, in journal order: a stage's flag is set by its latest entry (ok, changed and
unchanged count as success); a successful ``rollback`` (or a failed cutover that rolled back
by itself) undoes cutover and verification before it, and a later successful cutover clears
the rollback; a successful ``destroy`` removes the targets, so provisioning, transfer,
cutover and verification are undone. A failed entry is the system's standing failure until
the same stage, or a later stage of the forward order, succeeds.
"""

from __future__ import annotations

from collections.abc import Iterable

from migrate.core.errors import error_record

SUCCESS = ("ok", "changed", "unchanged")
CHECK_MODE = ("check", "check_failed")  # dry runs (--check): they moved nothing
PROGRESS = ("planned", "provisioned", "transferred", "cut_over", "verified", "rolled_back")
STAGE_FLAG = {"provision": "provisioned", "transfer_files": "transferred",
              "transfer": "transferred", "cutover": "cut_over", "verify": "verified",
              "rollback": "rolled_back"}
FORWARD = ("provision", "check_prerequisites", "transfer", "cutover", "verify", "register",
           "decommission_source")
SOURCE_TOUCHING = ("transfer", "cutover")  # stages whose plays leave traces on the source
SOURCE_CLEARING = ("rollback", "decommission_source", "destroy")


def progress_flags(entries: Iterable[dict], system_id: str) -> dict[str, bool]:
    """Progress flags of one system from its journal entries, in journal order."""
    flags = {flag: False for flag in PROGRESS if flag != "planned"}
    interconnected = True
    for entry in entries:
        if entry.get("system") != system_id or entry.get("result") in CHECK_MODE:
            continue
        stage, ok = entry.get("stage"), entry.get("result") in SUCCESS
        outputs = entry.get("outputs") or {}
        if stage in ("cutover", "verify") and not ok and rolled_back_by_itself(outputs):
            flags.update(rolled_back=True, cut_over=False, verified=False)
        elif stage == "destroy" and ok:
            flags.update(provisioned=False, transferred=False, cut_over=False, verified=False)
        elif stage == "rollback" and ok:
            flags.update(rolled_back=True, cut_over=False, verified=False)
        elif stage in STAGE_FLAG:
            flags[STAGE_FLAG[stage]] = ok
            if stage == "cutover" and ok:
                flags["rolled_back"] = False
            if stage == "verify":
                interconnected = outputs.get("interconnected") is not False
    flags["interconnected"] = flags["verified"] and interconnected
    return flags


def rolled_back_by_itself(outputs: dict) -> bool:
    """A failed cutover (or verification) gives the source its service back itself."""
    rolled = outputs.get("rolled_back")
    return isinstance(rolled, dict) and rolled.get("result") in SUCCESS


def _error_of(entry: dict) -> str:
    outputs, details = entry.get("outputs") or {}, entry.get("details") or {}
    return str(outputs.get("error") or details.get("error") or "failed (no message recorded)")


def _later_or_same(stage: str, failed: str) -> bool:
    if stage == failed:
        return True
    if stage in FORWARD and failed in FORWARD:
        return FORWARD.index(stage) > FORWARD.index(failed)
    return False


def source_traces(entries: Iterable[dict], system_id: str) -> dict | None:
    """The entry after which migrate's traces are on the system's source hosts (the migration
    key, the replication tunnel unit, replication accounts or publications, the copies' write
    counters, a cutover's frozen services): ``{stage, result, at}`` of its latest transfer or
    cutover, failed ones too (a failed transfer may have opened the tunnel), that no
    successful rollback, decommission_source or destroy followed (a cutover or verification
    that rolled back by itself ran the rollback's play); None when there are none. A destroy
    ends them: it was given ``--leave-source-traces`` (journaled), or predates the refusal."""
    left: dict | None = None
    for entry in entries:
        if entry.get("system") != system_id or entry.get("result") in CHECK_MODE:
            continue
        stage, ok = entry.get("stage"), entry.get("result") in SUCCESS
        if stage in ("cutover", "verify") and not ok \
                and rolled_back_by_itself(entry.get("outputs") or {}):
            left = None
        elif stage in SOURCE_TOUCHING:
            left = {"stage": stage, "result": entry.get("result"), "at": entry.get("at")}
        elif stage in SOURCE_CLEARING and ok:
            left = None
    return left


def journaled_error(message: str) -> dict:
    """A standing failure's error in the one JSON shape of an error (``error_record``): the
    journal keeps its message only, so its type, hint and exit code are null."""
    return error_record(None, message, None, None)


def standing_failure(entries: Iterable[dict], system_id: str) -> dict | None:
    """The failure a system still stands at: ``{stage, error, at, rolled_back}`` or None.

    ``run`` end entries name per-system failures too (a provisioning failure is journaled by
    the stack operation without a system)."""
    failure: dict | None = None
    for entry in entries:
        stage, outputs = entry.get("stage"), entry.get("outputs") or {}
        if stage == "run" and outputs.get("phase") == "end":
            mine = (outputs.get("systems") or {}).get(system_id) or {}
            if mine.get("failed_stage"):
                failure = {"stage": mine["failed_stage"], "error": mine.get("error") or "",
                           "at": entry.get("at"), "rolled_back": bool(mine.get("rolled_back"))}
            continue
        if entry.get("system") != system_id or stage in (None, "plan"):
            continue
        if entry.get("result") == "failed":
            failure = {"stage": stage, "error": _error_of(entry), "at": entry.get("at"),
                       "rolled_back": rolled_back_by_itself(outputs)}
        elif failure is not None and entry.get("result") in SUCCESS:
            if stage == "rollback":
                failure["rolled_back"] = True
            elif stage == "destroy" or _later_or_same(stage, failure["stage"]):
                failure = None
    return failure
