"""The test tree itself: what scripts/test.sh relies on to split it into two pytests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def test_every_test_file_name_is_unique_across_the_tree() -> None:
    """The test folders are not packages, so pytest imports each test file by its bare
    name: two of one name cannot be collected in one run, and the cloud pytest
    (`-m cloud`) collects the whole tree, tests/testcloud included."""
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []


def test_the_cloud_tests_are_a_marker_the_script_selects() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert '-m "not cloud"' in script and "-m cloud" in script
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"cloud: ' in pyproject
