"""The progress report: figures from a synthetic journal, as-of filtering, CSV/JSON shapes."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import pytest

from migrate.stages.report import (
    PROGRESS,
    build_report,
    monthly_as_of,
    render_report,
    report_tables,
    system_status,
    write_report,
)
from tests.runbook.story import ROLLED_BACK, STORY_DAY, TRANSFER_FAILED, UNTOUCHED, VERIFIED


def _report(example, journal, as_of=STORY_DAY):
    estate, plan = example
    return build_report(estate, plan, list(journal.entries()), as_of)


def test_assessment_figures_from_the_journal(example, story):
    estate, _ = example
    figures = _report(example, story)["figures"]
    assert figures["connectivity"] == {"connected": 3, "migrating": 6, "rate": 0.5}
    # the census lists 2 to retire, but the journal proves no retirement yet
    assert figures["systems_integrated"] == {"total": 3, "moved": 3, "retired": 0}
    assert figures["systems_decommissioned"] == {"done": 0, "listed": 1}
    assert figures["systems_merged"] == {"done": 0, "listed": 1}
    assert figures["systems_failed"] == 1 and figures["systems_not_started"] == 1
    assert figures["systems_refused"] == 2
    shared = figures["resources_shared"]
    expected = {"unconditional": 0, "conditional": 0, "none": 0}
    for sid in VERIFIED:
        for resource in estate.systems[sid].exchange.resources:
            expected[resource.share_type] += 1
    assert shared["shared"] == expected and shared["total_shared"] == sum(expected.values())
    assert shared["total_declared"] == 8 and 0 < shared["total_shared"] < 8


def test_progress_per_system_wave_and_department(example, story):
    report = _report(example, story)
    systems = {s["id"]: s for s in report["systems"]}
    for sid in VERIFIED:
        assert systems[sid]["verified"] and systems[sid]["cut_over"]
    rolled = systems[ROLLED_BACK]
    assert rolled["rolled_back"] and not rolled["cut_over"] and not rolled["verified"]
    assert rolled["transferred"]
    failed = systems[TRANSFER_FAILED]
    assert failed["provisioned"] and not failed["transferred"]
    assert failed["failed"] and failed["failure"]["stage"] == "transfer_files"
    assert systems[UNTOUCHED]["not_started"]
    assert not any(systems[UNTOUCHED][flag] for flag in PROGRESS[2:])
    total = report["progress"]["total"]
    assert total == {"planned": 6, "not_started": 1, "provisioned": 5, "transferred": 4,
                     "cut_over": 3, "verified": 3, "rolled_back": 1, "failed": 1,
                     "decommissioned": 0}
    wave1 = report["progress"]["by_wave"][0]
    assert wave1 == {"wave": 1, "planned": 3, "not_started": 0, "provisioned": 3,
                     "transferred": 3, "cut_over": 3, "verified": 3, "rolled_back": 0,
                     "failed": 0, "decommissioned": 0}
    rsj = next(d for d in report["progress"]["by_department"] if d["code"] == "rsj")
    assert rsj["planned"] == 1 and rsj["rolled_back"] == 1
    assert rsj["to_retire"] == 1 and rsj["retired"] == 0


def test_a_later_cutover_clears_a_rollback_and_destroy_clears_provisioning():
    def entry(stage, result="ok"):
        return {"system": "s", "stage": stage, "result": result}
    flags = system_status([entry("provision", "changed"), entry("cutover"), entry("rollback"),
                           entry("cutover"), entry("verify")], "s")
    assert flags["verified"] and flags["cut_over"] and not flags["rolled_back"]
    assert flags["interconnected"]
    flags = system_status([entry("provision", "changed"), entry("destroy", "changed")], "s")
    assert not flags["provisioned"]
    flags = system_status([entry("verify"), entry("verify", "failed")], "s")
    assert not flags["verified"]


def test_a_verification_that_did_not_reach_the_platform_is_not_connected(example, story):
    story.append("verify", system=UNTOUCHED, result="ok", outputs={"interconnected": False})
    report = _report(example, story)
    assert report["figures"]["connectivity"]["connected"] == 3
    assert report["figures"]["systems_integrated"]["moved"] == 4


def test_entries_after_as_of_are_left_out(example, story):
    entries = list(story.entries())
    later = (STORY_DAY + timedelta(days=40)).isoformat()
    # the journal of a month later: the verifications happened after the report date
    shifted = [{**e, "at": later + e["at"][10:]} if e["stage"] == "verify" else e
               for e in entries]
    estate, plan = example
    now = build_report(estate, plan, shifted, STORY_DAY)
    assert now["figures"]["connectivity"]["connected"] == 0
    assert now["progress"]["total"]["cut_over"] == 3
    assert now["journal"]["entries_used"] == len(entries) - len(VERIFIED)
    then = build_report(estate, plan, shifted, STORY_DAY + timedelta(days=40))
    assert then["figures"]["connectivity"]["connected"] == 3
    before = build_report(estate, plan, entries, STORY_DAY - timedelta(days=1))
    assert before["journal"] == {"entries_used": 0, "last_hash": None, "last_at": None,
                                 "verification": None}
    assert before["progress"]["total"]["provisioned"] == 0


def test_monthly_as_of_is_the_end_of_the_previous_month():
    assert monthly_as_of(date(2026, 12, 3)) == date(2026, 11, 30)
    assert monthly_as_of(date(2026, 1, 4)) == date(2025, 12, 31)
    assert monthly_as_of(date(2026, 3, 1)) == date(2026, 2, 28)


def test_csv_and_json_shapes(tmp_path, example, story):
    report = _report(example, story)
    written = write_report(report, tmp_path)
    tables = report_tables(report)
    slugs = [t.slug for t in tables]
    assert slugs[:6] == ["figures", "resources_shared", "progress_by_department",
                         "progress_by_wave", "systems", "failures"]
    assert slugs[6:] == ["self_inspection", "cleanup_list", "connect_list"]
    for table in tables:
        path = tmp_path / "csv" / f"{table.slug}.csv"
        assert path in written
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        assert tuple(rows[0]) == table.columns
        assert len(rows) == len(table.rows) + 1
        assert all(len(r) == len(table.columns) for r in rows)
    waves = list(csv.DictReader(io.StringIO(
        (tmp_path / "csv" / "progress_by_wave.csv").read_text(encoding="utf-8"))))
    assert waves[0]["已验证"] == "3"
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["kind"] == "migrate.report" and document["as_of"] == STORY_DAY.isoformat()
    assert document["figures"]["connectivity"]["rate"] == 0.5
    assert document["journal"]["last_hash"] == list(story.entries())[-1]["hash"]
    assert {t["slug"] for t in document["census"]} == {"self_inspection", "cleanup_list",
                                                       "connect_list"}


def test_report_renderings_are_deterministic(tmp_path, example, story):
    first = {fmt: render_report(_report(example, story), fmt) for fmt in ("md", "html")}
    again = {fmt: render_report(_report(example, story), fmt) for fmt in ("md", "html")}
    assert first == again
    assert "| 系统联通率 connectivity rate | 3/6 = 50.0% |" in first["md"]
    assert first["html"].count("<svg") == 3


def test_an_unknown_format_is_refused(tmp_path, example, story):
    with pytest.raises(ValueError, match="pdf"):
        write_report(_report(example, story), tmp_path, ["pdf"])


def test_a_failed_cutover_that_rolled_back_by_itself_counts_as_rolled_back():
    entries = [{"system": "s", "stage": "transfer", "result": "ok"},
               {"system": "s", "stage": "cutover", "result": "failed",
                "outputs": {"rolled_back": {"result": "ok", "cause": "rows differ"}}}]
    flags = system_status(entries, "s")
    assert flags["transferred"] and flags["rolled_back"] and not flags["cut_over"]
    entries[1]["outputs"]["rolled_back"]["result"] = "failed"
    assert not system_status(entries, "s")["rolled_back"]
