"""Plan and evidence runbooks: content, determinism, the committed example (golden)."""

from __future__ import annotations

import re
from pathlib import Path

from migrate.orchestrate.examples import write_examples
from migrate.stages.runbook import (
    STAGE_TITLES,
    STAGES,
    write_evidence_runbooks,
    write_plan_runbooks,
    write_runbooks,
)
from tests.runbook.story import (
    COMMITTED_EXAMPLES,
    EXAMPLE_ESTATE,
    ROLLED_BACK,
    TRANSFER_SHAPED,
    UNTOUCHED,
    VERIFIED,
)

STAGE_HEADINGS = [STAGE_TITLES[s] for s in STAGES]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and "screenshots" not in p.parts}


def test_plan_runbooks_cover_every_system_and_wave(tmp_path, example):
    estate, plan = example
    written = write_plan_runbooks(estate, plan, tmp_path, estate_arg="examples/estate")
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    for system in plan["systems"]:
        assert {f"plan/{system['id']}.md", f"plan/{system['id']}.html"} <= names
    for wave in plan["waves"]:
        assert f"plan/wave-{wave['number']}.md" in names
    text = (tmp_path / "plan" / "scj-qyxy.md").read_text(encoding="utf-8")
    assert "migrate preview examples/estate --system scj-qyxy" in text
    assert "migrate provision examples/estate --system scj-qyxy --yes" in text
    assert "migrate cutover examples/estate --system scj-qyxy --yes" in text
    scj = next(s for s in plan["systems"] if s["id"] == "scj-qyxy")
    for instance in scj["instances"]:
        assert f"| {instance['resource_name']} | {instance['flavor']} |" in text
        assert instance["address"] in text
    assert "| scj-qyxy-db-pgdata | scj-qyxy-db | /var/lib/postgresql | 72 | 数据库 | 是 yes |" \
        in text
    assert f"允许停机 allowed downtime | {scj['max_downtime_minutes']} |" in text
    assert "migrate rollback examples/estate --system scj-qyxy --yes --reason" in text
    for role in ("编制 prepared by", "审核 reviewed by", "批准 approved by"):
        assert role in text
    wave = (tmp_path / "plan" / "wave-2.md").read_text(encoding="utf-8")
    assert "rsj-sbcx" in wave and "zrj-bdcdj" in wave and "| scj-qyxy |" in wave


def test_exceeding_the_downtime_window_is_called_out(tmp_path, example):
    estate, plan = example
    plan = {**plan, "systems": [dict(s) for s in plan["systems"]]}
    plan["systems"][0]["max_downtime_minutes"] = 1
    plan["systems"][0]["estimates"] = {**plan["systems"][0]["estimates"], "cutover_minutes": 9}
    write_plan_runbooks(estate, plan, tmp_path, formats=["md"])
    text = (tmp_path / "plan" / f"{plan['systems'][0]['id']}.md").read_text(encoding="utf-8")
    assert "EXCEEDS the agreed window" in text


def test_plan_runbooks_are_deterministic(tmp_path, example):
    estate, plan = example
    write_plan_runbooks(estate, plan, tmp_path / "a")
    write_plan_runbooks(estate, plan, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_the_committed_example_runbooks_are_what_regenerating_gives(tmp_path):
    """Golden: regenerate with 'python -m migrate.stages.report' when the plan or templates
    change."""
    write_examples(EXAMPLE_ESTATE, tmp_path)
    assert _files(tmp_path) == _files(COMMITTED_EXAMPLES)


def test_evidence_runbook_shows_the_journal(tmp_path, example, story):
    estate, plan = example
    out = tmp_path / "runbooks"
    written = write_evidence_runbooks(estate, plan, story, out)
    assert out / "evidence" / "scj-qyxy.md" in written
    entries = list(story.entries())
    text = (out / "evidence" / VERIFIED[0]).with_suffix(".md").read_text(encoding="utf-8")
    assert f"| last entry hash 封存哈希 | {entries[-1]['hash']} |" in text
    assert "通过 passed" in text and "signed" in text
    assert "| /srv/data | sha256:aa | sha256:aa | 是 yes |" in text
    assert "| public.items | 1200 | 1200 | 是 yes |" in text
    assert "| health /health | pass 通过 | 200 |" in text
    assert "measured downtime 实测停机 | 74.5 s |" in text
    link = re.search(r"\[artifacts/scj-qyxy/transfer.log · sha256:[0-9a-f]{64}\]\(([^)]+)\)",
                     text)
    assert link and (out / "evidence" / link.group(1)).resolve().is_file()
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert [s for s in sections if s in STAGE_HEADINGS] == STAGE_HEADINGS
    untouched = (out / "evidence" / f"{UNTOUCHED}.md").read_text(encoding="utf-8")
    assert "not recorded: no stage has run for this system yet." in untouched
    assert untouched.count("not recorded: this stage has not run") == len(STAGES)
    rolled = (out / "evidence" / f"{ROLLED_BACK}.md").read_text(encoding="utf-8")
    assert "## 回退 Rollback\n\n结果 Result: 成功" in rolled
    assert "回退原因 Reason: seq" in rolled and "切换后健康检查失败" in rolled
    assert "张伟（示例市大数据局）" in rolled and "北京时间" in rolled
    index = (out / "index.md").read_text(encoding="utf-8")
    assert "(evidence/scj-qyxy.md)" in index


def test_a_stage_without_evidence_reads_not_recorded(tmp_path, example, story):
    estate, plan = example
    story.append("verify", system="mzj-shjz", result="failed",
                 details={"error": "health check timed out"})
    write_evidence_runbooks(estate, plan, story, tmp_path, systems=["mzj-shjz"], formats=["md"])
    text = (tmp_path / "evidence" / "mzj-shjz.md").read_text(encoding="utf-8")
    verify = text.split("## 验证 Verify")[1].split("\n## ")[0]
    assert "结果 Result: 失败" in verify and "health check timed out" in verify
    assert "| check | result | detail |" not in verify and "not recorded" in verify


def test_evidence_runbooks_are_deterministic_and_follow_the_journal(tmp_path, example, story):
    estate, plan = example
    write_evidence_runbooks(estate, plan, story, tmp_path / "a")
    write_evidence_runbooks(estate, plan, story, tmp_path / "b")
    first = _files(tmp_path / "a")
    assert first == _files(tmp_path / "b")
    story.append("verify", system="mzj-shjz", result="ok")
    write_evidence_runbooks(estate, plan, story, tmp_path / "a")
    assert _files(tmp_path / "a")["evidence/mzj-shjz.md"] != first["evidence/mzj-shjz.md"]


def test_evidence_runbook_reports_a_tampered_journal(tmp_path, example, story):
    estate, plan = example
    raw = story.path.read_bytes()
    story.path.write_bytes(raw.replace(b'"duration_s":610.2', b'"duration_s":610.3', 1))
    write_evidence_runbooks(estate, plan, story, tmp_path, formats=["md"])
    text = (tmp_path / "evidence" / "scj-qyxy.md").read_text(encoding="utf-8")
    assert "未通过 FAILED (hash): line 4 (seq 3) was altered" in text


def test_write_runbooks_writes_plan_evidence_and_index(tmp_path, example, story):
    estate, plan = example
    written = write_runbooks(estate, plan, story, tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"plan/scj-qyxy.md", "evidence/scj-qyxy.html", "index.md", "index.html"} <= names
    assert len(names) == len(set(written))
    assert "(evidence/mzj-shjz.md)" in (tmp_path / "index.md").read_text(encoding="utf-8")


def test_evidence_from_the_entries_migrate_transfer_writes(tmp_path, example, story):
    estate, plan = example
    out = tmp_path / "runbooks"
    write_evidence_runbooks(estate, plan, story, out, systems=[TRANSFER_SHAPED], formats=["md"])
    text = (out / "evidence" / f"{TRANSFER_SHAPED}.md").read_text(encoding="utf-8")
    titles = {title: stage for stage, title in STAGE_TITLES.items()}
    section = {titles.get(part.split("\n")[0], part.split("\n")[0]): part
               for part in text.split("\n## ")[1:]}
    for stage in ("check_prerequisites", "prepare_target", "transfer_files",
                  "migrate_database"):
        assert "| 数据迁移 | 成功（由“数据迁移”执行） |" in section[stage], stage
    assert "not recorded: this stage has not run" not in section["prepare_target"]
    files = f"| app1 → {TRANSFER_SHAPED}-app (412 files) | sha256:{'ab' * 32} | same manifest |"
    assert files in section["transfer_files"]
    assert "| fybj.public.visits | 5310 | 5310 | 是 yes |" in section["migrate_database"]
    assert "| fybj.public.visits | 5310 | 5310 | 是 yes |" in section["cutover"]
    assert "Measured downtime: 58.2 s" in section["cutover"]
    run = f"runs/20261120T010000Z-{TRANSFER_SHAPED}-transfer-abc123/artifacts/transfer_files"
    assert f"recorded but not found here: {run}" in section["transfer_files"]
    assert "measured downtime 实测停机 | 58.2 s |" in text


def test_verification_checks_are_listed_with_result_and_time():
    from migrate.stages.runbook import _check_rows

    rows = _check_rows({"host::service_active[web]": {"result": "passed", "time_s": 0.42},
                        "data::tables_equal[fybj]": {"result": "failed", "time_s": 1.5}})
    assert rows == [["data::tables_equal[fybj]", "FAIL 未通过", "1.5 s"],
                    ["host::service_active[web]", "pass 通过", "0.4 s"]]
    assert _check_rows([{"name": "health", "ok": True, "detail": "200"}]) == [
        ["health", "pass 通过", "200"]]


def test_a_verification_s_kept_run_is_linked_not_reported_missing(tmp_path, example):
    """A verification keeps its run folder as verify_system writes it (result.json,
    junit.xml, no artifacts/ folder: it runs no play); its evidence links the result and
    reports nothing missing, and the bundle cites what is there."""
    from migrate.core.journal import Journal
    from migrate.stages.runbook import cited_artifacts

    estate, plan = example
    state = tmp_path / "state"
    journal = Journal(state, estate.settings.estate)
    run_id = f"20261120T030000Z-{TRANSFER_SHAPED}-verify-0a1b2c"
    run_dir = state / "runs" / run_id
    run_dir.mkdir(parents=True)
    for name in ("result.json", "junit.xml", "context.json", "pytest.log"):
        (run_dir / name).write_text("{}\n" if name.endswith(".json") else "<testsuites/>\n")
    journal.append("verify", system=TRANSFER_SHAPED, result="ok", duration_s=9.5, outputs={
        "run_id": run_id, "passed": True, "counts": {"passed": 1},
        "checks": {"host::service_active[web]": {"result": "passed", "time_s": 0.4}}})

    out = tmp_path / "runbooks"
    write_evidence_runbooks(estate, plan, journal, out, systems=[TRANSFER_SHAPED],
                            formats=["md"])
    text = (out / "evidence" / f"{TRANSFER_SHAPED}.md").read_text(encoding="utf-8")
    verify = next(part for part in text.split("\n## ")[1:]
                  if part.startswith(STAGE_TITLES["verify"]))
    assert "recorded but not found" not in verify, verify
    assert re.search(rf"\[runs/{run_id}/result\.json · sha256:[0-9a-f]{{64}}\]\(", verify), verify
    assert cited_artifacts(journal.entries()) == [f"runs/{run_id}/result.json"]
