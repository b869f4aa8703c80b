"""Fixtures for runbooks and reports: the example estate's plan, and a synthetic journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.core import journal as journal_module
from migrate.core.journal import Journal
from migrate.core.loader import Estate
from migrate.orchestrate.examples import build_example
from tests.runbook.story import EXAMPLE_ESTATE, story_clock, write_story


@pytest.fixture(scope="session", autouse=True)
def keys_outside_the_estate(tmp_path_factory):
    """Journal keys and checkpoint copies of these tests in a folder of their own, not in
    the user's ~/.config and ~/.local/state."""
    home = tmp_path_factory.mktemp("migrate-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIGRATE_KEY_DIR", str(home / "keys"))
        patch.setenv("MIGRATE_CHECKPOINT_DIR", str(home / "checkpoints"))
        patch.delenv("MIGRATE_SIGNING_KEY", raising=False)
        patch.setenv("MIGRATE_OPERATOR", "张伟（示例市大数据局）")
        yield home


@pytest.fixture(scope="session")
def example() -> tuple[Estate, dict]:
    return build_example(EXAMPLE_ESTATE)


@pytest.fixture
def story(tmp_path: Path, example: tuple[Estate, dict], monkeypatch: pytest.MonkeyPatch
          ) -> Journal:
    """The synthetic journal, its entries (and those a test appends) on the story's clock."""
    monkeypatch.setattr(journal_module, "_now", story_clock())
    estate, _ = example
    return write_story(tmp_path / "state", estate.settings.estate)


@pytest.fixture
def chromium() -> str:
    from migrate.adapters.render import chromium_path

    found = chromium_path()
    if found is None:
        print("SKIP reason: chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found
