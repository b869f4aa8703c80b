"""Shared fixtures: a private copy of the example estate, and the CLI run in-process."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ESTATE = ROOT / "examples" / "estate"
NO_SKIP_ENV = ("CI", "MIGRATE_NO_SKIP")
# The all-in-one OpenStack takes minutes to come up (about 20 cold): its tests run in a pytest
# of their own (MIGRATE_TESTCLOUD_TESTS=1), which scripts/test.sh (make test) starts beside
# the others' as soon as the cloud it brings up in the background is ready.
collect_ignore = [] if os.environ.get("MIGRATE_TESTCLOUD_TESTS") == "1" else ["testcloud"]
TESTCLOUD = ROOT / "tests" / "testcloud"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The test cloud's tests are ``cloud`` tests (with those that need the built plugin):
    scripts/test.sh runs them in its second pytest, ``-m cloud``."""
    for item in items:
        if item.path.is_relative_to(TESTCLOUD):
            item.add_marker(pytest.mark.cloud)


def skips_fail() -> bool:
    """Under CI (or MIGRATE_NO_SKIP=1) a skipped test is a failure: a run without root, a
    tool or the engine must not go green by skipping what it could not run."""
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in NO_SKIP_ENV)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.skipped and skips_fail() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which counts as a failure: {reason}"
    return report


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session", autouse=True)
def private_journal_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests' journal signing keys and checkpoint copies live in the run's temporary
    folder, never in the user's ~/.config or ~/.local (one folder per run, so an estate made
    by a module fixture keeps its key across the module's tests)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIGRATE_KEY_DIR", str(tmp_path_factory.mktemp("journal-keys")))
        patch.setenv("MIGRATE_CHECKPOINT_DIR", str(tmp_path_factory.mktemp("checkpoints")))
        yield


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example estate (manifests only) that a test may edit."""
    target = tmp_path / "estate"
    shutil.copytree(EXAMPLE_ESTATE, target,
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs"))
    monkeypatch.delenv("MIGRATE_STATE_DIR", raising=False)
    return target


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    from migrate.cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        else:  # main always exits
            code = -1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def edit(path: Path, old: str, new: str) -> None:
    """Replace text that must be there exactly once (so a test cannot silently miss)."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_number(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture
def sandbox_estate(estate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example estate copy, for tests that provision on the sandbox with the real engine:
    skipped with the reason when not root, a sandbox tool is missing or the engine is not
    built; machines live under a sandbox root of the test's own."""
    from migrate.adapters.engine import find_engine
    from migrate.core.errors import EnvironmentNotReady
    from migrate.rehearsal.sandbox import require_host

    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"needs root and the sandbox tools: {error.message}")
    if find_engine() is None:
        pytest.skip("the Pulumi engine is not built: run 'make engine'")
    monkeypatch.setenv("MIGRATE_SANDBOX_ROOT", str(tmp_path / "sandbox-root"))
    return estate
