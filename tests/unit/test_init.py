"""migrate init: a new estate that validates as written, and never over anything."""

from __future__ import annotations

import stat
from datetime import date

from migrate.core.skeleton import init_estate
from migrate.orchestrate import pipeline


def test_init_writes_an_estate_that_validates_and_plans_its_example(tmp_path):
    written = init_estate(tmp_path / "estate", date(2026, 12, 6))
    names = {p.relative_to(tmp_path / "estate").as_posix() for p in written}
    assert names == {"migrate.yaml", "systems/dept-example.yaml", "secrets/.gitignore"}
    loaded = pipeline.open_estate(tmp_path / "estate")
    assert list(loaded.systems) == ["dept-example"]
    census = pipeline.run_census(pipeline.context_of(loaded), date(2026, 12, 6))
    assert census.counts()["migrate"] == 1


def test_the_skeleton_is_commented_and_keeps_secrets_out_of_git(tmp_path):
    init_estate(tmp_path / "estate")
    for name in ("migrate.yaml", "systems/dept-example.yaml"):
        assert (tmp_path / "estate" / name).read_text(encoding="utf-8").startswith("# ")
    secrets = tmp_path / "estate" / "secrets"
    assert (secrets / ".gitignore").read_text(encoding="utf-8").splitlines()[1] == "*"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700


def test_init_into_an_empty_folder_is_fine(tmp_path):
    assert init_estate(tmp_path)


def test_init_refuses_a_folder_that_is_not_empty(run_cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    result = run_cli("init", tmp_path)
    assert result.code == 2
    assert "not empty" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_migrate_init_then_validate(run_cli, tmp_path):
    assert run_cli("init", tmp_path / "new").code == 0
    result = run_cli("validate", tmp_path / "new")
    assert result.code == 0, result.stderr
    assert "valid: 1 systems" in result.stdout
