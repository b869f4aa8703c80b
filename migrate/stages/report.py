"""The progress report for the bureau (monthly, before the 5th) and for auditors.

``build_report`` derives everything from three inputs: the estate (census lists, departments,
catalogue resources), the plan (what is to move, in which wave) and the journal entries up to
``as_of``, with the journal's verification. Per system, a stage counts as done when its
latest entry (up to ``as_of``) succeeded (ok, changed, unchanged); a successful ``rollback``
undoes cutover and verification before it, a later successful cutover clears the rollback,
and ``destroy`` undoes provisioning (``migrate.orchestrate.status``). A failed entry is the system's
failure until the same or a later stage succeeds; a system with no entry has not started.

The assessment figures count only what the journal proves, never a census verdict alone:

- systems integrated = moved (verified on the cloud) + retired, where a retirement counts
  only when the journal holds a successful ``decommission_source`` of that system;
- systems decommissioned and merged: retirements done (journal) of those the census listed;
- catalogue resources shared, by share type: declared by systems that move, and of those the
  ones whose system is verified (on the platform now);
- connectivity rate (系统联通率) = verified systems whose verification did not report
  ``interconnected: false`` ÷ systems that migrate.

A report from a journal that does not verify says so on its first lines; the CLI then exits 4.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import orjson

from migrate.adapters.render import donut_chart, render, stacked_bar_chart, write_text
from migrate.core import census_report
from migrate.core.census import take_census
from migrate.core.census_report import Table
from migrate.core.journal import Verification, entries_until, verification_summary
from migrate.core.loader import Estate
from migrate.core.plan import plan_digest
from migrate.core.standing import SUCCESS, journaled_error, progress_flags, standing_failure
from migrate.core.terms import DISPOSITION_ZH, PROGRESS_ZH, SHARE_ZH, stage_title, utc_and_cst

REPORT_SCHEMA_VERSION = 3  # 3: a system's failure.error is an error object (#21), was a string
PROGRESS = ("planned", "not_started", "provisioned", "transferred", "cut_over", "verified",
            "rolled_back", "failed", "decommissioned")
SHARE_TYPES = ("unconditional", "conditional", "none")
REPORT_FORMATS = ("md", "html", "csv", "json")
RETIRING = ("decommission", "merge")
RETIREMENT_STAGES = ("decommission_source",)


def monthly_as_of(today: date) -> date:
    """The date a monthly report covers: the last day of the previous month (the report is
    due before the 5th of the month after)."""
    return today.replace(day=1) - timedelta(days=1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def system_status(entries: list[dict], system_id: str) -> dict:
    """Where one system stands from its journal entries, in journal order (the derivation
    ``migrate status`` and ``migrate run`` use too: ``migrate.orchestrate.status``), with
    its standing failure, whether anything happened yet, and whether its source was
    decommissioned."""
    flags = progress_flags(entries, system_id)
    failure = standing_failure(entries, system_id)
    mine = [e for e in entries if e.get("system") == system_id]
    return {**flags, "failed": failure is not None,
            "failure": None if failure is None else {
                "stage": failure["stage"], "error": journaled_error(failure["error"]),
                "problems": [], "at": failure["at"]},
            "not_started": not mine,
            "decommissioned": retired_in_journal(entries, system_id),
            "rollback": last_rollback(mine) if flags["rolled_back"] else None}


def last_rollback(entries: list[dict]) -> dict | None:
    """The rollback that stands: its time and reason (a failed cutover's own rollback gives
    the failure as its reason)."""
    for entry in reversed(entries):
        outputs = entry.get("outputs") or {}
        if entry.get("stage") == "rollback" and entry.get("result") in SUCCESS:
            return {"at": entry.get("at"), "reason": outputs.get("reason")}
        rolled = outputs.get("rolled_back")
        if entry.get("stage") in ("cutover", "verify") and isinstance(rolled, dict):
            return {"at": entry.get("at"), "reason": rolled.get("cause")}
    return None


def retired_in_journal(entries: Iterable[dict], system_id: str) -> bool:
    """The journal proves a retirement: a successful decommission of the system."""
    return any(e.get("system") == system_id and e.get("stage") in RETIREMENT_STAGES
               and e.get("result") in SUCCESS for e in entries)


def _count(rows: list[dict], key: str) -> int:
    return sum(1 for r in rows if r[key])


def _progress_row(label: dict, rows: list[dict]) -> dict:
    return {**label, "planned": len(rows),
            **{flag: _count(rows, flag) for flag in PROGRESS if flag != "planned"}}


def journal_section(entries: list[dict], verification: Verification | None) -> dict:
    seal = entries[-1] if entries else None
    checked = None
    if verification is not None:
        checked = {"ok": verification.ok, "status": verification.status,
                   "problem": verification.problem, "check": verification.check,
                   "key_id": verification.key_id, "checkpoints": verification.checkpoints,
                   "entries": verification.entries, "warnings": list(verification.warnings),
                   "summary": verification_summary(verification)}
    return {"entries_used": len(entries), "last_hash": seal["hash"] if seal else None,
            "last_at": seal["at"] if seal else None, "verification": checked}


def build_report(estate: Estate, plan: dict, journal_entries: Iterable[dict], as_of: date,
                 verification: Verification | None = None) -> dict:
    """The report as a JSON-ready document; journal entries after ``as_of`` are left out.
    ``verification`` is the whole journal's (None: no journal yet)."""
    entries = entries_until(journal_entries, as_of)
    census = take_census(estate.systems, estate.settings.cloud.protection_level,
                         date.fromisoformat(plan["as_of"]))
    systems = [{"id": planned["id"], "name": planned["name"],
                "department": planned["department"], "wave": planned["wave"],
                "planned": True, **system_status(entries, planned["id"])}
               for planned in plan["systems"]]
    to_retire = {sid: v.disposition for sid, v in census.verdicts.items()
                 if v.disposition in RETIRING}
    retired = {sid: d for sid, d in to_retire.items() if retired_in_journal(entries, sid)}
    departments = sorted({(s.department.code, s.department.name)
                          for s in estate.systems.values()})
    by_department = []
    for code, name in departments:
        mine = [s for s in systems if s["department"]["code"] == code]
        ours = [sid for sid in to_retire if estate.systems[sid].department.code == code]
        by_department.append({**_progress_row({"code": code, "name": name}, mine),
                              "to_retire": len(ours),
                              "retired": sum(1 for sid in ours if sid in retired)})
    by_wave = [_progress_row({"wave": w["number"]},
                             [s for s in systems if s["wave"] == w["number"]])
               for w in plan["waves"]]
    verified = {s["id"] for s in systems if s["verified"]}
    counts = census.counts()
    connected = sum(1 for s in systems if s["interconnected"])
    migrating = len(plan["systems"])
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": "migrate.report",
        "estate": estate.settings.estate,
        "as_of": as_of.isoformat(),
        "census_as_of": census.as_of.isoformat(),
        "plan_digest": plan_digest(plan),
        "journal": journal_section(entries, verification),
        "figures": {
            "systems_integrated": {"total": len(verified) + len(retired),
                                   "moved": len(verified), "retired": len(retired)},
            "systems_decommissioned": _done_of(retired, to_retire, "decommission"),
            "systems_merged": _done_of(retired, to_retire, "merge"),
            "systems_refused": counts["refuse"],
            "systems_total": len(estate.systems),
            "systems_failed": sum(1 for s in systems if s["failed"]),
            "systems_not_started": sum(1 for s in systems if s["not_started"]),
            "resources_shared": _resources(estate, plan, verified),
            "connectivity": {"connected": connected, "migrating": migrating,
                             "rate": round(connected / migrating, 4) if migrating else None},
        },
        "dispositions": counts,
        "progress": {"by_department": by_department, "by_wave": by_wave,
                     "total": _progress_row({}, systems)},
        "systems": systems,
        "census": [_table_dict(t) for t in census_report.census_tables(estate.systems, census)],
    }


def _done_of(retired: dict[str, str], to_retire: dict[str, str], disposition: str) -> dict:
    return {"done": sum(1 for d in retired.values() if d == disposition),
            "listed": sum(1 for d in to_retire.values() if d == disposition)}


def _resources(estate: Estate, plan: dict, verified: set[str]) -> dict:
    declared = {t: 0 for t in SHARE_TYPES}
    shared = {t: 0 for t in SHARE_TYPES}
    for planned in plan["systems"]:
        manifest = estate.systems[planned["id"]]
        for resource in manifest.exchange.resources if manifest.exchange else []:
            declared[resource.share_type] += 1
            if planned["id"] in verified:
                shared[resource.share_type] += 1
    return {"shared": shared, "declared": declared, "total_shared": sum(shared.values()),
            "total_declared": sum(declared.values())}


def _table_dict(table: Table) -> dict:
    return {"slug": table.slug, "title": table.title, "columns": list(table.columns),
            "rows": [list(r) for r in table.rows]}


def _table(doc: dict) -> Table:
    return Table(doc["slug"], doc["title"], tuple(doc["columns"]),
                 tuple(tuple(r) for r in doc["rows"]))


def _rate(figures: dict) -> str:
    c = figures["connectivity"]
    if c["rate"] is None:
        return "不适用（无迁移系统）"
    return f"{c['connected']}/{c['migrating']} = {c['rate'] * 100:.1f}%"


def journal_status(report: dict) -> str:
    """One line on the journal the report was made from."""
    checked = report["journal"]["verification"]
    if checked is None:
        return "尚无运行日志：各项进度均为零 (no journal yet)"
    if not checked["ok"]:
        return ("日志校验未通过，本报告数字不可采信 — the journal does not verify, do not rely "
                f"on this report: {checked['problem']}")
    return checked["summary"]


def _figures_table(report: dict) -> Table:
    f = report["figures"]
    r = f["resources_shared"]
    integrated = f["systems_integrated"]
    return Table("figures", "考核指标 Assessment figures", ("指标 figure", "值 value"), (
        ("日志校验 journal verification", journal_status(report)),
        ("系统整合数 systems integrated (moved + retired)",
         f"{integrated['total']}（迁移上云 {integrated['moved']} + 清理整合 "
         f"{integrated['retired']}）"),
        ("清理下线 systems decommissioned", _done_text(f["systems_decommissioned"])),
        ("整合合并 systems merged", _done_text(f["systems_merged"])),
        ("不予迁移 systems refused", str(f["systems_refused"])),
        ("迁移失败 systems failed", str(f["systems_failed"])),
        ("尚未开始 systems not started", str(f["systems_not_started"])),
        ("共享资源数 catalogue resources shared", f"{r['total_shared']} / 申报 "
         f"{r['total_declared']}"),
        ("系统联通率 connectivity rate", _rate(f)),
    ))


def _done_text(done: dict) -> str:
    return f"已完成 {done['done']} / 自查列出 {done['listed']}"


def _mark(flag: bool) -> str:
    return "✓" if flag else ""


def _failure_text(system: dict) -> str:
    failure = system.get("failure")
    if failure:
        return f"{stage_title(failure['stage'])}：{failure['error']['message']}"
    rollback = system.get("rollback") or {}
    return f"回退原因：{rollback.get('reason') or '未说明'}"


def _failure_state(system: dict) -> str:
    if system["failed"] and system["rolled_back"]:
        return "失败，已回退"
    return "失败" if system["failed"] else "已回退"


def _failure_time(system: dict) -> str:
    at = (system.get("failure") or system.get("rollback") or {}).get("at")
    return utc_and_cst(at) if at else "—"


def report_tables(report: dict) -> list[Table]:
    """Every table of the report, in print order: figures, progress, systems, failures,
    census lists. The CLI prints these with rich; CSV writes one file per table."""
    r = report["figures"]["resources_shared"]
    shares = Table("resources_shared", "共享资源 Catalogue resources by share type",
                   ("共享类型 share type", "已共享 shared", "已申报 declared"),
                   tuple((SHARE_ZH[t], str(r["shared"][t]), str(r["declared"][t]))
                         for t in SHARE_TYPES))
    columns = tuple(PROGRESS_ZH[p] for p in PROGRESS)
    by_department = Table(
        "progress_by_department", "部门进度 Progress per department",
        ("部门 department", *columns, "应清理 to retire", "已清理 retired"),
        tuple((d["name"], *(str(d[p]) for p in PROGRESS), str(d["to_retire"]),
               str(d["retired"])) for d in report["progress"]["by_department"]))
    by_wave = Table("progress_by_wave", "批次进度 Progress per wave", ("批次 wave", *columns),
                    tuple((f"第{w['wave']}批", *(str(w[p]) for p in PROGRESS))
                          for w in report["progress"]["by_wave"]))
    systems = Table(
        "systems", "系统状态 Systems", ("编号 id", "名称 name", "部门 department", "批次 wave",
                                       *columns[1:], "联通 connected"),
        tuple((s["id"], s["name"], s["department"]["name"], f"第{s['wave']}批",
               *(_mark(s[p]) for p in PROGRESS[1:]), _mark(s["interconnected"]))
              for s in report["systems"]))
    failures = Table(
        "failures", "失败与回退 Failures and rollbacks",
        ("编号 id", "名称 name", "状态 state", "环节与原因 stage and error", "时间 time"),
        tuple((s["id"], s["name"], _failure_state(s),
               _failure_text(s), _failure_time(s))
              for s in report["systems"] if s["failed"] or s["rolled_back"]))
    return [_figures_table(report), shares, by_department, by_wave, systems, failures,
            *(_table(t) for t in report["census"])]


def terminal_tables(report: dict) -> list[Table]:
    return report_tables(report)


# Where a system stands, one state each, for the progress chart (worst news first).
CHART_STATES = ("failed", "rolled_back", "verified", "cut_over", "transferred", "provisioned",
                "not_started")
CHART_COLOURS = ("#cf222e", "#bf8700", "#2da44e", "#1f6feb", "#54aeff", "#8250df", "#afb8c1",
                 "#57606a", "#0a7f86")


def chart_state(system: dict) -> str:
    return next((state for state in CHART_STATES if system[state]), "not_started")


def report_charts(report: dict) -> dict:
    departments = report["progress"]["by_department"]
    states = {d["code"]: dict.fromkeys(CHART_STATES, 0) for d in departments}
    for system in report["systems"]:
        states[system["department"]["code"]][chart_state(system)] += 1
    series = [(PROGRESS_ZH[state], [states[d["code"]][state] for d in departments])
              for state in CHART_STATES]
    series += [("待清理", [d["to_retire"] - d["retired"] for d in departments]),
               ("已清理", [d["retired"] for d in departments])]
    progress = stacked_bar_chart("部门进度 Progress per department",
                                 [d["name"] for d in departments], series,
                                 colours=CHART_COLOURS)
    dispositions = donut_chart("自查处置 Dispositions",
                               [(DISPOSITION_ZH[d], n)
                                for d, n in report["dispositions"].items()])
    connectivity = report["figures"]["connectivity"]
    connected = donut_chart("系统联通率 Connectivity",
                            [("已联通 connected", connectivity["connected"]),
                             ("未联通 not yet",
                              connectivity["migrating"] - connectivity["connected"])],
                            colours=("#2da44e", "#afb8c1"))
    return {"progress": progress, "dispositions": dispositions, "connectivity": connected}


def render_report(report: dict, fmt: str, templates_dir: Path | None = None) -> str:
    """The report as Markdown or one self-contained HTML page (charts as inline SVG)."""
    context = {"title": f"迁移上云进度报告 Progress report: {report['estate']} "
                        f"({report['as_of']})",
               "report": report,
               "journal_status": journal_status(report),
               "last_at": utc_and_cst(report["journal"]["last_at"])
               if report["journal"]["last_at"] else "尚无 none",
               "tables": [_table_dict(t) for t in report_tables(report)],
               "charts": report_charts(report) if fmt == "html" else {}}
    if templates_dir is None:
        return render("report.j2", fmt, context)
    return render("report.j2", fmt, context, templates_dir)


def to_json(report: dict) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def write_report(report: dict, out_dir: Path,
                 formats: Iterable[str] = REPORT_FORMATS) -> list[Path]:
    """``report.md``, ``report.html``, ``report.json`` and ``csv/<table>.csv`` in ``out_dir``."""
    written = []
    for fmt in formats:
        if fmt in ("md", "html"):
            written.append(write_text(out_dir / f"report.{fmt}", render_report(report, fmt)))
        elif fmt == "json":
            written.append(write_text(out_dir / "report.json", to_json(report)))
        elif fmt == "csv":
            written += [write_text(out_dir / "csv" / f"{t.slug}.csv", census_report.to_csv(t))
                        for t in report_tables(report)]
        else:
            raise ValueError(f"unknown report format {fmt!r}")
    return written
