"""No CSV the project writes carries a cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from migrate.core.census_report import Table, to_csv
from tests.conftest import edit

FORMULA = '=HYPERLINK("http://x","y")'


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_census_csv_neutralises_a_formula_in_a_department_name(run_cli, estate: Path) -> None:
    edit(estate / "systems/fgw-xyxx.yaml", "name: 市发展和改革委员会}",
         "name: '" + FORMULA.replace("'", "''") + "'}")
    result = run_cli("census", estate, "--output", "json")
    assert result.code == 0, result.stderr
    csv_files = [Path(p) for p in json.loads(result.stdout)["files"] if p.endswith(".csv")]
    cells = [cell for path in csv_files for row in rows_of(path.read_text(encoding="utf-8"))
             for cell in row]
    assert "'" + FORMULA in cells
    assert not [cell for cell in cells if cell.startswith(("=", "+", "@", "\t", "\r"))]


def test_every_formula_start_is_neutralised_and_numbers_are_kept() -> None:
    """A bare CR inside a cell becomes LF: written bare it ended the row early."""
    hostile = ("=1+1", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1")
    numbers = ("-3.5", "+7", "-12", "42", "-1e3")
    table = Table("t", "t", ("a", "b"), tuple((h, n) for h, n in zip(hostile, numbers * 2,
                                                                        strict=False)))
    rows = rows_of(to_csv(table))[1:]
    assert [row[0] for row in rows] == ["'" + h.replace("\r", "\n") for h in hostile]
    assert [row[1] for row in rows] == list((numbers * 2)[:len(hostile)])
