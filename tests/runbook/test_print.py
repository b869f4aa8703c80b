"""Printed pages: A4, wide tables on landscape pages, nothing wider than its page (measured
in headless Chromium with the print rules applied), charts scaled by their viewBox."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from migrate.adapters.render import print_overflow, print_to_pdf
from migrate.stages.report import build_report, write_report
from migrate.stages.runbook import write_runbooks
from tests.runbook.story import ROLLED_BACK, VERIFIED

pytestmark = pytest.mark.slow

MEDIA_BOX = re.compile(rb"/MediaBox\s*\[\s*0 0 ([0-9.]+) ([0-9.]+)\s*\]")
RAW_CODES = ("cross_department", "fiscal", "egov_extranet", "cut_over", "rolled_back",
             "self_raised", "logical_replication", "final_dump")


@pytest.fixture(scope="module")
def documents(tmp_path_factory, example) -> Path:
    from migrate.core.journal import Journal
    from tests.runbook.story import write_story

    estate, plan = example
    root = tmp_path_factory.mktemp("print")
    journal: Journal = write_story(root / "state", estate.settings.estate)
    write_runbooks(estate, plan, journal, root / "runbooks", estate_arg="examples/estate")
    today = datetime.now(UTC).date()
    write_report(build_report(estate, plan, list(journal.entries()), today, journal.verify()),
                 root / "report")
    return root


PAGES = ["report/report.html", f"runbooks/evidence/{VERIFIED[0]}.html",
         f"runbooks/evidence/{ROLLED_BACK}.html", "runbooks/plan/wave-1.html",
         f"runbooks/plan/{VERIFIED[1]}.html", "runbooks/index.html"]


@pytest.mark.parametrize("page", PAGES)
def test_nothing_overflows_its_printed_page(documents, page, chromium):
    assert print_overflow(documents / page) == []


def test_the_report_prints_on_a4_with_landscape_pages_for_wide_tables(documents, tmp_path,
                                                                       chromium):
    pdf = print_to_pdf(documents / "report" / "report.html", tmp_path / "report.pdf")
    sizes = {(round(float(w)), round(float(h))) for w, h in MEDIA_BOX.findall(pdf.read_bytes())}
    assert sizes == {(595, 842), (842, 595)}, sizes  # A4 portrait and landscape, in points


def test_documents_show_terms_not_codes(documents):
    for page in [documents / p for p in PAGES] + [documents / "report" / "report.md"]:
        visible = re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))
        visible = re.sub(r"\bnet-[a-z-]+_extranet\b", "", visible)  # resource names
        found = [code for code in RAW_CODES if code in visible]
        assert not found, f"{page.name} shows {found}"


def test_charts_scale_with_the_page(documents):
    html = (documents / "report" / "report.html").read_text(encoding="utf-8")
    charts = re.findall(r"<svg [^>]*>", html)
    assert len(charts) == 3
    assert all("viewBox" in c and "width=" not in c for c in charts)
    assert "@page { size: A4 portrait" in html and "thead { display: table-header-group; }" in html
