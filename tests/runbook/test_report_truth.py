"""The report tells the truth: failures shown, figures only from what the journal proves,
the journal's verification stated, a tampered journal refused."""

from __future__ import annotations

import json

from migrate.core.census import take_census
from migrate.stages.report import build_report, render_report
from tests.runbook.story import ROLLED_BACK, STORY_DAY, TRANSFER_FAILED


def _retiring(estate, plan) -> dict[str, str]:
    from datetime import date

    census = take_census(estate.systems, estate.settings.cloud.protection_level,
                         date.fromisoformat(plan["as_of"]))
    return {sid: v.disposition for sid, v in census.verdicts.items()
            if v.disposition in ("decommission", "merge")}


def test_an_empty_journal_integrates_nothing(example):
    estate, plan = example
    figures = build_report(estate, plan, [], STORY_DAY)["figures"]
    assert figures["systems_integrated"] == {"total": 0, "moved": 0, "retired": 0}
    assert figures["systems_not_started"] == len(plan["systems"])


def test_a_retirement_counts_only_when_the_journal_holds_the_decommission(example, story):
    estate, plan = example
    zombie = next(sid for sid, d in _retiring(estate, plan).items() if d == "decommission")
    story.append("decommission_source", system=zombie, result="failed",
                 outputs={"error": "host unreachable"})
    assert build_report(estate, plan, list(story.entries()), STORY_DAY
                        )["figures"]["systems_integrated"]["retired"] == 0
    story.append("decommission_source", system=zombie, result="ok")
    figures = build_report(estate, plan, list(story.entries()), STORY_DAY)["figures"]
    assert figures["systems_integrated"] == {"total": 4, "moved": 3, "retired": 1}
    assert figures["systems_decommissioned"] == {"done": 1, "listed": 1}


def test_failures_and_rollbacks_are_in_every_rendering(example, story):
    estate, plan = example
    report = build_report(estate, plan, list(story.entries()), STORY_DAY, story.verify())
    markdown = render_report(report, "md")
    failures = markdown.split("## 失败与回退 Failures and rollbacks")[1].split("\n## ")[0]
    assert TRANSFER_FAILED in failures and "文件迁移：rsync exited 23" in failures
    assert ROLLED_BACK in failures and "已回退" in failures
    assert "| 迁移失败 systems failed | 1 |" in markdown
    assert "| 尚未开始 systems not started | 1 |" in markdown
    assert "通过 passed" in markdown and "signed" in markdown
    document = json.loads(json.dumps(report))
    failed = next(s for s in document["systems"] if s["id"] == TRANSFER_FAILED)
    assert failed["failed"] and failed["failure"]["stage"] == "transfer_files"
    # the error in the shape of every error in JSON (README, "Exit codes"), as migrate status
    # gives it: the journal keeps the message only
    assert failed["failure"]["error"] == {"type": None, "message": "rsync exited 23",
                                          "hint": None, "exit_code": None}
    assert failed["failure"]["problems"] == []
    assert document["schema_version"] == 3  # the error was a string in 2


def test_a_report_from_a_tampered_journal_says_so_and_exits_4(run_cli, estate):
    assert run_cli("plan", estate).code == 0
    assert run_cli("census", estate).code == 0
    journal = estate / ".migrate" / "journal.jsonl"
    journal.write_text(journal.read_text(encoding="utf-8").replace('"census"', '"censu5"'),
                       encoding="utf-8")
    out = estate / "report-out"
    result = run_cli("report", estate, "--out", out)
    assert result.code == 4, result.stderr
    assert "journal that does not verify" in result.stderr
    assert "line 3 (seq 2) was altered" in result.stderr
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "日志校验未通过，本报告数字不可采信" in text
    as_json = run_cli("report", estate, "--out", out, "--output", "json")
    assert as_json.code == 4
    document = json.loads(as_json.stdout)
    assert document["journal"]["verification"]["check"] == "hash"
    assert document["error"]["type"] == "JournalCorrupt"


def test_a_report_from_a_good_journal_exits_0(run_cli, estate, monkeypatch):
    monkeypatch.setenv("MIGRATE_OPERATOR", "")  # restored after: --operator sets it
    assert run_cli("plan", estate).code == 0
    result = run_cli("report", estate, "--out", estate / "r", "--operator", "王芳")
    assert result.code == 0, result.stderr
    last = (estate / ".migrate" / "journal.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    assert json.loads(last)["operator"] == "王芳"


def test_a_failed_cutover_that_rolled_back_by_itself_shows_both(example, story):
    estate, plan = example
    story.append("cutover", system="mzj-shjz", result="failed", outputs={
        "error": "rows differ", "rolled_back": {"result": "ok", "cause": "rows differ"}})
    report = build_report(estate, plan, list(story.entries()), STORY_DAY, story.verify())
    row = next(r for r in render_report(report, "md").splitlines()
               if r.startswith("| mzj-shjz |") and "失败" in r)
    assert "失败，已回退" in row and "业务切换：rows differ" in row
