"""Under CI a skipped test fails with its reason (tests/conftest.py); elsewhere it skips."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIPPING_TEST = '''
import pytest

def test_needs_a_tool():
    pytest.skip("the frobnicator is not installed")

@pytest.mark.xfail(reason="known", strict=True)
def test_known_bug():
    raise AssertionError
'''


def run_pytest(folder: Path, env_ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder)}
    if env_ci is not None:
        env["CI"] = env_ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-rA", str(folder)], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(SKIPPING_TEST)
    return tmp_path


def test_a_skip_fails_under_ci_with_its_reason(suite: Path) -> None:
    done = run_pytest(suite, "true")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 xfailed" in done.stdout, done.stdout
    assert "skipped under CI" in done.stdout and "frobnicator is not installed" in done.stdout


def test_a_skip_stays_a_skip_outside_ci(suite: Path) -> None:
    done = run_pytest(suite, None)
    assert done.returncode == 0, done.stdout
    assert "1 skipped, 1 xfailed" in done.stdout, done.stdout
