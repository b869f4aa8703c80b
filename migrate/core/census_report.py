"""The census lists as tables: 自查报告, 清理整合清单 and 接入共享平台清单.

Each list is a title plus columns plus rows of plain strings, so the terminal (rich), Markdown
and CSV renderings all come from the same data.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from migrate.core.census import CensusResult
from migrate.core.model import SystemManifest
from migrate.core.terms import (
    CLASSIFICATION_ZH,
    DISPOSITION_ZH,
    FUNDING_ZH,
    NETWORK_ZH,
    SHARE_ZH,
    USAGE_SCOPE_ZH,
    term,
)


@dataclass(frozen=True)
class Table:
    slug: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def self_inspection(systems: dict[str, SystemManifest], census: CensusResult) -> Table:
    rows = []
    for sid, s in systems.items():
        c = s.census
        rows.append((
            sid, s.name, s.department.name, s.function, term(USAGE_SCOPE_ZH, c.usage_scope),
            str(c.usage_frequency.monthly_active_users),
            c.usage_frequency.last_used.isoformat() if c.usage_frequency.last_used else "从未使用",
            f"{c.approval.department} {c.approval.date.isoformat()} {c.approval.document}",
            term(FUNDING_ZH, c.funding), term(NETWORK_ZH, c.network),
            f"等保{s.protection_level}级", term(CLASSIFICATION_ZH, s.classification),
            "在运维" if c.maintenance.active else "已停止",
            "" if c.annual_cost_wan is None else f"{c.annual_cost_wan:g}",
            term(DISPOSITION_ZH, census.verdicts[sid].disposition),
        ))
    return Table(
        "self_inspection", "自查报告 Self-inspection report",
        ("编号 id", "名称 name", "部门 department", "功能 function", "使用范围 scope",
         "月活 monthly users", "最近使用 last used", "审批 approval", "经费 funding",
         "承载网络 network", "等保 level", "涉密 classification", "运维 maintenance",
         "年费用(万元) cost", "处置 disposition"),
        tuple(rows),
    )


def _reasons(verdict) -> str:
    """The census's reasons as sentences (their codes stay in the census JSON)."""
    return "; ".join(r.message for r in verdict.reasons)


def cleanup_list(systems: dict[str, SystemManifest], census: CensusResult) -> Table:
    rows = []
    for sid, verdict in census.verdicts.items():
        if verdict.disposition == "migrate":
            continue
        rows.append((
            sid, systems[sid].name, systems[sid].department.name,
            term(DISPOSITION_ZH, verdict.disposition), verdict.merge_into or "",
            _reasons(verdict),
        ))
    return Table(
        "cleanup_list", "清理整合清单 Clean-up list",
        ("编号 id", "名称 name", "部门 department", "处置 disposition", "并入 merge into",
         "理由 reasons"),
        tuple(rows),
    )


def connect_list(systems: dict[str, SystemManifest], census: CensusResult) -> Table:
    rows = []
    for sid in census.with_disposition("migrate"):
        system = systems[sid]
        resources = system.exchange.resources if system.exchange else []
        rows.append((
            sid, system.name, system.department.name,
            system.exchange.app_key if system.exchange else "（缺失）",
            str(len(resources)),
            "; ".join(f"{r.code} {r.name}（{term(SHARE_ZH, r.share_type)}）" for r in resources),
        ))
    return Table(
        "connect_list", "接入共享平台清单 Systems to connect to the sharing platform",
        ("编号 id", "名称 name", "部门 department", "应用标识 app_key", "资源数 resources",
         "信息资源 catalogue resources"),
        tuple(rows),
    )


def census_tables(systems: dict[str, SystemManifest], census: CensusResult) -> list[Table]:
    return [self_inspection(systems, census), cleanup_list(systems, census),
            connect_list(systems, census)]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table, estate_title: str, as_of: str) -> str:
    lines = [f"# {table.title}", "", f"{estate_title} · as of {as_of}", "",
             "| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if not table.rows:
        lines.append("| " + " | ".join("" for _ in table.columns) + " |")
    return "\n".join(lines) + "\n"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text, never runs as a formula (OWASP CSV injection):
    text starting with = + - @ tab or CR gets a leading '. A plain number such as -3.5
    stays as it is; it cannot hold a formula."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(value):
        value = "'" + value
    # Rows end in "\n", so the writer quotes a cell holding "\n" but not one holding a bare
    # "\r", which readers take for the end of the row: a cell could add rows of its own.
    return value.replace("\r\n", "\n").replace("\r", "\n")


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in table.columns])
    writer.writerows([csv_cell(c) for c in row] for row in table.rows)
    return buffer.getvalue()


def write_census_files(tables: list[Table], folder: Path, estate_title: str,
                       as_of: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        for suffix, text in ((".md", to_markdown(table, estate_title, as_of)),
                             (".csv", to_csv(table))):
            path = folder / f"{table.slug}{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
