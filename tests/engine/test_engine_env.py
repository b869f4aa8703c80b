"""The environment handed to the Automation API, and finding / requiring the engine."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from migrate.adapters.engine import (
    PULUMI_VERSION,
    engine_bin_dir,
    engine_env,
    ensure_engine,
    find_engine,
)
from migrate.adapters.engine.build import ENGINE_FILES, is_complete, marker_path, write_marker
from migrate.core.errors import EnvironmentNotReady, GuardRefused

FAKE_ENGINE = Path("/opt/engine/v0/bin/pulumi")


def passphrase(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "passphrase"
    path.write_text("correct horse battery staple\n")
    path.chmod(mode)
    return path


def test_env_puts_engine_then_venv_first_on_path(tmp_path: Path) -> None:
    env = engine_env(tmp_path, None, engine=FAKE_ENGINE, base={"PATH": "/usr/bin:/bin"})
    parts = env["PATH"].split(os.pathsep)
    assert parts[0] == "/opt/engine/v0/bin"
    assert parts[1] == str(Path(sys.executable).parent)
    assert parts[2:] == ["/usr/bin", "/bin"]


def test_env_sets_pulumi_variables(tmp_path: Path) -> None:
    env = engine_env(tmp_path / "state", None, engine=FAKE_ENGINE, base={})
    state = (tmp_path / "state").resolve()
    assert env["PULUMI_HOME"] == str(state / "pulumi-home")
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_PYTHON_CMD"] == sys.executable
    assert env["PULUMI_BACKEND_URL"] == f"file://{state / 'backend'}"
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in env


def test_env_keeps_an_explicit_backend(tmp_path: Path) -> None:
    env = engine_env(tmp_path, None, engine=FAKE_ENGINE, backend_url="s3://bucket", base={})
    assert env["PULUMI_BACKEND_URL"] == "s3://bucket"


def test_env_names_the_passphrase_file_never_the_passphrase(tmp_path: Path) -> None:
    secret = passphrase(tmp_path)
    base = {"PATH": "/bin", "PULUMI_CONFIG_PASSPHRASE": "leaked"}
    env = engine_env(tmp_path, secret, engine=FAKE_ENGINE, base=base)
    assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(secret.resolve())
    assert "PULUMI_CONFIG_PASSPHRASE" not in env
    assert "correct horse" not in json.dumps(env)


def test_env_refuses_a_passphrase_file_others_can_read(tmp_path: Path) -> None:
    with pytest.raises(GuardRefused, match="readable by others") as caught:
        engine_env(tmp_path, passphrase(tmp_path, 0o644), engine=FAKE_ENGINE, base={})
    assert "chmod 600" in (caught.value.hint or "")


def test_env_refuses_a_missing_passphrase_file(tmp_path: Path) -> None:
    with pytest.raises(GuardRefused, match="does not exist"):
        engine_env(tmp_path, tmp_path / "nope", engine=FAKE_ENGINE, base={})


def test_env_without_engine_says_how_to_build(isolated_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(EnvironmentNotReady) as caught:
        engine_env(tmp_path, None, base={})
    assert "scripts/build_pulumi.sh" in (caught.value.hint or "")


def test_cache_dir_follows_migrate_cache_dir(isolated_cache: Path) -> None:
    assert engine_bin_dir() == isolated_cache / "pulumi" / f"v{PULUMI_VERSION}" / "bin"


def test_cache_dir_falls_back_to_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MIGRATE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert engine_bin_dir() == tmp_path / "migrate" / "pulumi" / f"v{PULUMI_VERSION}" / "bin"


def fake_complete_install(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True)
    for name in ENGINE_FILES:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    write_marker(PULUMI_VERSION, 1.0)


def test_find_engine_needs_the_marker_and_every_file(isolated_cache: Path) -> None:
    assert find_engine() is None
    fake_complete_install(engine_bin_dir())
    assert find_engine() == engine_bin_dir() / "pulumi"
    (engine_bin_dir() / "pulumi-resource-pulumi-python").unlink()
    assert not is_complete()
    assert find_engine() is None


def test_marker_of_another_version_is_not_complete(isolated_cache: Path) -> None:
    fake_complete_install(engine_bin_dir())
    marker_path().write_text(json.dumps({"version": "0.0.1"}))
    assert not is_complete()


def test_find_engine_takes_a_pulumi_on_path_of_the_pinned_version_only(
    isolated_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    fake = fake_bin / "pulumi"
    fake.write_text("#!/bin/sh\necho v3.1.0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:/usr/bin:/bin")
    assert find_engine() is None
    fake.write_text(f"#!/bin/sh\necho v{PULUMI_VERSION}\n")
    assert find_engine() == fake


def test_ensure_engine_without_build_says_how_to_build(isolated_cache: Path) -> None:
    with pytest.raises(EnvironmentNotReady) as caught:
        ensure_engine(build=False)
    assert "scripts/build_pulumi.sh" in (caught.value.hint or "")
