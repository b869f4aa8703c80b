"""The one lookup of the shipped folders (migrate.core.resources): the installed copy when there,
else the checkout's; MIGRATE_STACKS_DIR still wins for the stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.adapters import ansible as runner
from migrate.adapters import render
from migrate.adapters.engine import provider
from migrate.core import resources
from migrate.stages import provision

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkout_uses_its_top_level_folders() -> None:
    assert not resources.SHIPPED_DIR.exists()  # only a wheel has it
    for name in resources.NAMES:
        assert resources.folder(name) == ROOT / name
        assert (ROOT / name).is_dir()
    assert render.TEMPLATES_DIR == ROOT / "templates"
    assert runner.PLAYBOOKS == ROOT / "playbooks"
    assert provider.SOURCE_DIR == ROOT / "providers" / provider.NAME


def test_an_installed_copy_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stacks").mkdir()
    monkeypatch.setattr(resources, "SHIPPED_DIR", tmp_path)
    monkeypatch.delenv(provision.STACKS_ENV, raising=False)
    assert resources.folder("stacks") == tmp_path / "stacks"
    assert provision.stacks_dir() == tmp_path / "stacks"
    assert resources.folder("templates") == ROOT / "templates"  # not shipped there: checkout


def test_the_stacks_override_still_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(provision.STACKS_ENV, str(tmp_path))
    assert provision.stacks_dir() == tmp_path


def test_only_the_shipped_folders_are_looked_up() -> None:
    with pytest.raises(ValueError, match="not a shipped folder"):
        resources.folder("examples")
