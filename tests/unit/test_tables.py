"""Tables readable at 80 columns: nothing wider than the terminal, no id, address, header
word or name broken across lines; a table too wide becomes one record per row."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from migrate.cli import main as cli
from migrate.cli.tables import fitting_table


def draw(table, width: int = 80) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.file.getvalue().splitlines()


def test_a_table_that_fits_is_drawn_as_it_is():
    lines = draw(fitting_table("t", ("id", "name"), [("wjw-fybj", "妇幼保健信息系统")]))
    assert any("wjw-fybj" in line and "妇幼保健信息系统" in line for line in lines)


def test_a_table_is_narrowed_without_breaking_a_word():
    reasons = "classified (涉密) system: only non-classified systems may go onto the cloud " * 2
    lines = draw(fitting_table("Not planned", ("id", "disposition", "reasons"),
                               [("gaj-rkhc", "refuse", reasons)]))
    assert all(len(line) <= 80 for line in lines) and len(lines) > 5
    assert "┃ id" in lines[2] and "disposition" in lines[2]
    words = " ".join(line.strip("│ ").split("│")[-1].strip() for line in lines[4:-1]).split()
    assert words == reasons.split()  # every word whole, in order


def test_a_table_too_wide_becomes_one_record_per_row_with_every_cell():
    columns = ("编号 id", *(f"column {n}" for n in range(12)))
    rows = [("zrj-bdcdj", *(f"value-{n}" for n in range(12))),
            ("wjw-fybj", *(f"value-{n}" if n % 2 else "" for n in range(12)))]
    lines = draw(fitting_table("Wide", columns, rows))
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    assert "zrj-bdcdj" in lines and "wjw-fybj" in lines  # the id heads its record
    found = re.findall(r"value-\d+", text)
    assert found.count("value-0") == 1 and found.count("value-1") == 2  # no empty cells
    assert re.search(r"^ +column 11 +value-11 *$", text, re.MULTILINE)


def printed_at_80(monkeypatch: pytest.MonkeyPatch, run_cli, *args: object) -> str:
    monkeypatch.setattr(cli, "out", Console(width=80, color_system=None))
    result = run_cli(*args)
    assert result.code == 0, result.stderr
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    return result.stdout


def test_census_at_80_columns_keeps_ids_names_and_headers_whole(monkeypatch, run_cli, estate):
    text = printed_at_80(monkeypatch, run_cli, "census", estate)
    for name in ("示例市公共信用信息平台", "不动产登记信息管理系统", "市发展和改革委员会",
                 "zrj-bdcdj", "fgw-xyxx", "disposition", "classification"):
        assert name in text


def test_plan_at_80_columns_keeps_addresses_whole(monkeypatch, run_cli, estate):
    text = printed_at_80(monkeypatch, run_cli, "plan", estate)
    plan = cli.json.loads((estate / ".migrate" / "plan.json").read_text(encoding="utf-8"))
    addresses = [i["address"] for s in plan["systems"] for i in s["instances"]]
    assert addresses and all(address in text for address in addresses)


def test_status_at_80_columns_keeps_its_words_whole(monkeypatch, run_cli, estate):
    assert run_cli("plan", estate).code == 0
    text = printed_at_80(monkeypatch, run_cli, "status", estate)
    assert "(decommission)" in text and "stands" in text


def test_report_at_80_columns_keeps_departments_and_figures_whole(monkeypatch, run_cli,
                                                                  estate):
    assert run_cli("plan", estate).code == 0
    text = printed_at_80(monkeypatch, run_cli, "report", estate)
    for name in ("市人力资源和社会保障局", "connectivity rate", "to retire", "zrj-bdcdj"):
        assert name in text
