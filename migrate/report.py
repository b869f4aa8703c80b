"""The progress report for the bureau (monthly, before the 5th) and for auditors.

``build_report`` derives everything from three inputs: the estate (census lists, departments,
catalogue resources), the plan (what is to move, in which wave) and the journal entries up to
``as_of``. Per system, a stage counts as done when its latest entry (up to ``as_of``)
succeeded (ok, changed, unchanged); a successful ``rollback`` undoes cutover and
verification before it, a later successful cutover clears the rollback, and ``destroy``
undoes provisioning. The assessment figures:

- systems integrated = moved (verified on the cloud) + retired (census: decommission, merge);
- systems decommissioned and merged (census);
- catalogue resources shared, by share type: declared by systems that move, and of those the
  ones whose system is verified (on the platform now);
- connectivity rate (系统联通率) = verified systems whose verification did not report
  ``interconnected: false`` ÷ systems that migrate.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import orjson

from migrate import census_report
from migrate.census import DISPOSITION_ZH, take_census
from migrate.census_report import Table
from migrate.loader import Estate
from migrate.render import bar_chart, donut_chart, render, write_text
from migrate.runbook import entries_until, plan_digest
from migrate.status import progress_flags

REPORT_SCHEMA_VERSION = 1
PROGRESS = ("planned", "provisioned", "transferred", "cut_over", "verified", "rolled_back")
PROGRESS_ZH = {"planned": "计划", "provisioned": "已开通", "transferred": "已迁移数据",
               "cut_over": "已切换", "verified": "已验证", "rolled_back": "已回退"}
STAGE_FLAG = {"provision": "provisioned", "transfer_files": "transferred",
              "transfer": "transferred", "cutover": "cut_over", "verify": "verified",
              "rollback": "rolled_back"}
SHARE_TYPES = ("unconditional", "conditional", "none")
SHARE_ZH = {"unconditional": "无条件共享", "conditional": "有条件共享", "none": "不予共享"}
REPORT_FORMATS = ("md", "html", "csv", "json")


def monthly_as_of(today: date) -> date:
    """The date a monthly report covers: the last day of the previous month (the report is
    due before the 5th of the month after)."""
    return today.replace(day=1) - timedelta(days=1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def system_status(entries: Iterable[dict], system_id: str) -> dict[str, bool]:
    """Progress flags of one system from its journal entries, in journal order (the one
    derivation ``migrate status`` and ``migrate run`` use too: ``migrate.status``)."""
    return progress_flags(entries, system_id)


def _count(rows: list[dict], key: str) -> int:
    return sum(1 for r in rows if r[key])


def _progress_row(label: dict, rows: list[dict]) -> dict:
    return {**label, "planned": len(rows),
            **{flag: _count(rows, flag) for flag in PROGRESS if flag != "planned"}}


def build_report(estate: Estate, plan: dict, journal_entries: Iterable[dict],
                 as_of: date) -> dict:
    """The report as a JSON-ready document; journal entries after ``as_of`` are left out."""
    entries = entries_until(journal_entries, as_of)
    census = take_census(estate.systems, estate.settings.cloud.protection_level,
                         date.fromisoformat(plan["as_of"]))
    systems = []
    for planned in plan["systems"]:
        status = system_status(entries, planned["id"])
        systems.append({"id": planned["id"], "name": planned["name"],
                        "department": planned["department"], "wave": planned["wave"],
                        "planned": True, **status})
    departments = sorted({(s.department.code, s.department.name)
                          for s in estate.systems.values()})
    by_department = []
    for code, name in departments:
        mine = [s for s in systems if s["department"]["code"] == code]
        retired = [sid for sid, v in census.verdicts.items()
                   if v.disposition in ("decommission", "merge")
                   and estate.systems[sid].department.code == code]
        by_department.append({**_progress_row({"code": code, "name": name}, mine),
                              "retired": len(retired)})
    by_wave = [_progress_row({"wave": w["number"]},
                             [s for s in systems if s["wave"] == w["number"]])
               for w in plan["waves"]]
    verified = {s["id"] for s in systems if s["verified"]}
    counts = census.counts()
    moved = len(verified)
    connected = sum(1 for s in systems if s["interconnected"])
    migrating = len(plan["systems"])
    declared = {t: 0 for t in SHARE_TYPES}
    shared = {t: 0 for t in SHARE_TYPES}
    for planned in plan["systems"]:
        manifest = estate.systems[planned["id"]]
        for resource in manifest.exchange.resources if manifest.exchange else []:
            declared[resource.share_type] += 1
            if planned["id"] in verified:
                shared[resource.share_type] += 1
    seal = entries[-1] if entries else None
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": "migrate.report",
        "estate": estate.settings.estate,
        "as_of": as_of.isoformat(),
        "census_as_of": census.as_of.isoformat(),
        "plan_digest": plan_digest(plan),
        "journal": {"entries_used": len(entries),
                    "last_hash": seal["hash"] if seal else None,
                    "last_at": seal["at"] if seal else None},
        "figures": {
            "systems_integrated": {"total": moved + counts["decommission"] + counts["merge"],
                                   "moved": moved,
                                   "retired": counts["decommission"] + counts["merge"]},
            "systems_decommissioned": counts["decommission"],
            "systems_merged": counts["merge"],
            "systems_refused": counts["refuse"],
            "systems_total": len(estate.systems),
            "resources_shared": {"shared": shared, "declared": declared,
                                 "total_shared": sum(shared.values()),
                                 "total_declared": sum(declared.values())},
            "connectivity": {"connected": connected, "migrating": migrating,
                             "rate": round(connected / migrating, 4) if migrating else None},
        },
        "dispositions": counts,
        "progress": {"by_department": by_department, "by_wave": by_wave,
                     "total": _progress_row({}, systems)},
        "systems": systems,
        "census": [_table_dict(t) for t in census_report.census_tables(estate.systems, census)],
    }


def _table_dict(table: Table) -> dict:
    return {"slug": table.slug, "title": table.title, "columns": list(table.columns),
            "rows": [list(r) for r in table.rows]}


def _table(doc: dict) -> Table:
    return Table(doc["slug"], doc["title"], tuple(doc["columns"]),
                 tuple(tuple(r) for r in doc["rows"]))


def _rate(figures: dict) -> str:
    c = figures["connectivity"]
    if c["rate"] is None:
        return "n/a (nothing migrates)"
    return f"{c['connected']}/{c['migrating']} = {c['rate'] * 100:.1f}%"


def report_tables(report: dict) -> list[Table]:
    """Every table of the report, in print order: figures, progress, systems, census lists.
    The CLI prints these with rich; CSV writes one file per table."""
    f = report["figures"]
    r = f["resources_shared"]
    figures = Table("figures", "考核指标 Assessment figures", ("指标 figure", "值 value"), (
        ("系统整合数 systems integrated (moved + retired)",
         f"{f['systems_integrated']['total']} ({f['systems_integrated']['moved']} moved + "
         f"{f['systems_integrated']['retired']} retired)"),
        ("清理下线 systems decommissioned", str(f["systems_decommissioned"])),
        ("整合合并 systems merged", str(f["systems_merged"])),
        ("不予迁移 systems refused", str(f["systems_refused"])),
        ("共享资源数 catalogue resources shared", f"{r['total_shared']} of "
         f"{r['total_declared']} declared"),
        ("系统联通率 connectivity rate", _rate(f)),
    ))
    shares = Table("resources_shared", "共享资源 Catalogue resources by share type",
                   ("共享类型 share type", "已共享 shared", "已申报 declared"),
                   tuple((f"{t} {SHARE_ZH[t]}", str(r["shared"][t]), str(r["declared"][t]))
                         for t in SHARE_TYPES))
    columns = tuple(f"{PROGRESS_ZH[p]} {p}" for p in PROGRESS)
    by_department = Table(
        "progress_by_department", "部门进度 Progress per department",
        ("部门 department", *columns, "已清理 retired"),
        tuple((d["name"], *(str(d[p]) for p in PROGRESS), str(d["retired"]))
              for d in report["progress"]["by_department"]))
    by_wave = Table("progress_by_wave", "批次进度 Progress per wave", ("批次 wave", *columns),
                    tuple((str(w["wave"]), *(str(w[p]) for p in PROGRESS))
                          for w in report["progress"]["by_wave"]))
    systems = Table(
        "systems", "系统状态 Systems", ("id", "名称 name", "部门 department", "批次 wave",
                                       *columns[1:], "联通 interconnected"),
        tuple((s["id"], s["name"], s["department"]["name"], str(s["wave"]),
               *("yes" if s[p] else "" for p in PROGRESS[1:]),
               "yes" if s["interconnected"] else "") for s in report["systems"]))
    return [figures, shares, by_department, by_wave, systems,
            *(_table(t) for t in report["census"])]


def terminal_tables(report: dict) -> list[Table]:
    return report_tables(report)


def report_charts(report: dict) -> dict:
    departments = report["progress"]["by_department"]
    progress = bar_chart("部门进度 Progress per department",
                         [d["name"] for d in departments],
                         [(f"{PROGRESS_ZH[p]} {p}", [d[p] for d in departments]) for p in PROGRESS])
    dispositions = donut_chart("处置 Dispositions",
                               [(f"{d} {DISPOSITION_ZH[d]}", n)
                                for d, n in report["dispositions"].items()])
    connectivity = report["figures"]["connectivity"]
    connected = donut_chart("系统联通率 Connectivity",
                            [("connected 已联通", connectivity["connected"]),
                             ("not yet 未联通",
                              connectivity["migrating"] - connectivity["connected"])],
                            colours=("#2da44e", "#afb8c1"))
    return {"progress": progress, "dispositions": dispositions, "connectivity": connected}


def render_report(report: dict, fmt: str, templates_dir: Path | None = None) -> str:
    """The report as Markdown or one self-contained HTML page (charts as inline SVG)."""
    context = {"title": f"迁移上云进度报告 Progress report: {report['estate']} "
                        f"({report['as_of']})",
               "report": report,
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


# ---------------------------------------------------------------- the committed examples


def build_example(estate_dir: Path) -> tuple[Estate, dict]:
    """The example estate and its plan, built in-process (no state written)."""
    from migrate import pipeline
    from migrate.plan import build_plan

    estate = pipeline.open_estate(estate_dir)
    return estate, build_plan(estate, pipeline.run_census(estate))


def write_examples(estate_dir: Path, out_dir: Path, *, estate_arg: str = "examples/estate",
                   screenshots: bool = False) -> list[Path]:
    """The committed example: plan runbooks and the report (no journal yet, as of the plan's
    date) of ``estate_dir`` into ``out_dir``; screenshots of the HTML pages on request."""
    from migrate.render import check_in_browser
    from migrate.runbook import write_plan_runbooks

    estate, plan = build_example(estate_dir)
    written = write_plan_runbooks(estate, plan, out_dir, estate_arg=estate_arg)
    report = build_report(estate, plan, [], date.fromisoformat(plan["as_of"]))
    written += write_report(report, out_dir / "report")
    if screenshots:
        folder = out_dir / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        first = plan["systems"][0]["id"]
        for page, name in ((out_dir / "report" / "report.html", "report.png"),
                           (out_dir / "plan" / f"{first}.html", f"plan-{first}.png"),
                           (out_dir / "plan" / "wave-1.html", "plan-wave-1.png")):
            check = check_in_browser(page, folder / name)
            if check.problems:
                raise RuntimeError(f"{page}: {check.problems}")
            written.append(check.screenshot)
    return written


if __name__ == "__main__":  # python -m migrate.report: regenerate runbooks/examples
    import sys

    root = Path(__file__).resolve().parent.parent
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "runbooks" / "examples"
    for path in write_examples(root / "examples" / "estate", target, screenshots=True):
        print(path)
