"""The HTML pages in a real headless browser (Debian's chromium): they render without errors,
show their content, load nothing from outside, and a screenshot is kept under the test's tmp."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from migrate.adapters.render import check_in_browser
from migrate.orchestrate.examples import write_examples
from migrate.stages.report import build_report, write_report
from migrate.stages.runbook import write_evidence_runbooks
from tests.runbook.story import EXAMPLE_ESTATE

pytestmark = pytest.mark.slow


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _self_contained(html: str) -> None:
    assert not re.search(r"<(link|script|img|iframe)\b", html, re.I)
    assert not re.search(r"\b(src=|@import|url\()", html, re.I)
    assert not re.search(r'href="(https?:)?//', html, re.I)


def _check(page: Path, shot: Path, must_show: list[str]) -> None:
    _self_contained(page.read_text(encoding="utf-8"))
    result = check_in_browser(page, shot)
    assert result.problems == []
    for text in must_show:
        assert text in result.dom, f"{text!r} not in the rendered page {page}"
    assert _png_size(shot) == (1280, 2000)
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few kB


def test_plan_runbooks_and_report_render_in_chromium(tmp_path, chromium):
    out = tmp_path / "examples"
    write_examples(EXAMPLE_ESTATE, out)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    _check(out / "plan" / "scj-qyxy.html", shots / "plan-scj-qyxy.png",
           ["企业信用信息公示系统", 'id="decommission_source"', "sg-scj-qyxy-db"])
    _check(out / "plan" / "wave-1.html", shots / "wave-1.png", ["Wave 1 runbook"])
    _check(out / "report" / "report.html", shots / "report.png",
           ["系统联通率", "市市场监督管理局", "</svg>"])
    print(f"screenshots kept in {shots}")


def test_evidence_runbook_and_report_with_progress_render_in_chromium(tmp_path, example,
                                                                       story, chromium):
    estate, plan = example
    out = tmp_path / "runbooks"
    write_evidence_runbooks(estate, plan, story, out)
    entries = list(story.entries())
    write_report(build_report(estate, plan, entries, date_of(entries[-1])), out / "report")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    _check(out / "evidence" / "scj-qyxy.html", shots / "evidence-scj-qyxy.png",
           [entries[-1]["hash"], "public.items", "74.5 s"])
    _check(out / "report" / "report.html", shots / "report-progress.png", ["3/6 = 50.0%"])
    print(f"screenshots kept in {shots}")


def test_the_check_catches_a_page_with_errors(tmp_path, chromium):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><h1>x</h1>'
                    '<script>console.error("boom"); undefinedCall();</script></body></html>',
                    encoding="utf-8")
    result = check_in_browser(page, tmp_path / "broken.png")
    assert any("boom" in line for line in result.problems)
    assert any("undefinedCall" in line for line in result.problems)


def date_of(entry: dict):
    from datetime import date

    return date.fromisoformat(entry["at"][:10])
